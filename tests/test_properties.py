"""Property tests of ingest and normalise on arbitrary input: success with every row kept, or a clean error.

Arbitrary Unicode text, CSV quoting styles, delimiters, line endings, encodings and column
orders, plus raw bytes and broken quoting: ingest either returns one card per data row or
raises an `IngestError` (one line naming the file), never anything else; normalise keeps every
card. Seeds and example counts are fixed by the "ci" profile in conftest.py.
"""
from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from pipeline import ingest as ingest_stage
from pipeline import normalise as normalise_stage
from pipeline.cli import app
from pipeline.ingest import IngestError, Source, ingest
from pipeline.params import IngestParams, NormaliseParams
from pipeline.pii import redact
from pipeline.records import CARDS, NORMALISED, read_table

PARAMS = IngestParams()
SLOW = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large]

UNICODE = st.characters(blacklist_categories=("Cs",))  # lone surrogates cannot be encoded at all
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # NUL: a binary file
CARD_TEXT = st.text(UNICODE, max_size=40)
EXTRA_COLUMNS = ["group", "type", "workshop", "farge", "bord nr"]


def outcome(sources: list[Source]):
    """The result, or the IngestError; anything else fails the test. Checks conservation on success."""
    try:
        result = ingest(sources, PARAMS)
    except IngestError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(exc.file)
        assert exc.file and exc.kind
        return exc
    card_rows = sum(item["rows"] for item in result.inputs if item["kind"] == "cards")
    assert len(result.cards) == card_rows
    assert result.cards["card_id"].is_unique
    assert not result.cards.duplicated(["source_file", "source_row"]).any()
    assert result.cards.loc[result.cards["status"] == "rejected", "reason"].notna().all()
    return result


@st.composite
def card_tables(draw):
    """(header, rows, text position): a card table with a text column among extra columns in any order."""
    columns = draw(st.permutations(["text"] + draw(st.lists(st.sampled_from(EXTRA_COLUMNS), unique=True))))
    texts = draw(st.lists(CARD_TEXT, min_size=1, max_size=10))
    rows = [[text if column == "text" else draw(st.sampled_from(["", "g1", "ønske", "ws-1", "4", " x "]))
             for column in columns] for text in texts]
    return columns, rows, columns.index("text")


@settings(max_examples=150, suppress_health_check=SLOW)
@given(
    table=card_tables(),
    delimiter=st.sampled_from([",", ";", "\t"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]),
    lineterminator=st.sampled_from(["\r\n", "\n"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
)
def test_csv_with_any_text_quoting_delimiter_encoding_and_column_order_keeps_every_row(
        table, delimiter, quoting, lineterminator, encoding):
    columns, rows, text_at = table
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, quoting=quoting, lineterminator=lineterminator)
    writer.writerow(columns)
    writer.writerows(rows)
    try:
        data = buffer.getvalue().encode(encoding)
    except UnicodeEncodeError:
        assume(False)  # cp1252 cannot hold this text; Excel would not have written it either

    result = outcome([Source("ws.csv", data)])

    if isinstance(result, IngestError):
        # Well-formed CSV fails only for what is really wrong with its content.
        assert result.kind in {"binary", "empty_file", "no_cards"}, str(result)
        return
    # A row is a card unless every cell is blank, as in a spreadsheet.
    kept = [row for row in rows if any(cell.strip() for cell in row)]
    assert len(result.cards) == len(kept)
    if encoding != "cp1252":  # cp1252 bytes can also be valid UTF-8, which wins
        expected = [redact(row[text_at])[0] for row in kept]
        assert result.cards["text"].tolist() == expected


@settings(max_examples=150, suppress_health_check=SLOW)
@given(
    lines=st.lists(st.text(alphabet='ab ø,;\t"\r\n', max_size=12), min_size=1, max_size=8),
    header=st.sampled_from(["text", "text,group", "group;text", "tekst\tgruppe", '"text","group"']),
)
def test_csv_with_broken_quoting_and_stray_delimiters_keeps_every_row_or_names_the_row(lines, header):
    data = (header + "\n" + "\n".join(lines)).encode("utf-8")

    result = outcome([Source("ws.csv", data)])

    if isinstance(result, IngestError):
        assert result.kind in {"broken_quoting", "too_many_fields", "no_cards"}, str(result)
        if result.kind != "no_cards":
            assert result.row is not None and result.row >= 2


@settings(max_examples=200, suppress_health_check=SLOW)
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".tsv", ".txt", ".jsonl", ".xlsx"]))
def test_arbitrary_bytes_give_cards_or_a_clean_error(data, suffix):
    outcome([Source("kort" + suffix, data)])


