"""Tests for pipeline.ingest: formats, encodings, canonical card records, votes, errors, junk, run."""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook

from pipeline.ingest import IngestError, Source, content_id, discover, ingest, run
from pipeline.params import IngestParams
from pipeline.records import CARDS, STATUS_OK, STATUS_REJECTED, VOTES, read_table

PARAMS = IngestParams()


def cards_of(*sources: Source, params: IngestParams = PARAMS) -> pd.DataFrame:
    return ingest(list(sources), params).cards


def texts(frame: pd.DataFrame) -> list[str]:
    return list(frame["text"])


def ingest_error(*sources: Source) -> IngestError:
    with pytest.raises(IngestError) as info:
        ingest(list(sources), PARAMS)
    return info.value


def xlsx_bytes(*sheets: list[list]) -> bytes:
    workbook = Workbook()
    for index, rows in enumerate(sheets):
        sheet = workbook.active if index == 0 else workbook.create_sheet(f"Ark{index + 1}")
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- formats and encodings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "delimiter, text",
    [(",", "Mer tid; og penger"), (";", "Mer tid, og penger"), ("\t", "Mer tid, og; penger")],
    ids=["comma", "semicolon", "tab"],
)
def test_csv_delimiter_is_sniffed_from_the_header(delimiter, text):
    data = delimiter.join(["card_id", "group", "text"]) + "\n" + delimiter.join(["k1", "g1", text]) + "\n"

    cards = cards_of(Source("ws.csv", data.encode("utf-8")))

    assert cards.loc[0, ["card_id", "group_id", "text"]].tolist() == ["k1", "g1", text]


def test_tsv_extension_is_read_as_delimited_text():
    cards = cards_of(Source("ws.tsv", b"tekst\tgruppe\nMer tid\tg2\n"))

    assert cards.loc[0, ["text", "group_id"]].tolist() == ["Mer tid", "g2"]


def test_utf8_bom_is_dropped_so_the_first_header_column_is_recognised():
    data = codecs.BOM_UTF8 + "tekst;gruppe\nØnske om mer tid;g1\n".encode("utf-8")

    cards = cards_of(Source("ws.csv", data))

    assert texts(cards) == ["Ønske om mer tid"]
    assert cards.loc[0, "group_id"] == "g1"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_with_bom_decodes(encoding):
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    data = bom + "tekst\tgruppe\nØnske om mer tid\tg1\n".encode(encoding)

    assert texts(cards_of(Source("ws.csv", data))) == ["Ønske om mer tid"]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_detected_from_zero_bytes(encoding):
    data = "tekst;gruppe\nØnske om mer tid;g1\nSamarbeid på tvers;g2\n".encode(encoding)
    assert not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))

    assert texts(cards_of(Source("ws.csv", data))) == ["Ønske om mer tid", "Samarbeid på tvers"]


def test_cp1252_bytes_decode_to_norwegian_letters():
    # 0x96 is an en dash in cp1252 (a control character in latin-1).
    data = "tekst\nØnske om mer tid\nSamarbeid på tvers – nå\n".encode("cp1252")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")

    assert texts(cards_of(Source("ws.csv", data))) == ["Ønske om mer tid", "Samarbeid på tvers – nå"]


def test_xlsx_reads_the_first_sheet_and_ignores_later_sheets():
    data = xlsx_bytes(
        [["tekst", "gruppe", "type"], ["Mer tid", "g1", "ønske"], ["Tillit til ansatte", "g2", "orakel"]],
        [["text"], ["Notat som ikke er et kort"]],
    )

    cards = cards_of(Source("ws-bergen.xlsx", data))

    assert texts(cards) == ["Mer tid", "Tillit til ansatte"]
    assert cards["card_type"].tolist() == ["wish", "oracle"]
    assert cards["source_row"].tolist() == [2, 3]
    assert cards["workshop_id"].tolist() == ["ws-bergen", "ws-bergen"]


def test_xlsx_rows_are_sheet_rows_and_whole_numbers_lose_their_decimal_point():
    data = xlsx_bytes([["text", "antall"], ["Mer tid", 3], [None, None], ["Tillit", 2.0]])

    cards = cards_of(Source("ws.xlsx", data))

    assert cards["source_row"].tolist() == [2, 4]  # the empty sheet row 3 is skipped, not renumbered
    assert [json.loads(m) for m in cards["metadata"]] == [{"antall": "3"}, {"antall": "2"}]


def test_jsonl_reads_one_object_per_line_and_skips_blank_lines():
    lines = [
        json.dumps({"tekst": "Mer tid", "workshop": "ws-1", "farge": "gul"}, ensure_ascii=False),
        "",
        json.dumps({"tekst": "Færre møter", "workshop": "ws-1"}, ensure_ascii=False),
    ]

    cards = cards_of(Source("kort.jsonl", "\n".join(lines).encode("utf-8")))

    assert texts(cards) == ["Mer tid", "Færre møter"]
    assert cards["source_row"].tolist() == [1, 3]
    assert cards["workshop_id"].tolist() == ["ws-1", "ws-1"]
    assert json.loads(cards.loc[0, "metadata"]) == {"farge": "gul"}


def test_jsonl_text_with_unicode_line_separators_stays_one_record():
    # json.dumps(ensure_ascii=False) leaves U+2028 and U+0085 unescaped; they are not record breaks.
    lines = [json.dumps({"text": t}, ensure_ascii=False) for t in ("Mer\u2028tid", "Færre\x85møter")]

    cards = cards_of(Source("kort.jsonl", "\r\n".join(lines).encode("utf-8")))

    assert texts(cards) == ["Mer\u2028tid", "Færre\x85møter"]
    assert cards["source_row"].tolist() == [1, 2]


