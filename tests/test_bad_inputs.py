"""The bad-input corpus (tests/bad_inputs/): each file gives exactly the error or warning its README line says.

Errors: the exact kind, the file named, and the row and column where there is one, and on the
command line one `innsikt: error:` line and exit code 1. Warnings: exactly the expected kinds,
and the run goes on with every card accounted for. Files that are odd but fine: no warning.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import FIXTURES
from pipeline import ingest as ingest_stage
from pipeline.cli import app
from pipeline.ingest import IngestError
from pipeline.params import IngestParams, ParamsError, load_params
from pipeline.records import CARDS, STATUS_REJECTED, read_table
from pipeline.taxonomy import TaxonomyError, load_taxonomy

REPO = Path(__file__).resolve().parents[1]
BAD = Path(__file__).parent / "bad_inputs"
BASE = FIXTURES / "small_corpus" / "ws-alta.csv"  # 18 good cards of workshop ws-alta, read with every case
TAXONOMY = REPO / "configs" / "taxonomy.yaml"

sys.path.insert(0, str(BAD))
import make_bad_inputs  # noqa: E402


@dataclass(frozen=True)
class Case:
    files: tuple[str, ...]
    outcome: str  # "error", "warning" or "ok"
    kind: str = ""  # IngestError.kind for ingest errors
    error: type[Exception] = IngestError
    named: str = ""  # the file the error names (default: the last file)
    row: int | None = None
    column: str | None = None
    fragments: tuple[str, ...] = ()
    warnings: frozenset[str] = field(default_factory=frozenset)  # expected IngestWarning kinds


def error(*files, kind="", error=IngestError, named="", row=None, column=None, fragments=()):
    return Case(tuple(files), "error", kind, error, named, row, column, tuple(fragments))


def warning(*files, kinds):
    return Case(tuple(files), "warning", warnings=frozenset(kinds))


def fine(*files):
    return Case(tuple(files), "ok")


CASES = {
    # --- errors: card files
    "missing_text_column": error("missing_text_column.csv", kind="missing_text_column", row=1, column="text",
                                 fragments=["no text column", "found ['card_id', 'group_id', 'notat']"]),
    "renamed_text_column_kommentar": error("renamed_text_column_kommentar.csv", kind="missing_text_column", row=1,
                                           column="text", fragments=["'kommentar'"]),
    "duplicate_card_id": error("duplicate_card_id.csv", kind="duplicate_card_id", row=5, column="card_id",
                               fragments=["'dup-2'", "duplicate_card_id.csv, row 3"]),
    "duplicate_id_across_files": error("duplicate_id_across_files_a.csv", "duplicate_id_across_files_b.csv",
                                       kind="duplicate_card_id", row=3, column="card_id",
                                       fragments=["'kort-3'", "duplicate_id_across_files_a.csv, row 4"]),
    "same_content_twice": error("same_content_twice_a.csv", "same_content_twice_b.csv", kind="same_content",
                                fragments=["same content as", "same_content_twice_a.csv"]),
    "same_workshop_twice": error("same_workshop_twice.csv", "same_workshop_twice.xlsx", kind="same_cards",
                                 fragments=["the same 6 cards as", "same_workshop_twice.csv"]),
    "undecodable_bytes": error("undecodable_bytes.csv", kind="undecodable", row=3,
                               fragments=["undecodable byte 0x81", "expected UTF-8, UTF-16 or cp1252"]),
    "binary_file": error("binary_file.csv", kind="binary", row=3, fragments=["binary content (NUL bytes)"]),
    "broken_quoting_unclosed_quote": error("broken_quoting_unclosed_quote.csv", kind="broken_quoting", row=3,
                                           fragments=["never closed"]),
    "broken_quoting_stray_quote": error("broken_quoting_stray_quote.csv", kind="broken_quoting", row=3,
                                        fragments=["broken CSV quoting"]),
    "too_many_fields_unquoted_comma": error("too_many_fields_unquoted_comma.csv", kind="too_many_fields", row=3,
                                            fragments=["3 fields but the header has 2"]),
    "empty_file": error("empty_file.csv", kind="empty_file", fragments=["empty file"]),
    "duplicate_column_names": error("duplicate_column_names.csv", kind="duplicate_column", row=1, column="text",
                                    fragments=["appears twice in the header"]),
    "jsonl_invalid_line": error("jsonl_invalid_line.jsonl", kind="invalid_json", row=3, fragments=["invalid JSON"]),
    "jsonl_lone_surrogate": error("jsonl_lone_surrogate.jsonl", kind="invalid_json", row=2, column="text",
                                  fragments=["lone surrogate"]),
    "xlsx_not_a_workbook": error("xlsx_not_a_workbook.xlsx", kind="unreadable_xlsx",
                                 fragments=["not a readable XLSX workbook"]),
    "mac_roman_encoding": error("mac_roman_encoding.csv", kind="undecodable", row=3,
                                fragments=["'F¿lgeforskning' looks misread", "Mac Roman", "save it again as 'CSV UTF-8'"]),
    "jsonl_text_not_a_string": error("jsonl_text_not_a_string.jsonl", kind="invalid_json", row=4, column="text",
                                     fragments=["expected the card text as a JSON string, found an object"]),
    "same_file_name_in_two_folders": error("same_file_name_in_two_folders/hamar/ark1.csv",
                                           "same_file_name_in_two_folders/molde/ark1.csv", kind="ambiguous_workshop",
                                           row=1, column="workshop_id",
                                           fragments=["workshop 'ark1' (from the file name) is also the workshop of",
                                                      "expected a workshop_id column"]),
    "unsupported_extension": error("unsupported_extension.pdf", kind="unsupported_type",
                                   fragments=["unsupported file type '.pdf'"]),
    # --- errors: votes, checked against the taxonomy at the door
    "votes_unknown_theme": error("votes_unknown_theme.csv", kind="unknown_theme", row=3, column="theme_id",
                                 fragments=["'budsjett-systemet' is not a theme", "did you mean 'budsjettsystemet'"]),
    "votes_bad_choice": error("votes_bad_choice.csv", kind="bad_choice", row=3, column="choice",
                              fragments=["'agree' is not a choice for theme 'regelverk'", "['1', '2']"]),
    "votes_empty_field": error("votes_empty_field.csv", kind="empty_vote_field", row=3, column="group_id"),
    # --- errors: params and taxonomy
    "params_unknown_key": error("params_unknown_key.yaml", error=ParamsError,
                                fragments=["line 3", "ingest.min_leters=3", "unknown key", "'min_letters'"]),
    "params_out_of_range": error("params_out_of_range.yaml", error=ParamsError,
                                 fragments=["line 4", "cluster.hdbscan.min_cluster_size=1", "greater than or equal to 2"]),
    "params_duplicate_key": error("params_duplicate_key.yaml", error=ParamsError,
                                  fragments=["line 3", "'batch_size' appears twice (first on line 2)"]),
    "taxonomy_duplicate_ids": error("taxonomy_duplicate_ids.yaml", error=TaxonomyError,
                                    fragments=["categories[1].themes[1]", "'siloer' is used twice",
                                               "first at categories[0].themes[0], line 6", "(line 13)"]),
    "taxonomy_reserved_id_emergent": error("taxonomy_reserved_id_emergent.yaml", error=TaxonomyError,
                                           fragments=["'emergent' is reserved"]),
    # --- warnings: suspicious but usable
    "xlsx_with_extra_sheets": warning("xlsx_with_extra_sheets.xlsx", kinds={"ignored_sheets"}),
    "xlsx_hidden_first_sheet": warning("xlsx_hidden_first_sheet.xlsx", kinds={"ignored_sheets"}),
    "xlsx_formula_without_value": warning("xlsx_formula_without_value.xlsx", kinds={"formula_without_value"}),
    "votes_extra_text_column": warning("votes_extra_text_column.csv", kinds={"ignored_columns"}),
    "long_card": warning("long_card.csv", kinds={"long_card"}),
    "english_cards": warning("english_cards.csv", kinds={"not_norwegian"}),
    "small_workshop": warning("small_workshop.csv", kinds={"small_workshop"}),
    "votes_unknown_workshop": warning("votes_unknown_workshop.csv", kinds={"unknown_workshop"}),
    "header_only": warning("header_only.csv", kinds={"header_only"}),
    "overlapping_workshop_exports": warning("overlapping_workshop_exports_a.csv",
                                            "overlapping_workshop_exports_b.csv", kinds={"overlapping_files"}),
    # --- odd but fine
    "emoji_cards": fine("emoji_cards.csv"),
    "cp1252_excel": fine("cp1252_excel.csv"),
    "utf16_excel": fine("utf16_excel.csv"),
    "utf8_bom_semicolon": fine("utf8_bom_semicolon.csv"),
    "single_column_unquoted_commas": fine("single_column_unquoted_commas.csv"),
    "xlsx_merged_group_cells": fine("xlsx_merged_group_cells.xlsx"),
    "txt_unicode_line_separators": fine("txt_unicode_line_separators.txt"),
    "group_ids_case_and_invisible": fine("group_ids_case_and_invisible.csv"),
    "workshop_id_formula": fine("workshop_id_formula.csv"),
}
ERRORS = sorted(name for name, case in CASES.items() if case.outcome == "error")
USABLE = sorted(name for name, case in CASES.items() if case.outcome != "error")


def paths(case: Case) -> list[Path]:
    return [BAD / name for name in case.files]


def outcome(case: Case, out: Path):
    """What the pipeline's front door makes of the case: params and taxonomy loaded, or cards ingested."""
    first = case.files[0]
    if first.startswith("params_"):
        return load_params(BAD / first)
    if first.startswith("taxonomy_"):
        return load_taxonomy(BAD / first)
    return ingest_stage.run(inputs=[BASE, *paths(case)], out_dir=out, params=IngestParams(), taxonomy=TAXONOMY)


