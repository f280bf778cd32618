"""Tests for pipeline.records' file writers that are not covered with the stages that use them."""
from __future__ import annotations

import codecs
import csv
import io

import pytest

from pipeline.records import spreadsheet_safe, write_csv


@pytest.mark.parametrize("value, written", [
    ('=HYPERLINK("http://x.example","klikk")', '\'=HYPERLINK("http://x.example","klikk")'),
    ("+47 stemmer", "'+47 stemmer"), ("-budsjett", "'-budsjett"), ("@sum", "'@sum"), ("\tinnrykk", "'\tinnrykk"),
    ("\rlinje", "'\rlinje"), ("-3", "'-3"), ("Samhandling", "Samhandling"), ("", ""), ("a=b", "a=b"),
    (-3, -3), (2.5, 2.5), (0, 0),
], ids=repr)
def test_spreadsheet_safe_prefixes_text_a_spreadsheet_would_run_and_leaves_numbers(value, written):
    assert spreadsheet_safe(value) == written


def test_write_csv_is_utf8_with_a_bom_and_neutralises_every_text_cell(tmp_path):
    write_csv([["verksted", "kort"], ["=1+1", 4], ["Tromsø", -2]], tmp_path / "x.csv")

    raw = (tmp_path / "x.csv").read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    assert list(csv.reader(io.StringIO(raw.decode("utf-8-sig")))) == [["verksted", "kort"], ["'=1+1", "4"],
                                                                        ["Tromsø", "-2"]]


def test_write_bytes_publishes_the_whole_file_and_leaves_no_temp_file(tmp_path):
    from pipeline.records import write_bytes

    target = tmp_path / "plots" / "map.png"
    write_bytes(b"\x89PNG first", target)
    write_bytes(b"\x89PNG second", target)
    assert target.read_bytes() == b"\x89PNG second"
    assert [p.name for p in target.parent.iterdir()] == ["map.png"]


def _write_embeddings(path, ids, vectors):
    import pandas as pd

    from pipeline.records import EMBEDDINGS, write_table

    frame = pd.DataFrame({"card_id": pd.Series(ids, dtype=object), "embedding": pd.Series(list(vectors), dtype=object)})
    write_table(frame, EMBEDDINGS, path)


def test_read_embeddings_reads_what_read_table_reads_into_one_matrix_embedding_matrix_shares(tmp_path, monkeypatch):
    import numpy as np

    from pipeline import records
    from pipeline.records import EMBEDDINGS, embedding_matrix, read_embeddings, read_table

    monkeypatch.setattr(records, "EMBEDDING_READ_ROWS", 3)  # several batches, the last one short
    vectors = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    _write_embeddings(tmp_path / "e.parquet", [f"c{i}" for i in range(8)], vectors)

    frame = read_embeddings(tmp_path / "e.parquet")
    whole = read_table(tmp_path / "e.parquet", EMBEDDINGS)
    assert frame["card_id"].tolist() == whole["card_id"].tolist()
    matrix = embedding_matrix(frame)
    assert matrix.dtype == np.float32 and np.array_equal(matrix, embedding_matrix(whole))
    assert np.shares_memory(matrix, frame["embedding"].iloc[0]) and not matrix.flags.writeable
    assert not np.shares_memory(embedding_matrix(frame.iloc[::-1]), matrix)  # reordered rows: a new matrix
    assert np.array_equal(embedding_matrix(frame.iloc[::-1]), vectors[::-1])


def test_read_embeddings_names_the_row_of_a_vector_of_another_length_and_a_duplicate_card(tmp_path):
    import numpy as np

    from pipeline.records import SchemaError, read_embeddings

    _write_embeddings(tmp_path / "e.parquet", ["a", "b"], [np.zeros(3, np.float32), np.zeros(2, np.float32)])
    with pytest.raises(SchemaError, match="row 1 has a vector of 2 numbers"):
        read_embeddings(tmp_path / "e.parquet")
    _write_embeddings(tmp_path / "d.parquet", ["a", "a"], np.zeros((2, 3), np.float32))
    with pytest.raises(SchemaError, match="duplicate card id 'a'"):
        read_embeddings(tmp_path / "d.parquet")
    with pytest.raises(SchemaError, match="stage input not found"):
        read_embeddings(tmp_path / "missing.parquet")
    _write_embeddings(tmp_path / "empty.parquet", [], np.zeros((0, 3), np.float32))
    assert read_embeddings(tmp_path / "empty.parquet").empty


def test_read_table_reads_only_the_columns_asked_for_and_still_checks_the_file(tmp_path):
    import pandas as pd

    from pipeline.records import CLUSTER_ASSIGNMENTS, SchemaError, read_table, write_table

    write_table(pd.DataFrame({"card_id": ["a"], "cluster": [1], "similarity": [0.5]}), CLUSTER_ASSIGNMENTS,
                tmp_path / "a.parquet")
    assert read_table(tmp_path / "a.parquet", CLUSTER_ASSIGNMENTS, columns=["cluster"]).columns.tolist() == ["cluster"]
    write_table(pd.DataFrame({"card_id": ["a"]}), pa_schema_card_id(), tmp_path / "b.parquet")
    with pytest.raises(SchemaError, match="columns \\['cluster', 'similarity'\\] missing"):
        read_table(tmp_path / "b.parquet", CLUSTER_ASSIGNMENTS, columns=["card_id"])


def pa_schema_card_id():
    import pyarrow as pa

    return pa.schema([("card_id", pa.string())])


def test_write_json_and_write_chunks_write_what_the_joined_text_would(tmp_path):
    import json

    from pipeline.records import write_chunks, write_json

    value = {"tekst": "Tromsø – «sitat»", "tall": [1, 2.5, None], "tom": {}, "liste": [[], {"a": True}]}
    write_json(value, tmp_path / "a.json")
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == json.dumps(value, ensure_ascii=False, indent=2) + "\n"
    pieces = ["ø" * 700_000, "", "a\nb", "æ" * 500_000]  # past the 1 MB write buffer
    write_chunks(iter(pieces), tmp_path / "b.txt")
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "".join(pieces)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.txt"]  # no temp file left