def test_plain_text_holds_one_card_per_line():
    cards = cards_of(Source("ws-molde.txt", "Mer tid\nFærre møter\n  Tillit  \n".encode("utf-8")))

    assert texts(cards) == ["Mer tid", "Færre møter", "  Tillit  "]
    assert cards["source_row"].tolist() == [1, 2, 3]
    assert set(cards["workshop_id"]) == {"ws-molde"}


def test_plain_text_with_blank_lines_holds_one_card_per_block():
    data = "Mer tid til\nå prøve ut ting\n\nFærre møter\n\n\nTillit\n".encode("utf-8")

    cards = cards_of(Source("ws.txt", data))

    assert texts(cards) == ["Mer tid til å prøve ut ting", "Færre møter", "Tillit"]
    assert cards["source_row"].tolist() == [1, 4, 7]


@pytest.mark.parametrize("data", [b"Mer tid\nTillit\n\n\n", b"\n\nMer tid\nTillit\n"], ids=["trailing", "leading"])
def test_plain_text_blank_lines_at_the_edges_do_not_merge_lines_into_a_block(data):
    assert texts(cards_of(Source("ws.txt", data))) == ["Mer tid", "Tillit"]


def test_csv_multiline_cell_is_one_row_and_later_rows_keep_spreadsheet_numbers():
    data = b'text,group\n"Mer tid\ntil a teste",g1\nTillit,g2\n'

    cards = cards_of(Source("ws.csv", data))

    assert texts(cards) == ["Mer tid\ntil a teste", "Tillit"]
    assert cards["source_row"].tolist() == [2, 3]


# --- canonical record -------------------------------------------------------------------------


def test_card_id_from_the_file_is_kept():
    cards = cards_of(Source("ws.csv", b"kort_id,text\nHAM-007,Mer tid\n"))

    assert cards.loc[0, "card_id"] == "HAM-007"


def test_generated_card_id_is_workshop_plus_content_hash_and_stable():
    source = Source("ws.csv", b"workshop_id,text\nws-hamar,Mer tid\nws-hamar,Tillit\n")

    first, second = cards_of(source), cards_of(source)

    assert first["card_id"].tolist() == second["card_id"].tolist()
    assert first.loc[0, "card_id"] == content_id("ws-hamar", "Mer tid")
    assert first.loc[0, "card_id"].startswith("ws-hamar-")
    assert first.loc[0, "card_id"] != first.loc[1, "card_id"]


def test_generated_card_id_does_not_depend_on_row_position():
    before = cards_of(Source("ws.csv", b"text\nTillit\nMer tid\n"))
    after = cards_of(Source("ws.csv", b"text\nMer tid\n"))

    assert before.loc[1, "card_id"] == after.loc[0, "card_id"]


def test_identical_texts_in_one_file_get_distinct_ids():
    cards = cards_of(Source("ws.csv", b"text\nMer tid\nMer tid\nMer tid\n"))

    assert cards["card_id"].is_unique
    assert texts(cards) == ["Mer tid"] * 3


def test_identical_texts_in_two_files_of_one_workshop_get_distinct_ids():
    cards = cards_of(
        Source("gruppe-1.csv", b"workshop,text\nws-1,Mer tid\n"),
        Source("gruppe-2.csv", b"workshop,text,group\nws-1,Mer tid,g2\n"),
    )

    assert cards["card_id"].is_unique
    assert cards["source_file"].tolist() == ["gruppe-1.csv", "gruppe-2.csv"]


def test_workshop_id_comes_from_the_column_else_from_the_file_stem():
    cards = cards_of(Source("corpus/ws-bodo-2026.csv", b"verksted,text\nws-tromso,Mer tid\n,Tillit\n"))

    assert cards["workshop_id"].tolist() == ["ws-tromso", "ws-bodo-2026"]


def test_group_id_is_none_when_empty_or_blank():
    cards = cards_of(Source("ws.csv", b"gruppe;text\ng1;Mer tid\n;Tillit\n  ;Penger\n"))

    assert cards.loc[0, "group_id"] == "g1"
    assert cards["group_id"].iloc[1:].isna().all()


@pytest.mark.parametrize(
    "raw, kind",
    [
        ("wish", "wish"),
        ("Ønske", "wish"),
        ("ønskekort", "wish"),
        ("onske", "wish"),
        ("Post-it", "postit"),
        ("gul lapp", "postit"),
        ("ORAKEL", "oracle"),
        ("orakelspørsmål", "oracle"),
        (" refleksjon ", "reflection"),
        ("reflection", "reflection"),
        ("", "other"),
        ("klistremerke", "other"),
    ],
)
def test_card_type_is_normalised_from_english_and_norwegian_names(raw, kind):
    data = f"type;text\n{raw};Mer tid\n".encode("utf-8")

    assert cards_of(Source("ws.csv", data)).loc[0, "card_type"] == kind


def test_unknown_card_type_is_kept_in_metadata():
    cards = cards_of(Source("ws.csv", b"type,text\nklistremerke,Mer tid\n"))

    assert json.loads(cards.loc[0, "metadata"]) == {"card_type_raw": "klistremerke"}


def test_text_is_kept_verbatim():
    data = '"  Vi TRENGER mer tid!  ",g1\n'
    cards = cards_of(Source("ws.csv", ("text,group\n" + data).encode("utf-8")))

    assert cards.loc[0, "text"] == "  Vi TRENGER mer tid!  "


def test_source_file_and_row_count_the_header_as_row_one():
    cards = cards_of(Source("data/ws.csv", b"text\nMer tid\nTillit\n"))

    assert cards["source_file"].tolist() == ["data/ws.csv", "data/ws.csv"]
    assert cards["source_row"].tolist() == [2, 3]