def cli_args(case: Case, out: Path) -> list[str]:
    first = case.files[0]
    args = ["ingest", "--input", str(BASE), "--out", str(out), "--taxonomy", str(TAXONOMY)]
    if first.startswith("params_"):
        return args + ["--params", str(BAD / first)]
    if first.startswith("taxonomy_"):
        return args[:-1] + [str(BAD / first)]
    return args[:3] + [str(p) for p in paths(case)] + args[3:]


@pytest.mark.parametrize("name", ERRORS)
def test_bad_input_stops_with_the_exact_error(name, tmp_path):
    case = CASES[name]

    with pytest.raises(case.error) as info:
        outcome(case, tmp_path / "out")

    message = str(info.value)
    assert "\n" not in message
    named = case.named or case.files[-1]
    assert named in message
    for fragment in case.fragments:
        assert fragment in message
    if case.error is IngestError:
        assert info.value.kind == case.kind
        assert info.value.file.endswith("/" + named)
        assert (info.value.row, info.value.column) == (case.row, case.column)
        where = f"{named}" + (f", row {case.row}" if case.row else "") + (f", column {case.column!r}" if case.column else "")
        assert where + ":" in message
    assert not (tmp_path / "out" / "cards.parquet").exists()  # nothing written on an error


@pytest.mark.parametrize("name", USABLE)
def test_usable_input_gives_exactly_the_expected_warnings_and_keeps_every_card(name, tmp_path):
    case = CASES[name]

    result = outcome(case, tmp_path)

    assert {w.kind for w in result.warnings} == set(case.warnings)
    for warning in result.warnings:
        assert "\n" not in str(warning)
        assert any(warning.file.endswith("/" + name) for name in case.files)
    cards = read_table(tmp_path / "cards.parquet", CARDS)
    data_rows = sum(item["rows"] for item in result.inputs if item["kind"] == "cards")
    assert len(cards) == data_rows
    assert not cards.duplicated(["source_file", "source_row"]).any()
    assert cards.loc[cards["status"] == STATUS_REJECTED, "reason"].notna().all()