@settings(max_examples=150, suppress_health_check=SLOW)
@given(text=st.text(UNICODE, max_size=200), suffix=st.sampled_from([".csv", ".txt", ".jsonl"]))
def test_arbitrary_unicode_files_give_cards_or_a_clean_error(text, suffix):
    outcome([Source("kort" + suffix, text.encode("utf-8"))])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(UNICODE, max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(UNICODE, max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, suppress_health_check=SLOW)
@given(objects=st.lists(st.dictionaries(st.sampled_from(["text", "tekst", "group", "id", "x"]) | st.text(max_size=4),
                                        JSON_VALUES, max_size=4), min_size=1, max_size=6),
       ascii_only=st.booleans())
def test_jsonl_with_arbitrary_objects_keeps_every_line_or_fails_cleanly(objects, ascii_only):
    data = "\n".join(json.dumps(obj, ensure_ascii=ascii_only) for obj in objects).encode("utf-8", "surrogatepass")

    result = outcome([Source("kort.jsonl", data)])

    if not isinstance(result, IngestError) and all("text" in obj for obj in objects):
        assert len(result.cards) == len(objects)


@settings(max_examples=40, suppress_health_check=SLOW)
@given(data=st.binary(max_size=200) | st.text(UNICODE, max_size=120).map(lambda t: t.encode("utf-8")),
       suffix=st.sampled_from([".csv", ".txt", ".jsonl"]))
def test_cli_ingest_of_anything_exits_0_or_1_with_one_error_line_never_a_traceback(data, suffix, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    (folder / f"kort{suffix}").write_bytes(data)

    result = CliRunner().invoke(app, ["ingest", "--input", str(folder / f"kort{suffix}"), "--out",
                                      str(folder / "out"), "--params", str(_empty_params(folder))])

    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("innsikt: error: ") and f"kort{suffix}" in lines[0]
    else:
        cards = read_table(folder / "out" / "cards.parquet", CARDS)
        assert len(cards) >= 1


def _empty_params(folder):
    path = folder / "params.yaml"
    path.write_text("", encoding="utf-8")
    return path


# --- normalise -----------------------------------------------------------------------------------


def ingested_frame(texts: list[str]) -> pd.DataFrame:
    return ingest([Source("ws.csv", _csv(texts).encode("utf-8"))], PARAMS).cards


def _csv(texts: list[str]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["group", "text"])
    writer.writerows(["g", text] for text in texts)
    return buffer.getvalue()


@settings(max_examples=60, suppress_health_check=SLOW)
@given(texts=st.lists(st.text(TEXT_CHARS, max_size=60), min_size=1, max_size=6))
def test_normalise_keeps_every_card_and_its_verbatim_text_for_any_unicode(texts):
    cards = ingested_frame(texts)

    out = normalise_stage.normalise_cards(cards, NormaliseParams())[0]

    assert sorted(out["card_id"]) == sorted(cards["card_id"])  # in canonical order, not necessarily the input's
    given = cards.set_index("card_id").loc[out["card_id"]]
    assert out["text"].tolist() == given["text"].tolist()
    assert out["status"].tolist() == given["status"].tolist()
    assert all(isinstance(t, str) for t in out["text_norm"])
    assert all(isinstance(code, str) and code for code in out["language"])
    ids = set(out["card_id"])
    assert all(d is None or d in ids for d in out["duplicate_of"])


@settings(max_examples=25, suppress_health_check=SLOW)
@given(texts=st.lists(st.text(UNICODE, max_size=60), min_size=1, max_size=6),
       delimiter=st.sampled_from([",", ";"]))
def test_ingest_then_normalise_through_files_conserves_every_card(texts, delimiter, tmp_path_factory):
    folder = tmp_path_factory.mktemp("stages")
    buffer = io.StringIO(newline="")
    csv.writer(buffer, delimiter=delimiter).writerows([["text", "group"]] + [[t, "g1"] for t in texts])
    (folder / "ws.csv").write_bytes(buffer.getvalue().encode("utf-8"))

    try:
        result = ingest_stage.run(inputs=[folder / "ws.csv"], out_dir=folder / "ingest", params=PARAMS)
    except IngestError as exc:
        assert exc.kind in {"binary"}, str(exc)
        return
    normalise_stage.run(cards_path=folder / "ingest" / "cards.parquet", out_dir=folder / "normalise",
                        params=NormaliseParams())

    normalised = read_table(folder / "normalise" / "cards.parquet", NORMALISED)
    assert len(result.cards) == len(texts)
    assert sorted(normalised["card_id"]) == sorted(result.cards["card_id"])  # normalise puts them in canonical order
    text_of = dict(zip(normalised["card_id"], normalised["text"]))
    assert [text_of[card_id] for card_id in result.cards["card_id"]] == [redact(t)[0] for t in texts]


@pytest.mark.parametrize("name", ["ws.csv", "ws.tsv", "ws.txt", "ws.jsonl", "ws.xlsx"])
def test_an_empty_file_of_any_format_is_the_same_clean_error(name):
    with pytest.raises(IngestError) as info:
        ingest([Source(name, b"")], PARAMS)

    assert info.value.kind == "empty_file"