def test_extra_columns_are_kept_as_json_metadata_under_lowercased_names_without_empty_values():
    data = "text;farge;Bord nr\nMer tid;gul;4\nTillit;;\n".encode("utf-8")

    cards = cards_of(Source("ws.csv", data))

    assert [json.loads(m) for m in cards["metadata"]] == [{"bord nr": "4", "farge": "gul"}, {}]


def test_card_frame_has_the_cards_schema_columns():
    assert cards_of(Source("ws.csv", b"text\nMer tid\n")).columns.tolist() == CARDS.names


# --- votes ------------------------------------------------------------------------------------


def test_votes_file_is_ingested_as_votes_not_cards():
    data = b"workshop_id,group_id,theme_id,choice\nws-1,g1,siloer,A\nws-1,g2,delegering, b \n"

    result = ingest([Source("votes.csv", data), Source("ws-1.csv", b"text\nMer tid\n")], PARAMS)

    assert result.votes.columns.tolist() == VOTES.names
    assert result.votes[["workshop_id", "group_id", "theme_id", "choice"]].values.tolist() == [
        ["ws-1", "g1", "siloer", "a"],
        ["ws-1", "g2", "delegering", "b"],
    ]
    assert result.votes["source_row"].tolist() == [2, 3]
    assert result.cards["source_file"].tolist() == ["ws-1.csv"]
    assert [i["kind"] for i in result.inputs] == ["votes", "cards"]


def test_votes_row_with_an_empty_field_names_file_row_and_column():
    data = b"workshop_id,group_id,theme_id,choice\nws-1,g1,siloer,a\nws-1,,siloer,b\n"

    error = ingest_error(Source("votes.csv", data))

    assert (error.file, error.row, error.column) == ("votes.csv", 3, "group_id")
    assert "votes.csv, row 3, column 'group_id'" in str(error)


# --- errors -----------------------------------------------------------------------------------


def test_missing_text_column_names_file_and_column():
    error = ingest_error(Source("ws-hamar.csv", b"gruppe,notat\ng1,Mer tid\n"))

    assert "ws-hamar.csv" in str(error)
    assert "column 'text'" in str(error)
    assert "no text column" in str(error)


def test_duplicate_card_id_within_a_file_names_row_and_column():
    error = ingest_error(Source("ws.csv", b"card_id,text\nk1,Mer tid\nk2,Tillit\nk1,Penger\n"))

    assert (error.file, error.row, error.column) == ("ws.csv", 4, "card_id")
    assert "ws.csv, row 4, column 'card_id'" in str(error)
    assert "'k1'" in str(error) and "row 2" in str(error)


def test_duplicate_card_id_across_files_names_both_files_row_and_column():
    error = ingest_error(
        Source("a.csv", b"card_id,text\nk1,Mer tid\n"),
        Source("b.csv", b"card_id,text\nk0,Tillit\nk1,Penger\n"),
    )

    assert (error.file, error.row, error.column) == ("b.csv", 3, "card_id")
    assert str(error).startswith("b.csv, row 3, column 'card_id'")
    assert "a.csv, row 2" in str(error)


def test_undecodable_bytes_name_the_file_and_row():
    bad = b"\x81\x8d\x8f\x90\x9d"  # invalid UTF-8, and undefined in cp1252
    for encoding in ("utf-8", "cp1252"):
        with pytest.raises(UnicodeDecodeError):
            bad.decode(encoding)

    error = ingest_error(Source("ws.csv", b"text\n" + bad + b"\n"))

    assert (error.file, error.row) == ("ws.csv", 2)
    assert "undecodable byte 0x81" in str(error)


def test_binary_file_with_nul_bytes_is_rejected():
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06"

    error = ingest_error(Source("kort.csv", data))

    assert error.file == "kort.csv"
    assert "binary content" in str(error)


@pytest.mark.parametrize(
    "data, row, fragment",
    [
        (b'text,group\nMer tid,g1\n"Tillit,g2\nPenger,g3\n', None, "broken CSV quoting"),
        (b'text,group\nMer tid,g1\n"Til"lit,g2\n', 3, "broken CSV quoting"),
        (b"text,group\nMer tid,g1\nTillit, tid og rom,g2\n", 3, "3 fields but the header has 2"),
    ],
    ids=["unterminated-quote", "stray-quote", "too-many-fields"],
)
def test_broken_csv_names_file_and_row(data, row, fragment):
    error = ingest_error(Source("ws.csv", data))

    assert error.file == "ws.csv"
    assert error.row is not None and (row is None or error.row == row)
    assert fragment in str(error)
    assert str(error).startswith(f"ws.csv, row {error.row}")


def test_the_same_file_content_given_twice_is_an_error():
    data = b"text\nMer tid\n"

    error = ingest_error(Source("a.csv", data), Source("kopi/a.csv", data))

    assert error.file == "kopi/a.csv"
    assert "same content as a.csv" in str(error)


def test_duplicate_header_column_is_an_error():
    error = ingest_error(Source("ws.csv", b"tekst,text\nMer tid,Tillit\n"))

    assert (error.file, error.row, error.column) == ("ws.csv", 1, "text")


def test_csv_of_only_delimiters_is_an_ingest_error_not_a_crash():
    error = ingest_error(Source("ws.csv", b";;\n;;\n"))

    assert error.file == "ws.csv"


def test_unreadable_xlsx_is_an_ingest_error_naming_the_file():
    error = ingest_error(Source("ws.xlsx", b"text\nMer tid\n"))

    assert error.file == "ws.xlsx"
    assert "not a readable XLSX workbook" in str(error)


