"""The Excel round-trip of the review queue (pipeline/review_sheet.py, `innsikt review export|import`)."""
import csv

import numpy as np
import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from conftest import HOSTILE_CARDS
from pipeline import review_sheet as review
from pipeline.cli import app
from pipeline.curation import load_curation
from pipeline.taxonomy import EMERGENT
from test_review import THEMES, _card_map, _queue, _unit

TAXONOMY_YAML = """id: test
name: Test
categories:
  - id: samhandling
    name: Samhandling
    themes:
      - id: siloer
        name: Siloer
        statements: ["Etatene jobber i siloer"]
  - id: rammebetingelser
    name: Rammebetingelser
    themes:
      - id: budsjettsystemet
        name: Budsjettsystemet
        statements: ["Budsjettet er ettårig"]
      - id: regelverk
        name: Regelverk
        statements: ["Regelverket hindrer"]
"""


def test_verdicts_parse_to_labels_and_exclusions():
    choices = {"siloer": "siloer", "siloer (siloer)": "siloer", "regelverk": "regelverk"}
    assert review.parse_verdict(" OK ", "regelverk", choices) == ("label", "regelverk")
    assert review.parse_verdict("ok", None, choices) == ("label", f"{EMERGENT}:annet")
    assert review.parse_verdict("Siloer (siloer)", "regelverk", choices) == ("label", "siloer")
    assert review.parse_verdict("emergent", "regelverk", choices) == ("label", f"{EMERGENT}:annet")
    assert review.parse_verdict("emergent: Klima", "regelverk", choices) == ("label", f"{EMERGENT}:Klima")
    assert review.parse_verdict("ekskluder", "regelverk", choices) == ("exclude", "")
    assert review.parse_verdict("kanskje", "regelverk", choices) is None


def _sheet(tmp_path, queue):
    path = tmp_path / "review.xlsx"
    review.write_review_xlsx(queue, THEMES, path)
    return path


def _fill(path, verdicts: dict[int, str]):
    workbook = load_workbook(path)
    sheet = workbook[review.SHEET]
    column = [c.value for c in sheet[1]].index(review.HEADERS["verdict"]) + 1
    for row, value in verdicts.items():
        sheet.cell(row, column).value = value
    workbook.save(path)


def test_round_trip_through_a_real_workbook(tmp_path):
    vectors = _unit(np.random.default_rng(2).normal(size=(4, 8)))
    card_map = _card_map([0.3, 0.4, 0.5, 0.6], themes=["siloer", "regelverk", None, "siloer"])
    queue = _queue(card_map, vectors, 4)
    path = _sheet(tmp_path, queue)
    workbook = load_workbook(path)
    assert workbook[review.CHOICES_SHEET].sheet_state == "hidden"
    validations = workbook[review.SHEET].data_validations.dataValidation
    assert len(validations) == 1 and validations[0].type == "list"
    assert validations[0].formula1 == f"={review.CHOICES_SHEET}!$A$2:$A$7"
    assert [r[0] for r in workbook[review.CHOICES_SHEET].iter_rows(min_row=2, values_only=True)] == [
        "ok", "emergent", "ekskluder", "Siloer (siloer)", "Budsjettsystemet (budsjettsystemet)", "Regelverk (regelverk)"]
    row_of = {e["card_id"]: e["rank"] + 1 for e in queue}
    _fill(path, {row_of["c00"]: "ok", row_of["c01"]: "Budsjettsystemet (budsjettsystemet)",
                 row_of["c02"]: "ekskluder"})  # c03: no verdict
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(TAXONOMY_YAML, encoding="utf-8")
    labels, curation = tmp_path / "labels.csv", tmp_path / "curation.yaml"
    labels.write_text("card_id,theme_id\nc01,regelverk\nold-1,siloer\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["review", "import", str(path), "--labels", str(labels), "--curation",
                                      str(curation), "--taxonomy", str(taxonomy)])
    assert result.exit_code == 0, result.output
    new = sorted([["c00", "siloer"], ["c01", "budsjettsystemet"]], key=lambda label: row_of[label[0]])
    # An old label of another card stays; a reviewed card's old label is replaced; new ones in sheet order.
    assert list(csv.reader(labels.open(encoding="utf-8"))) == [["card_id", "theme_id"], ["old-1", "siloer"], *new]
    rules = load_curation(curation).rules
    assert [(r.kind, r.body.card) for r in rules] == [("exclude", "c02")]
    # Importing the same sheet again changes nothing.
    again = CliRunner().invoke(app, ["review", "import", str(path), "--labels", str(labels), "--curation",
                                     str(curation), "--taxonomy", str(taxonomy)])
    assert again.exit_code == 0, again.output
    assert len(load_curation(curation).rules) == 1
    assert labels.read_text(encoding="utf-8").count("\n") == 4


def test_a_bad_verdict_names_the_sheet_row_and_column_and_writes_nothing(tmp_path):
    vectors = _unit(np.random.default_rng(3).normal(size=(3, 8)))
    queue = _queue(_card_map([0.3, 0.4, 0.5]), vectors, 3)
    path = _sheet(tmp_path, queue)
    _fill(path, {2: "ok", 3: "kanskje siloer"})
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(TAXONOMY_YAML, encoding="utf-8")
    labels = tmp_path / "labels.csv"
    result = CliRunner().invoke(app, ["review", "import", str(path), "--labels", str(labels), "--curation",
                                      str(tmp_path / "curation.yaml"), "--taxonomy", str(taxonomy)])
    assert result.exit_code == 1
    column = "ABCDEFGHIJKL"[[k for k, _ in review.COLUMNS].index("verdict")]
    assert (f"innsikt: error: {path}, sheet 'Gjennomgang', row 3, column {column} ('vurdering'): 'kanskje siloer' "
            f"is not a verdict") in result.output
    assert not labels.exists()


def test_a_workbook_without_the_review_sheet_is_an_error(tmp_path):
    from openpyxl import Workbook

    path = tmp_path / "other.xlsx"
    Workbook().save(path)
    with pytest.raises(review.ReviewError, match="no sheet 'Gjennomgang'"):
        review.read_verdicts(path, THEMES)


@pytest.mark.slow
def test_review_export_of_a_real_run_keeps_hostile_text_as_text(run_outside_repo, tmp_path):
    out = tmp_path / "review.xlsx"
    result = CliRunner().invoke(app, ["review", "export", "--run-dir", str(run_outside_repo), "--out", str(out),
                                      "--size", "500"])
    assert result.exit_code == 0, result.output
    sheet = load_workbook(out)[review.SHEET]
    header = [c.value for c in sheet[1]]
    texts = {row[header.index("tekst")]: row for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert len(texts) > 20
    hostile = [text for _, _, text in HOSTILE_CARDS if text in texts]
    assert hostile  # those cards are in the sheet as text, not formulas
    for row in sheet.iter_rows(min_row=2):
        assert all(cell.data_type != "f" for cell in row)
    assert all(row[header.index("vurdering")] is None for row in texts.values())