@pytest.mark.parametrize("name", ERRORS)
def test_cli_reports_a_bad_input_in_one_line_with_exit_code_1(name, tmp_path):
    case = CASES[name]

    result = CliRunner().invoke(app, cli_args(case, tmp_path / "out"))

    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("innsikt: error: ")
    assert (case.named or case.files[-1]) in lines[0]
    assert "Traceback" not in result.output


def test_warnings_are_single_lines_on_stderr_and_the_run_succeeds(tmp_path):
    files = [BASE] + [BAD / name for name in ("long_card.csv", "english_cards.csv", "small_workshop.csv",
                                              "xlsx_with_extra_sheets.xlsx", "votes_unknown_workshop.csv")]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "ingest", "--input", *map(str, files), "--out", str(tmp_path),
         "--taxonomy", str(TAXONOMY)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )

    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("innsikt: warning: ")]
    assert len(warnings) == 5, done.stderr
    assert any("tests/bad_inputs/long_card.csv, row 5, column 'text': card of 12," in line for line in warnings)
    assert any("english_cards.csv: 4 card(s) look not Norwegian: en (4), rows 2, 3, 4, 6" in line for line in warnings)
    assert any("workshop 'ws-lillehammer' has only 3 usable card(s)" in line for line in warnings)
    assert any("sheet(s) ['Notater'] are ignored" in line for line in warnings)
    assert any("votes_unknown_workshop.csv, row 3, column 'workshop_id'" in line and "did you mean 'ws-alta'" in line
               for line in warnings)
    assert "Traceback" not in done.stderr