@pytest.mark.parametrize(
    "data, row", [(b'{"text": "Mer tid"}\n{"text": Tillit}\n', 2), (b'{"text": "Mer tid"}\n["Tillit"]\n', 2)]
)
def test_bad_jsonl_line_names_file_and_row(data, row):
    error = ingest_error(Source("kort.jsonl", data))

    assert (error.file, error.row) == ("kort.jsonl", row)


def test_discover_rejects_an_unsupported_extension_naming_the_file(tmp_path):
    (tmp_path / "ws.csv").write_text("text\nMer tid\n", encoding="utf-8")
    (tmp_path / "bilde.pdf").write_bytes(b"%PDF-1.7")

    with pytest.raises(IngestError) as info:
        discover([tmp_path])

    assert "bilde.pdf" in info.value.file
    assert "unsupported file type '.pdf'" in str(info.value)


def test_discover_rejects_a_missing_path(tmp_path):
    with pytest.raises(IngestError, match="does not exist"):
        discover([tmp_path / "finnes-ikke"])


# --- junk -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty card"),
        ("   ", "empty card"),
        ("-", "no words"),
        ("???", "no words"),
        ("1 2 3", "no words"),
        ("x", "no words"),
        ("se baksiden", "placeholder text"),
        ("Se baksiden!", "placeholder text"),
        ("SNU", "placeholder text"),
    ],
)
def test_junk_cards_are_kept_as_rejected_with_a_reason(text, reason):
    data = f"group,text\ng1,Mer tid\ng1,{text}\n".encode("utf-8")

    cards = cards_of(Source("ws.csv", data))

    assert len(cards) == 2
    junk = cards.iloc[1]
    assert junk["text"] == text
    assert junk["status"] == STATUS_REJECTED
    assert reason in junk["reason"]


@pytest.mark.parametrize("text", ["Mer tid", "Ja", "Se baksiden av saken: mer tid", "Snu trenden"])
def test_normal_cards_are_ok_without_a_reason(text):
    cards = cards_of(Source("ws.csv", f"text\n{text}\n".encode("utf-8")))

    assert cards.loc[0, "status"] == STATUS_OK
    assert pd.isna(cards.loc[0, "reason"])


def test_junk_phrases_and_min_letters_come_from_params():
    params = IngestParams(min_letters=0, junk_phrases=["ingen tekst"])

    cards = cards_of(Source("ws.csv", b"text\n???\nIngen tekst.\nse baksiden\n"), params=params)

    assert cards["status"].tolist() == [STATUS_OK, STATUS_REJECTED, STATUS_OK]


# --- conservation -----------------------------------------------------------------------------


CONSERVATION_SOURCES = {
    "csv": (Source("a.csv", b"card_id;text;group\nk1;Mer tid;g1\nk2;;g1\nk3;???;\nk4;Mer tid;g2\n"), 4),
    "xlsx": (Source("b.xlsx", xlsx_bytes([["text", "group"], ["Mer tid", "g1"], [None, "g2"], ["-", None]])), 3),
    "jsonl": (Source("c.jsonl", b'{"text": "Mer tid"}\n{"text": ""}\n\n{"text": "Mer tid"}\n'), 3),
    "txt-lines": (Source("d.txt", "Mer tid\nse baksiden\nMer tid\n".encode()), 3),
    "txt-blocks": (Source("e.txt", "Mer tid\nog rom\n\n???\n\nMer tid\n".encode()), 3),
}


@pytest.mark.parametrize("fmt", sorted(CONSERVATION_SOURCES))
def test_every_data_row_of_a_card_file_yields_exactly_one_card(fmt):
    source, rows = CONSERVATION_SOURCES[fmt]

    result = ingest([source], PARAMS)

    assert len(result.cards) == rows
    assert result.inputs[0]["rows"] == rows
    assert result.cards["source_row"].is_unique
    assert result.cards["card_id"].is_unique


def test_all_formats_together_conserve_every_row():
    sources = [source for source, _ in CONSERVATION_SOURCES.values()]

    cards = cards_of(*sources)

    assert len(cards) == sum(rows for _, rows in CONSERVATION_SOURCES.values())
    assert cards.groupby("source_file").size().to_dict() == {
        source.name: rows for source, rows in CONSERVATION_SOURCES.values()
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    card_texts=st.lists(
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\ufeff"), max_size=40),
        min_size=1,
        max_size=12,
    ),
    delimiter=st.sampled_from([",", ";", "\t"]),
)
def test_csv_rows_round_trip_one_card_each_with_verbatim_text(card_texts, delimiter):
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter)
    writer.writerow(["group", "text"])
    writer.writerows([f"g{i}", text] for i, text in enumerate(card_texts))

    cards = cards_of(Source("ws.csv", buffer.getvalue().encode("utf-8")))

    assert texts(cards) == card_texts
    assert cards["source_row"].tolist() == list(range(2, len(card_texts) + 2))
    assert cards["card_id"].is_unique


# --- run and discover -------------------------------------------------------------------------


