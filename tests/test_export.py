"""`innsikt export` on a real run: Excel and CSV that Excel reads safely, a REFI-QDA project that
validates against the standard's schema."""
import csv
import io
import zipfile
from pathlib import Path

from xml.etree import ElementTree as ET

import pytest
import xmlschema
from openpyxl import load_workbook
from typer.testing import CliRunner

from conftest import HOSTILE_CARDS, HOSTILE_WORKSHOP
from pipeline import export
from pipeline.cli import app

pytestmark = pytest.mark.slow
XSD = Path(export.__file__).parent / "schemas" / "refi-qda-project-1.0.xsd"
NS = {"q": export.PROJECT_NS}


@pytest.fixture(scope="module")
def exported(run_outside_repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    result = CliRunner().invoke(app, ["export", "--run-dir", str(run_outside_repo), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def loaded(run_outside_repo):
    return export.load_run(run_outside_repo)


def test_export_writes_the_four_files(exported):
    assert sorted(p.name for p in exported.iterdir()) == sorted(export.EXPORT_FILES)


def test_cards_xlsx_opens_with_every_card_letters_intact_and_no_formula(exported, loaded):
    workbook = load_workbook(exported / "cards.xlsx")
    assert workbook.sheetnames == ["cards", "themes"]
    sheet = workbook["cards"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == list(export.EXPORT_COLUMNS)
    assert len(rows) - 1 == len(loaded.cards)
    cells = [cell for sheet in workbook for row in sheet.iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"]
    texts = {row[0]: row[4] for row in rows[1:]}
    assert "løsninger" in texts["mol-11"] and any("å" in t for t in texts.values() if t)
    hostile = {row[0]: row for row in rows[1:] if row[1] == HOSTILE_WORKSHOP}
    assert len(hostile) == len(HOSTILE_CARDS)  # the id is kept verbatim, as text
    for card_id, group, text in HOSTILE_CARDS:
        assert hostile[card_id][2] == group
        assert hostile[card_id][4].startswith(text[0]) and hostile[card_id][4][1:5] == text[1:5]
    by_value = {cell.value: cell for cell in cells if isinstance(cell.value, str)}
    assert by_value[HOSTILE_WORKSHOP].data_type == "s" and by_value[HOSTILE_WORKSHOP].quotePrefix
    header = dict(zip(rows[0], range(len(rows[0]))))
    assert {type(row[header["confidence"]]) for row in rows[1:]} <= {float, type(None)}
    assert {row[header["is_quote"]] for row in rows[1:]} == {True, False}


def test_cards_csv_is_utf8_with_bom_and_formula_safe(exported, loaded):
    raw = (exported / "cards.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0] == list(export.EXPORT_COLUMNS) and len(rows) - 1 == len(loaded.cards)
    hostile = [row for row in rows[1:] if row[1] == "'" + HOSTILE_WORKSHOP]
    assert len(hostile) == len(HOSTILE_CARDS)
    assert not [cell for row in rows for cell in row if cell[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "løsninger" in {row[0]: row[4] for row in rows[1:]}["mol-11"]


def _project(exported):
    with zipfile.ZipFile(exported / "innsikt.qdpx") as archive:
        names = archive.namelist()
        qde = archive.read("project.qde")
        sources = {name: archive.read(name).decode("utf-8") for name in names if name.startswith("sources/")}
    return names, qde, sources


def test_qdpx_validates_against_the_refi_qda_project_schema(exported):
    names, qde, sources = _project(exported)
    assert names[0] == "project.qde" and len(sources) == 3  # one document per workshop
    xmlschema.XMLSchema(str(XSD)).validate(io.BytesIO(qde))  # raises, naming the element, if invalid
    document = ET.fromstring(qde)
    for source in document.iterfind(".//q:TextSource", NS):
        assert f"sources/{source.get('plainTextPath').removeprefix('internal://')}" in sources


def test_qdpx_codes_every_card_segment_with_its_themes(exported, loaded):
    _, qde, sources = _project(exported)
    document = ET.fromstring(qde)
    codes = {code.get("guid"): code.get("name") for code in document.iterfind(".//q:Code", NS)}
    theme_names = set(loaded.themes["label"]) | set(loaded.taxonomy["name"])
    assert theme_names <= set(codes.values())
    cards = loaded.cards.set_index("card_id")
    seen = set()
    for source in document.iterfind(".//q:TextSource", NS):
        text = sources[f"sources/{source.get('plainTextPath').removeprefix('internal://')}"]
        for selection in source.iterfind("q:PlainTextSelection", NS):
            card = cards.loc[selection.get("name")]
            seen.add(selection.get("name"))
            start, end = int(selection.get("startPosition")), int(selection.get("endPosition"))
            assert text[start:end] == card["text"]  # positions in characters, æ/ø/å included
            coded = {codes[ref.get("targetGUID")] for ref in selection.iterfind("q:Coding/q:CodeRef", NS)}
            if card["status"] == "rejected":
                assert not coded
                continue
            own = card["taxonomy_theme_name"] if isinstance(card["taxonomy_theme_id"], str) else \
                "Nye temaer (utenfor taksonomien)"
            assert own in coded
            if card["status"] == "assigned":
                assert card["theme_label"] in coded
            if isinstance(card["subtheme_id"], str):
                assert card["subtheme_label"] in coded
            assert ("Sitat i rapporten" in coded) == card["is_quote"]
    assert seen == set(cards.index)
    cases = {case.get("name") for case in document.iterfind(".//q:Case", NS)}
    assert f"{HOSTILE_WORKSHOP} / @g1" in cases and "ws-alta / g1" in cases


def test_export_is_deterministic(exported, run_outside_repo, tmp_path):
    export.run(run_dir=run_outside_repo, out_dir=tmp_path)
    for name in ("innsikt.qdpx", "codebook.qdc", "cards.csv"):
        assert (tmp_path / name).read_bytes() == (exported / name).read_bytes(), name


def test_codebook_qdc_holds_the_project_codes(exported):
    """The official Codebook.xsd is not vendored (no undamaged copy): its CodeType is the Project
    schema's, so the .qdc's codes are checked inside a minimal project."""
    codebook = ET.fromstring((exported / "codebook.qdc").read_bytes())
    assert codebook.tag == f"{{{export.CODEBOOK_NS}}}CodeBook"
    codes = (exported / "codebook.qdc").read_text(encoding="utf-8").split("<Codes>", 1)[1].rsplit("</Codes>", 1)[0]
    wrapped = f'<Project xmlns="{export.PROJECT_NS}" name="t"><CodeBook><Codes>{codes}</Codes></CodeBook></Project>'
    xmlschema.XMLSchema(str(XSD)).validate(wrapped)
    _, qde, _ = _project(exported)
    project_codes = [c.get("guid") for c in ET.fromstring(qde).iterfind(".//q:Code", NS)]
    assert [c.get("guid") for c in codebook.iter(f"{{{export.CODEBOOK_NS}}}Code")] == project_codes


def test_a_project_breaking_the_schema_is_refused_naming_the_line():
    with pytest.raises(export.ExportError, match=r"project.qde, at /Project/CodeBook/Codes/Code: .*'isCodable'"):
        export.validate_project(f'<Project xmlns="{export.PROJECT_NS}" name="t"><CodeBook><Codes>'
                                f'<Code guid="{export.guid("x")}" name="x"/></Codes></CodeBook></Project>'.encode())