# --- what the odd-but-fine files hold ----------------------------------------------------------


def ingested(name: str, tmp_path: Path):
    ingest_stage.run(inputs=[BAD / name], out_dir=tmp_path, params=IngestParams())
    return read_table(tmp_path / "cards.parquet", CARDS)


def test_long_card_is_kept_whole(tmp_path):
    cards = ingested("long_card.csv", tmp_path)

    assert cards["text"].str.len().max() == len(make_bad_inputs.long_card())


def test_emoji_cards_are_kept_verbatim_and_an_emoji_only_card_is_rejected_with_a_reason(tmp_path):
    cards = ingested("emoji_cards.csv", tmp_path)

    assert "Rom for å feile 🤷‍♀️ uten straff" in cards["text"].tolist()
    emoji_only = cards[cards["text"] == "👍👍"].iloc[0]
    assert emoji_only["status"] == STATUS_REJECTED and "no words" in emoji_only["reason"]


@pytest.mark.parametrize("name", ["cp1252_excel.csv", "utf16_excel.csv", "utf8_bom_semicolon.csv"])
def test_excel_encodings_decode_to_the_same_norwegian_texts(name, tmp_path):
    texts = ingested(name, tmp_path)["text"].str.replace(" – nå", "", regex=False).tolist()

    assert texts == [text for _, text in make_bad_inputs.CARDS]


def test_single_column_file_keeps_unquoted_commas_and_semicolons_in_the_text(tmp_path):
    cards = ingested("single_column_unquoted_commas.csv", tmp_path)

    assert cards["text"].tolist()[:3] == ["Mer tid, mindre byråkrati", "Tillit, ikke kontroll",
                                          "Budsjett over flere år; ikke bare ett"]


def test_merged_group_cells_give_every_row_of_the_merge_its_group_and_workshop(tmp_path):
    cards = ingested("xlsx_merged_group_cells.xlsx", tmp_path)

    assert cards["group_id"].tolist() == [group for group, _ in make_bad_inputs.CARDS]
    assert set(cards["workshop_id"]) == {"ws-narvik"}


def test_unicode_line_separators_stay_inside_their_card(tmp_path):
    cards = ingested("txt_unicode_line_separators.txt", tmp_path)

    assert len(cards) == 6 and cards["text"].iloc[0] == "Mer tid\u2028til å prøve ut ting"


def test_one_group_written_four_ways_is_one_group(tmp_path):
    cards = ingested("group_ids_case_and_invisible.csv", tmp_path)

    assert cards["group_id"].tolist() == ["g1"] * 4 + ["g2"] * 2


# --- the corpus itself -------------------------------------------------------------------------