def test_discover_skips_markdown_and_dotfiles_and_walks_folders_in_sorted_order(tmp_path):
    for name in ["b.csv", "a/z.csv", "a/y.txt", "c/x.jsonl", "README.md", "a/notes.MD", ".hidden.csv", ".git/x.csv"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("text\nMer tid\n", encoding="utf-8")

    found = discover([tmp_path])

    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/y.txt", "a/z.csv", "b.csv", "c/x.jsonl"]


def test_discover_keeps_files_named_directly_in_the_given_order(tmp_path):
    for name in ["b.csv", "a.csv"]:
        (tmp_path / name).write_text("text\nMer tid\n", encoding="utf-8")

    assert discover([tmp_path / "b.csv", tmp_path / "a.csv"]) == [tmp_path / "b.csv", tmp_path / "a.csv"]


def test_run_writes_cards_votes_and_manifest_with_sha256_per_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    files = {
        "ws-hamar.csv": "text;group\nMer tid;g1\n???;g2\n".encode("utf-8"),
        "ws-molde.txt": "Tillit\n".encode("cp1252"),
        "votes.csv": b"workshop_id,group_id,theme_id,choice\nws-hamar,g1,siloer,a\n",
        "README.md": b"# notes\n",
    }
    for name, data in files.items():
        (corpus / name).write_bytes(data)
    out = tmp_path / "out"

    result = run(inputs=[corpus], out_dir=out, params=PARAMS)

    cards = read_table(out / "cards.parquet", CARDS)
    votes = read_table(out / "votes.parquet", VOTES)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert texts(cards) == ["Mer tid", "???", "Tillit"]
    assert cards["source_file"].tolist() == ["corpus/ws-hamar.csv"] * 2 + ["corpus/ws-molde.txt"]
    assert cards["status"].tolist() == [STATUS_OK, STATUS_REJECTED, STATUS_OK]
    assert cards["group_id"].iloc[:2].tolist() == ["g1", "g2"]
    assert pd.isna(cards["group_id"].iloc[2])  # null in parquet: a .txt card has no group
    assert votes["theme_id"].tolist() == ["siloer"]
    assert manifest["inputs"] == [
        {"path": f"corpus/{name}", "sha256": hashlib.sha256(files[name]).hexdigest(), "kind": kind, "rows": rows}
        for name, kind, rows in [("votes.csv", "votes", 1), ("ws-hamar.csv", "cards", 2), ("ws-molde.txt", "cards", 1)]
    ]
    assert len(result.cards) == 3


def test_run_with_no_input_files_is_an_error(tmp_path):
    (tmp_path / "README.md").write_text("# tomt\n", encoding="utf-8")

    with pytest.raises(IngestError, match="no input files found"):
        run(inputs=[tmp_path], out_dir=tmp_path / "out", params=PARAMS)


def test_a_rerun_with_a_cache_detects_only_new_texts_and_warns_the_same(tmp_path, monkeypatch):
    import pipeline.ingest as ingest_module

    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    english = "We need more co-creation with citizens\nThe budget is too short-term for real change\n"
    (corpus / "ws-a.csv").write_text("text\n" + english + "Vi trenger mer tid til innovasjon\n", encoding="utf-8")
    detected: list[str] = []
    detect = ingest_module.detect_language
    monkeypatch.setattr(ingest_module, "detect_language", lambda text: detected.append(text) or detect(text))

    first = run(inputs=[corpus], out_dir=tmp_path / "a", params=PARAMS, cache_dir=tmp_path / "cache")
    (corpus / "ws-b.csv").write_text("text\nLeaders must dare to try new things\n" + english, encoding="utf-8")
    detected.clear()
    again = run(inputs=[corpus], out_dir=tmp_path / "b", params=PARAMS, cache_dir=tmp_path / "cache")
    assert detected == ["Leaders must dare to try new things"]
    assert list(again.languages) == [hashlib.sha256(b"Leaders must dare to try new things").hexdigest()]
    fresh = run(inputs=[corpus], out_dir=tmp_path / "c", params=PARAMS)

    assert [str(w) for w in again.warnings] == [str(w) for w in fresh.warnings]
    assert [w.kind for w in again.warnings].count("not_norwegian") == 2 and len(first.languages) == 2
    for name in ("cards.parquet", "votes.parquet", "manifest.json"):
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "c" / name).read_bytes()


# --- fidelity: nothing lost or misread on the way in ---------------------------------------------


def saved(workbook: Workbook, cached: dict[str, str] | None = None) -> bytes:
    """The workbook's bytes; `cached` gives formula cells (by reference) the value Excel would have saved.

    openpyxl writes formulas without a value (as a workbook never opened in Excel has them).
    """
    buffer = io.BytesIO()
    workbook.save(buffer)
    if not cached:
        return buffer.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename.startswith("xl/worksheets/"):
                for ref, value in cached.items():
                    data = re.sub(rf'<c r="{ref}"><f>(.*?)</f>(?:<v ?/>|<v></v>)'.encode(),
                                  lambda m: f'<c r="{ref}" t="str"><f>'.encode() + m.group(1)
                                  + f"</f><v>{value}</v>".encode(), data)
            target.writestr(info, data)
    return out.getvalue()


def test_xlsx_formula_cells_give_their_saved_value_and_one_without_a_value_a_warning_naming_the_cell():
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Kort"
    for row in [["text", "group"], ['="Mer "&"tid"', "g1"], ['=A2&" til å prøve"', "g2"], ["Tillit", "=B2"]]:
        sheet.append(row)

    result = ingest([Source("ws.xlsx", saved(workbook, cached={"A2": "Mer tid"}))], PARAMS)

    assert texts(result.cards) == ["Mer tid", "", "Tillit"]
    assert result.cards["group_id"].tolist()[:2] == ["g1", "g2"] and pd.isna(result.cards["group_id"].iloc[2])
    formulas = [w for w in result.warnings if w.kind == "formula_without_value"]
    assert [(w.file, w.row, w.column) for w in formulas] == [("ws.xlsx", 3, "text"), ("ws.xlsx", 4, "group_id")]
    assert "cell A3 of sheet 'Kort' holds the formula '=A2&\" til å prøve\"' without a saved value" in str(formulas[0])
    assert "\n" not in str(formulas[0])


def test_xlsx_merged_cells_fill_down_so_every_row_of_the_merge_keeps_its_group():
    workbook = Workbook()
    sheet = workbook.active
    for row in [["workshop", "group", "text"], ["ws-alta", "g1", "Mer tid"], [None, None, "Tillit"],
                [None, None, "Penger"], [None, "g2", "Færre møter"], [None, "g3", "Et høyt kort"], [None, None, None]]:
        sheet.append(row)
    sheet.merge_cells("A2:A7")  # the workshop on every row
    sheet.merge_cells("B2:B4")  # group g1 on three rows
    sheet.merge_cells("C6:C7")  # one tall card: still one card, row 7 holds nothing of its own
    sheet.merge_cells("B6:B7")

    cards = cards_of(Source("ws.xlsx", saved(workbook)))

    assert texts(cards) == ["Mer tid", "Tillit", "Penger", "Færre møter", "Et høyt kort"]
    assert cards["group_id"].tolist() == ["g1", "g1", "g1", "g2", "g3"]
    assert set(cards["workshop_id"]) == {"ws-alta"}
    assert cards["source_row"].tolist() == [2, 3, 4, 5, 6]


def test_xlsx_merged_text_cell_over_rows_with_their_own_group_is_one_card():
    workbook = Workbook()
    sheet = workbook.active
    for row in [["workshop", "group", "type", "text"], ["ws-alta", "g1", "postit", "Ett kort over to rader"],
                [None, "g2", None, None], ["ws-alta", "g2", "postit", "Et annet kort"]]:
        sheet.append(row)
    sheet.merge_cells("D2:D3")  # the text over two rows, each with a group of its own
    sheet.merge_cells("C2:C3")  # the card type fills down with the ids

    cards = cards_of(Source("ws.xlsx", saved(workbook)))

    assert cards["text"].tolist().count("Ett kort over to rader") == 1
    assert cards["card_type"].tolist()[:2] == ["postit", "postit"]
    assert cards.loc[cards["source_row"] == 3, "status"].tolist() == [STATUS_REJECTED]  # no text of its own


def test_xlsx_reads_the_first_visible_sheet_and_names_a_hidden_one_as_ignored():
    workbook = Workbook()
    template = workbook.active
    template.title = "Mal"
    template.append(["text", "group"])
    template.append(["Skriv kortet her", "g0"])
    template.sheet_state = "hidden"
    cards_sheet = workbook.create_sheet("Kort")
    for row in [["text", "group"], ["Mer tid", "g1"], ["Tillit", "g2"]]:
        cards_sheet.append(row)

    result = ingest([Source("ws.xlsx", saved(workbook))], PARAMS)

    assert texts(result.cards) == ["Mer tid", "Tillit"]
    [ignored] = [w for w in result.warnings if w.kind == "ignored_sheets"]
    assert "cards are read from the first visible sheet 'Kort' only; sheet(s) ['Mal' (hidden)] are ignored" in str(ignored)


def test_a_votes_file_with_an_extra_column_is_still_votes_and_the_column_is_named_as_ignored():
    data = "workshop_id,group_id,theme_id,choice,tekst\nws-1,g1,siloer,agree,Enig\nws-1,g2,siloer,disagree,\n"

    result = ingest([Source("stemmer.csv", data.encode("utf-8")), Source("ws-1.csv", b"text\nMer tid\n")], PARAMS)

    assert result.votes[["group_id", "choice"]].values.tolist() == [["g1", "agree"], ["g2", "disagree"]]
    assert texts(result.cards) == ["Mer tid"]
    assert [i["kind"] for i in result.inputs] == ["votes", "cards"]
    [ignored] = [w for w in result.warnings if w.kind == "ignored_columns"]
    assert (ignored.file, ignored.row, ignored.column) == ("stemmer.csv", 1, "text")
    assert "a votes file (it has theme_id and choice): column(s) ['text'] are not read" in str(ignored)


def test_same_file_name_in_two_folders_without_a_workshop_column_is_an_error_asking_for_one():
    hamar, molde = Source("hamar/ark1.csv", b"text\nMer tid\n"), Source("molde/ark1.csv", b"text\nTillit\n")

    error = ingest_error(hamar, molde)

    assert (error.file, error.row, error.column, error.kind) == ("molde/ark1.csv", 1, "workshop_id", "ambiguous_workshop")
    assert "workshop 'ark1' (from the file name) is also the workshop of hamar/ark1.csv" in str(error)
    # With a workshop column, or in one folder (ws.csv beside ws.txt), nothing is ambiguous.
    assert cards_of(Source("hamar/ark1.csv", b"verksted,text\nws-hamar,Mer tid\n"),
                    Source("molde/ark1.csv", b"verksted,text\nws-molde,Tillit\n"))["workshop_id"].tolist() == [
        "ws-hamar", "ws-molde"]
    assert set(cards_of(Source("corpora/demo/ws-hamar-2026-10.csv", b"text\nMer tid\n"),
                        Source("corpora/demo/ws-hamar-2026-10.txt", b"Tillit\n"))["workshop_id"]) == {"ws-hamar-2026-10"}


def test_a_mac_roman_file_is_an_error_naming_the_row_and_the_misread_word_never_garbled_text():
    data = "tekst\nMer tid\nFølgeforskning på tvers av sektorer\nTillit\n".encode("mac_roman")
    assert "F¿lgeforskning" in data.decode("cp1252")  # what reading it as cp1252 would show

    error = ingest_error(Source("ws.csv", data))

    assert (error.file, error.row, error.kind) == ("ws.csv", 3, "undecodable")
    assert "'F¿lgeforskning'" in str(error) and "Mac Roman" in str(error)
    # Real cp1252 with quotes, dashes and symbols beside letters is still read.
    real = "tekst\n«Tillit» mandag–fredag, Teams® og 50°\n«Ønske»: 2½ år med øre-merking\n".encode("cp1252")
    assert texts(cards_of(Source("ok.csv", real))) == ["«Tillit» mandag–fredag, Teams® og 50°",
                                                        "«Ønske»: 2½ år med øre-merking"]