def corpus_files() -> list[str]:
    return sorted(p.relative_to(BAD).as_posix() for p in BAD.rglob("*")
                  if p.is_file() and p.suffix not in {".py", ".md"} and "__pycache__" not in p.parts)


def test_corpus_has_a_case_and_a_readme_line_for_every_file_and_at_least_15_files():
    on_disk = set(corpus_files())
    in_cases = {name for case in CASES.values() for name in case.files}
    readme = (BAD / "README.md").read_text(encoding="utf-8")

    assert on_disk == in_cases
    assert len(on_disk) >= 15
    assert [name for name in sorted(on_disk) if f"`{name}`" not in readme] == []


def test_corpus_files_are_what_the_generator_makes():
    expected = make_bad_inputs.files()

    assert sorted(expected) == corpus_files()
    assert [name for name, data in expected.items() if (BAD / name).read_bytes() != data] == []


def test_an_output_folder_that_cannot_be_created_is_one_error_line(tmp_path):
    blocked = tmp_path / "out"
    blocked.write_text("a file where the output folder should be", encoding="utf-8")

    result = CliRunner().invoke(app, ["ingest", "--input", str(BASE), "--out", str(blocked / "ingest")])

    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("innsikt: error: ") and "out" in lines[0]
    assert "Traceback" not in result.output


# --- checks without a file in the corpus ---------------------------------------------------------


def test_an_xlsx_whose_first_sheet_is_empty_but_others_are_not_is_an_error():
    from pipeline.ingest import Source, ingest

    data = make_bad_inputs.xlsx_bytes({"Ark1": [], "Kort": make_bad_inputs.card_rows("ws-x")})

    with pytest.raises(IngestError) as info:
        ingest([Source("ws.xlsx", data)], IngestParams())

    assert info.value.kind == "empty_first_sheet"
    assert "first visible sheet 'Ark1' is empty, but sheet(s) ['Kort'] are not" in str(info.value)


def test_votes_without_any_card_file_is_an_error():
    from pipeline.ingest import Source, ingest

    with pytest.raises(IngestError) as info:
        ingest([Source("votes.csv", (BAD / "votes_unknown_workshop.csv").read_bytes())], IngestParams())

    assert info.value.kind == "no_cards"


def test_votes_are_not_checked_without_a_taxonomy_so_the_report_stage_can_still_catch_them():
    from pipeline.ingest import Source, ingest

    result = ingest([Source("ws-alta.csv", BASE.read_bytes()),
                     Source("votes.csv", (BAD / "votes_unknown_theme.csv").read_bytes())], IngestParams())

    assert "budsjett-systemet" in result.votes["theme_id"].tolist()


@pytest.mark.parametrize("text, fragment", [
    ("ingest: [\n", "line 2, column 1: cannot read params: invalid YAML"),
    ("ingest:\n  min_letters: '2'\n", "line 2: ingest.min_letters='2': Input should be a valid integer"),
    ("ingest:\n  long_card_chars: 10\n", "ingest.long_card_chars=10: Input should be greater than or equal to 100"),
    ("embed:\n  segment_size: 0\n", "embed.segment_size=0"),
    ("foo: 1\nbar: 2\n", "2 problems: line 1: foo=1: unknown key; expected one of ['cluster',"),
], ids=["invalid-yaml", "quoted-number", "long-card-too-small", "segment-size-zero", "two-unknown-sections"])
def test_params_errors_are_one_line_with_the_line_number(tmp_path, text, fragment):
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ParamsError) as info:
        load_params(path)

    assert "\n" not in str(info.value) and fragment in str(info.value)


def test_taxonomy_statements_given_as_one_text_instead_of_a_list_is_an_error(tmp_path):
    path = tmp_path / "tax.yaml"
    path.write_text("categories:\n  - id: c\n    name: C\n    themes:\n      - id: t\n        name: T\n"
                    "        statements: En påstand\n", encoding="utf-8")

    with pytest.raises(TaxonomyError, match=r"categories\[0\]\.themes\[0\]: 'statements' must be a list .*\(line 7\)"):
        load_taxonomy(path)