@pytest.mark.parametrize("value, found", [('{"a": 1}', "an object"), ('["Mer", "tid"]', "an array"),
                                          ("42", "a number"), ("true", "a boolean"), ("null", "null")])
def test_jsonl_text_that_is_not_a_string_is_an_error_naming_file_line_and_column(value, found):
    good = Source("a.jsonl", b'{"text": "Tillit"}\n')
    data = f'{{"text": "Mer tid"}}\n\n{{"text": "Penger", "group": "g1"}}\n{{"group": "g2", "text": {value}}}\n'

    error = ingest_error(good, Source("kort.jsonl", data.encode("utf-8")))

    assert (error.file, error.row, error.column, error.kind) == ("kort.jsonl", 4, "text", "invalid_json")
    assert f"expected the card text as a JSON string, found {found}" in str(error)


def test_jsonl_duplicate_key_names_the_line_it_is_on():
    data = b'{"text": "Mer tid"}\n{"text": "Tillit"}\n{"text": "Penger", "tekst": "Penger"}\n'

    error = ingest_error(Source("kort.jsonl", data))

    assert (error.file, error.row, error.column) == ("kort.jsonl", 3, "text")


def test_plain_text_keeps_unicode_line_separators_inside_one_card():
    lines = ["Mer tid\u2028til å prøve", "Færre\u2029møter", "Tillit\x85og rom", "Penger\x0bog tid", "Rom\x0cfor feil",
             "Samarbeid\x1cpå tvers"]

    cards = cards_of(Source("ws.txt", "\n".join(lines).encode("utf-8")))

    assert texts(cards) == lines
    assert cards["source_row"].tolist() == [1, 2, 3, 4, 5, 6]


def test_group_ids_are_compared_case_folded_without_invisible_characters_in_cards_and_votes():
    cards = "gruppe,tekst\ng1,Mer tid\nG1,Tillit\ng1\u200b,Penger\n\u00a0G1\u00ad ,Rom\nGruppe  Øst,Feil\n"
    votes = "workshop_id,group_id,theme_id,choice\nws,G1\u200b,siloer,agree\nws,gruppe øst,siloer,agree\n"

    result = ingest([Source("ws.csv", cards.encode("utf-8")), Source("votes.csv", votes.encode("utf-8"))], PARAMS)

    assert result.cards["group_id"].tolist() == ["g1", "g1", "g1", "g1", "gruppe øst"]
    assert result.votes["group_id"].tolist() == ["g1", "gruppe øst"]


# --- generated card ids -----------------------------------------------------------------------


@pytest.mark.parametrize("reverse", [False, True])
def test_generated_ids_of_the_same_text_do_not_depend_on_the_row_order(reverse):
    rows = ["Siloene stopper alt,ws-a,g1", "Siloene stopper alt,ws-a,g2", "Siloene stopper alt,ws-a,g2",
            "Vi trenger mer tid,ws-a,g1"]
    data = "text,workshop_id,group_id\n" + "\n".join(rows[::-1] if reverse else rows) + "\n"
    cards = cards_of(Source("ws.csv", data.encode("utf-8")))
    base = content_id("ws-a", "Siloene stopper alt")
    pairs = sorted(zip(cards["card_id"], cards["group_id"]))
    assert pairs == sorted([(base, "g1"), (f"{base}-2", "g2"), (f"{base}-3", "g2"),
                            (content_id("ws-a", "Vi trenger mer tid"), "g1")])


def test_generated_ids_of_the_same_text_across_files_do_not_depend_on_the_file_order():
    a = Source("a.csv", b"text,workshop_id,group_id\nSiloene stopper alt,ws-a,g2\n")
    b = Source("b.csv", b"text,workshop_id,group_id\nSiloene stopper alt,ws-a,g1\n")
    base = content_id("ws-a", "Siloene stopper alt")
    for sources in ([a, b], [b, a]):
        cards = cards_of(*sources)
        assert dict(zip(cards["group_id"], cards["card_id"])) == {"g1": base, "g2": f"{base}-2"}


def test_a_generated_id_never_takes_a_given_one():
    base = content_id("ws-a", "Siloene stopper alt")
    data = f"card_id,text,workshop_id\n,Siloene stopper alt,ws-a\n{base},Noe annet her,ws-a\n"
    cards = cards_of(Source("ws.csv", data.encode("utf-8")))
    assert sorted(cards["card_id"]) == sorted([base, f"{base}-2"])


# --- streamed: a file at a time, state across files in digests ----------------------------------------


def streamed_corpus(folder) -> None:
    """Files that exercise every check across files: given and generated ids (one given id is the id a card
    without one would get), the same text twice in one workshop, ids that redact alike, an overlapping
    file, English cards, a long card, junk, a tiny workshop and votes for a workshop without cards."""
    folder.mkdir()
    taken = content_id("ws-b", "Vi trenger mer tid til innovasjon")
    rows = ["card_id,workshop_id,group_id,text"]
    rows += [f"k-{n},ws-ola@x.no,g{n % 3},Kort nummer {n} om tillit og samarbeid" for n in range(1, 9)]
    rows += [f"{taken},ws-a,g1,Gitt id som ser generert ut", "tlf 99887766,ws-a,g2,Ring meg om dette"]
    (folder / "a.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    for k in range(6):
        lines = ["workshop_id,group,text", "ws-b,g1,Vi trenger mer tid til innovasjon",
                 f"ws-b,g{k},We need more co-creation with citizens in round {k}",
                 f"ws-b,g2,Ledere må tørre å prøve nye ting i runde {k}", "ws-b,g3,???",
                 f"ws-kari@x.no,g1,Samarbeid på tvers er viktig i kommune {k}"]
        (folder / f"b{k}.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "c.txt").write_text("Lang tekst " * 300 + "\n\nEtt kort i et lite verksted\n", encoding="utf-8")
    (folder / "d.csv").write_text("\n".join(rows[:1] + [f"x-{n},ws-ola@x.no,g{n % 3},Kort nummer {n} om tillit og "
                                                        f"samarbeid" for n in range(1, 7)]) + "\n", encoding="utf-8")
    (folder / "votes.csv").write_text("workshop_id,group_id,theme_id,choice\nws-a,g1,siloer,a\nws-q,g1,siloer,b\n",
                                      encoding="utf-8")
    (folder / "z").mkdir()  # workshops from file names that redact alike, with the same texts
    (folder / "z" / "ws-99887766.csv").write_text("text\nMer tid\nMer tid\nMer tid\n", encoding="utf-8")
    (folder / "z" / "ws-41234567.csv").write_text("text,group\nMer tid,g1\nMer tid,g2\nMindre tid\n", encoding="utf-8")


@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "cache"])
def test_run_streams_the_files_and_writes_what_ingest_gives_in_memory(tmp_path, monkeypatch, cache):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import pipeline.ingest as ingest_module

    monkeypatch.chdir(tmp_path)
    streamed_corpus(tmp_path / "corpus")
    in_memory = ingest([ingest_module.read_source(p) for p in discover([tmp_path / "corpus"])], PARAMS)
    # Batches of 4 cards: the spool, the language lookups and the memo flush each go over several batches.
    monkeypatch.setattr(ingest_module, "BATCH_ROWS", 4)
    result = run(inputs=[tmp_path / "corpus"], out_dir=tmp_path / "out", params=PARAMS,
                 cache_dir=tmp_path / "cache" if cache else None)

    written = pq.read_table(tmp_path / "out" / "cards.parquet")
    assert written.equals(pa.Table.from_pandas(in_memory.cards, schema=CARDS, preserve_index=False))
    assert pq.ParquetFile(tmp_path / "out" / "cards.parquet").metadata.num_row_groups > 1
    assert result.cards is None and result.card_count == len(in_memory.cards) == 54
    assert result.rejected == int((in_memory.cards["status"] == STATUS_REJECTED).sum()) == 6
    assert read_table(tmp_path / "out" / "votes.parquet", VOTES).values.tolist() == in_memory.votes.values.tolist()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["warnings"] == [w.as_dict() for w in in_memory.warnings]
    assert manifest["inputs"] == in_memory.inputs and manifest["redactions"] == in_memory.redactions
    assert manifest["redactions_by_field"] == in_memory.redactions_by_field
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cards.parquet", "manifest.json", "votes.parquet"]
    # What the corpus was made to show, so that the comparison above compares something.
    ids = in_memory.cards.set_index("text")["card_id"]
    taken = content_id("ws-b", "Vi trenger mer tid til innovasjon")
    assert ids["Gitt id som ser generert ut"] == taken
    assert sorted(in_memory.cards.loc[in_memory.cards["text"] == "Vi trenger mer tid til innovasjon", "card_id"]) == \
        sorted(f"{taken}-{k}" for k in range(2, 8))
    assert sorted(set(in_memory.cards["workshop_id"])) == ["[e-post]", "[e-post]-2", "c", "ws-[telefon]",
                                                           "ws-[telefon]-2", "ws-a", "ws-b"]
    assert {w.kind for w in in_memory.warnings} == {"overlapping_files", "long_card", "not_norwegian",
                                                    "small_workshop", "unknown_workshop"}


def test_streamed_run_names_file_row_and_column_of_a_card_id_seen_files_before(tmp_path, monkeypatch):
    import pipeline.ingest as ingest_module

    monkeypatch.chdir(tmp_path)
    streamed_corpus(tmp_path / "corpus")
    (tmp_path / "corpus" / "e.csv").write_text("card_id,text\nny-1,Mer tid\nk-7,Mer penger\n", encoding="utf-8")
    monkeypatch.setattr(ingest_module, "BATCH_ROWS", 4)

    with pytest.raises(IngestError) as info:
        run(inputs=[tmp_path / "corpus"], out_dir=tmp_path / "out", params=PARAMS)
    assert str(info.value) == ("corpus/e.csv, row 3, column 'card_id': duplicate card id 'k-7' (first seen in "
                               "corpus/a.csv, row 8); expected every card id once across all files")
    assert (info.value.kind, info.value.row) == ("duplicate_card_id", 3)
    assert not (tmp_path / "out" / "cards.parquet").exists() and not list((tmp_path / "out").glob(".ingest-*"))


def test_digest_index_finds_what_was_added_over_many_runs():
    from pipeline.ingest import DigestIndex, _digest, _digest_rows

    index = DigestIndex()
    for start in range(0, 1000, 37):  # runs of uneven sizes, merged as they grow
        keys = [f"kort-{n}" for n in range(start, min(start + 37, 1000))]
        index.add(_digest_rows([_digest(key) for key in keys]), np.arange(start, start + len(keys), dtype=np.int64))
    assert len(index.runs) < 10
    asked = [f"kort-{n}" for n in (0, 999, 500, 1000, -1)] + ["kort-5x"]
    assert index.get(_digest_rows([_digest(key) for key in asked])).tolist() == [0, 999, 500, -1, -1, -1]
    assert _digest("ab", "c") != _digest("a", "bc")
