"""Exports of a run for the tools analysts already use: Excel, CSV and QDA software (REFI-QDA).

`innsikt export --run-dir outputs --out outputs/export` writes, from `pipeline.api.load_run`:

- `cards.xlsx`: every card with its theme, category, confidence, status, workshop, group and
  whether the report quotes it (sheet `cards`), and the themes (sheet `themes`). Text is always a
  text cell: a card starting with `=` is shown, never run as a formula.
- `cards.csv`: the same table, UTF-8 with a BOM (Excel reads æ/ø/å), formula-safe (records.write_csv).
- `innsikt.qdpx`: a REFI-QDA project (NVivo, ATLAS.ti, MAXQDA, QualCoder): the taxonomy
  (categories, taxonomy themes) and the machine's themes as codes, one text document per workshop
  with every card a coded segment, and one case per group. `project.qde` is validated against the
  REFI-QDA Project.xsd (pipeline/schemas/) before it is written.
- `codebook.qdc`: the same codes alone (REFI-QDA codebook), to start a codebook in a QDA tool.

Everything is deterministic: GUIDs are derived from the ids, zip entries carry a fixed date.
"""
from __future__ import annotations

import io
import re
import uuid
import zipfile
from functools import lru_cache
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from xml.etree import ElementTree as ET

import pandas as pd

from pipeline.errors import InnsiktError
from pipeline.api import Run, load_run
from pipeline.colours import category_colours
from pipeline.ids import EMERGENT
from pipeline.records import SPREADSHEET_TRIGGERS, atomic_path, publish, write_bytes, write_csv

PROJECT_NS = "urn:QDA-XML:project:1.0"
CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
PROJECT_XSD = "refi-qda-project-1.0.xsd"
GUID_NAMESPACE = uuid.UUID("6f1d2c4e-8a3b-5c7d-9e0f-1a2b3c4d5e6f")  # innsikt's: GUIDs are uuid5 of ids
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed entry dates: the same run gives the same bytes

# The exported card table: API column -> header (English, as in the API and insights.json).
EXPORT_COLUMNS = ("card_id", "workshop_id", "group_id", "card_type", "text", "status", "reason", "theme_id",
                  "theme_label", "subtheme_id", "subtheme_label", "category_id", "category_name", "taxonomy_theme_id", "taxonomy_theme_name",
                  "confidence", "emergent", "is_quote", "duplicate_of", "language", "source_file", "source_row")
THEME_EXPORT_COLUMNS = ("theme_id", "label", "category_id", "category_name", "taxonomy_theme_id",
                        "taxonomy_theme_name", "emergent", "confidence", "size", "voices", "workshops", "groups",
                        "rank", "relevant_for_many", "change", "keywords")
# XML 1.0 and xlsx cells cannot hold C0 control characters other than tab, LF and CR.
_ILLEGAL_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class ExportError(InnsiktError):
    """An export that cannot be written as asked (e.g. a project that fails the REFI-QDA schema)."""


def guid(*parts: str) -> str:
    return str(uuid.uuid5(GUID_NAMESPACE, "\x1f".join(parts)))


def xml_safe(value: str) -> str:
    """Control characters that XML 1.0 forbids become U+FFFD (they never reach a cell or a .qde)."""
    return _ILLEGAL_XML.sub("\ufffd", value)


def _cell(value):
    """A DataFrame value as a plain Python cell value: None for missing, lists joined."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def card_table(run: Run) -> pd.DataFrame:
    return run.cards[list(EXPORT_COLUMNS)]


def _rows(frame: pd.DataFrame) -> list[list]:
    return [[_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]


# --- Excel and CSV ---------------------------------------------------------------------------


def write_xlsx(sheets: dict[str, pd.DataFrame], path: Path) -> None:
    """Sheets of text, numbers and booleans; a text cell is always a text cell (never a formula)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    workbook.remove(workbook.active)
    for title, frame in sheets.items():
        sheet = workbook.create_sheet(title)
        sheet.append(list(frame.columns))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in _rows(frame):
            sheet.append([xml_safe(v) if isinstance(v, str) else v for v in row])
        for column in sheet.iter_cols(min_row=2):
            for cell in column:
                if isinstance(cell.value, str) and cell.data_type != "s":
                    # openpyxl takes a string starting with "=" for a formula: keep it text, and
                    # mark it quote-prefixed so Excel does not run it when the cell is edited either.
                    cell.data_type = "s"
                if isinstance(cell.value, str) and cell.value.startswith(SPREADSHEET_TRIGGERS):
                    cell.quotePrefix = True
                elif isinstance(cell.value, float):
                    cell.number_format = "0.00"
        for index, name in enumerate(frame.columns, start=1):
            longest = max([len(str(name))] + [len(str(v)) for v in frame[name].head(200) if v is not None])
            sheet.column_dimensions[get_column_letter(index)].width = min(max(10, longest + 2), 60)
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = sheet.dimensions
    tmp = atomic_path(path)
    try:
        workbook.save(tmp)
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_tables(run: Run, out_dir: Path) -> None:
    cards = card_table(run)
    themes = run.themes[list(THEME_EXPORT_COLUMNS)]
    write_xlsx({"cards": cards, "themes": themes}, out_dir / "cards.xlsx")
    write_csv([list(cards.columns)] + _rows(cards), out_dir / "cards.csv")


# --- REFI-QDA ----------------------------------------------------------------------------------


def _element(tag: str, ns: str, **attributes) -> ET.Element:
    """The root element: children are written unqualified, in its default namespace."""
    return ET.Element(tag, {"xmlns": ns, **{k: xml_safe(v) for k, v in attributes.items() if v is not None}})


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_safe(v) for k, v in attributes.items() if v is not None})
    if text is not None:
        element.text = xml_safe(text)
    return element


def code_tree(run: Run, parent: ET.Element) -> dict[str, str]:
    """The codes under `parent` (a <Codes>); returns key -> GUID for coding.

    Keys: `category:<id>` (taxonomy categories and `emergent`), `taxonomy:<taxonomy theme id>`,
    `theme:<machine theme id>`, `subtheme:<sub-theme id>` (a child of its theme's code), and `quote`.
    """
    guids: dict[str, str] = {}
    categories = list(run.taxonomy["category_id"].drop_duplicates()) + [EMERGENT]
    colours = category_colours(categories)
    names = dict(zip(run.categories["category_id"], run.categories["name"]))
    names.update(zip(run.taxonomy["category_id"], run.taxonomy["category_name"]))

    def code(into: ET.Element, key: str, name: str, description: str, colour: str | None = None,
             codable: bool = True) -> ET.Element:
        guids[key] = guid("code", key)
        element = _sub(into, "Code", guid=guids[key], name=name, isCodable=str(codable).lower(), color=colour)
        _sub(element, "Description", description)
        return element

    taxonomy_root = code(parent, "taxonomy", "Taksonomi",
                         f"Den offisielle taksonomien ({run.insights['taxonomy']['id']}): kategorier og temaer. "
                         f"Hvert kort er kodet med sitt eget taksonomitema, eller med «Nye temaer» når det ikke "
                         f"passer i taksonomien.", codable=False)
    for category in categories:
        name = names.get(category, "Nye temaer (utenfor taksonomien)")
        element = code(taxonomy_root, f"category:{category}", name, f"Kategori {category}", colours[category])
        for t in run.taxonomy[run.taxonomy["category_id"] == category].itertuples():
            code(element, f"taxonomy:{t.taxonomy_theme_id}", t.name,
                 " / ".join(t.statements) or f"Taksonomitema {t.taxonomy_theme_id}")
    themes_root = code(parent, "themes", "Maskinens temaer",
                       "Temaene innsikt fant i kortene (stabile id-er mellom kjøringer), med kategorien og "
                       "taksonomitemaet hvert tema ble plassert i.", codable=False)
    subthemes_of = run.subthemes.groupby("theme_id", sort=False)
    for t in run.themes.itertuples():
        where = "nytt tema (utenfor taksonomien)" if t.emergent else f"{t.category_name} / {t.taxonomy_theme_name}"
        element = code(themes_root, f"theme:{t.theme_id}", t.label,
                       f"{t.theme_id}: {where}, sikkerhet {t.confidence:.2f}; {t.size} kort; "
                       f"nøkkelord: {', '.join(t.keywords)}", colours.get(t.category_id))
        if t.theme_id in subthemes_of.groups:
            for sub in subthemes_of.get_group(t.theme_id).itertuples():
                code(element, f"subtheme:{sub.subtheme_id}", sub.label,
                     f"{sub.subtheme_id}: undertema av {t.label}; {sub.size} kort; "
                     f"nøkkelord: {', '.join(sub.keywords)}", colours.get(t.category_id))
    code(parent, "quote", "Sitat i rapporten", "Kort rapporten siterer for sitt tema.")
    return guids


def _card_codes(card, guids: dict[str, str]) -> list[str]:
    if card.status == "rejected":
        return []
    own = f"taxonomy:{card.taxonomy_theme_id}" if isinstance(card.taxonomy_theme_id, str) else f"category:{EMERGENT}"
    keys = [own] + ([f"theme:{card.theme_id}"] if isinstance(card.theme_id, str) else []) + (
        [f"subtheme:{card.subtheme_id}"] if isinstance(card.subtheme_id, str) else [])
    return [guids[k] for k in keys + (["quote"] if card.is_quote else [])]


def workshop_text(cards: pd.DataFrame) -> tuple[str, list[tuple[object, int, int]]]:
    """One workshop's document: a heading line and the text of each card, a blank line between.

    Returns the text and (card, start, end) per card: positions in Unicode characters, end exclusive.
    """
    parts, spans, at = [], [], 0
    for card in cards.itertuples():
        heading = " · ".join(str(v) for v in (card.card_id, card.group_id, card.card_type) if isinstance(v, str))
        if card.status == "rejected":
            heading += f" · avvist: {card.reason}"
        head = f"[{heading}]\n"
        text = xml_safe(card.text)
        start = at + len(head)
        spans.append((card, start, start + len(text)))
        block = head + text + "\n\n"
        parts.append(block)
        at += len(block)
    return "".join(parts), spans


def project_document(run: Run) -> tuple[bytes, dict[str, str]]:
    """(project.qde bytes, {source file name: text}) for the run."""
    origin = f"innsikt {version('innsikt')}"
    user = guid("user", "innsikt")
    project = _element("Project", PROJECT_NS, name=f"innsikt: {run.insights['taxonomy']['id']}", origin=origin,
                       creatingUserGUID=user)
    users = _sub(project, "Users")
    _sub(users, "User", guid=user, name="innsikt")
    guids = code_tree(run, _sub(_sub(project, "CodeBook"), "Codes"))
    texts: dict[str, str] = {}
    selections: dict[tuple[str, str], list[str]] = {}
    sources = ET.Element("Sources")
    for workshop, cards in run.cards.groupby("workshop_id", sort=True):
        source_guid = guid("source", workshop)
        text, spans = workshop_text(cards)
        texts[f"{source_guid}.txt"] = text
        source = _sub(sources, "TextSource", guid=source_guid, name=workshop,
                      plainTextPath=f"internal://{source_guid}.txt", creatingUser=user)
        _sub(source, "Description", f"Verksted {workshop}: {len(cards)} kort")
        for card, start, end in spans:
            selection_guid = guid("selection", card.card_id)
            selection = _sub(source, "PlainTextSelection", guid=selection_guid, name=card.card_id,
                             startPosition=str(start), endPosition=str(end), creatingUser=user)
            for code_guid in _card_codes(card, guids):
                coding = _sub(selection, "Coding", guid=guid("coding", card.card_id, code_guid),
                              creatingUser=user)
                _sub(coding, "CodeRef", targetGUID=code_guid)
            if isinstance(card.group_id, str):
                selections.setdefault((workshop, card.group_id), []).append(selection_guid)
    if selections:
        cases = _sub(project, "Cases")
        for (workshop, group), members in sorted(selections.items()):
            case = _sub(cases, "Case", guid=guid("case", workshop, group), name=f"{workshop} / {group}")
            _sub(case, "Description", f"Gruppe {group} i verksted {workshop}")
            for member in members:
                _sub(case, "SelectionRef", targetGUID=member)
    if len(sources):
        project.append(sources)
    _sub(project, "Description",
         f"Kort fra {run.cards['workshop_id'].nunique()} verksteder, tematisert av {origin}. "
         f"Ett dokument per verksted, hvert kort et kodet segment; én case per gruppe.")
    return _xml_bytes(project), texts


def codebook_document(run: Run) -> bytes:
    codebook = _element("CodeBook", CODEBOOK_NS, origin=f"innsikt {version('innsikt')}")
    code_tree(run, _sub(codebook, "Codes"))
    return _xml_bytes(codebook)


def _xml_bytes(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


@lru_cache(maxsize=1)
def project_schema():
    """The REFI-QDA Project schema (xmlschema: pure Python, so openpyxl keeps its own XML writer)."""
    import xmlschema

    with resources.as_file(resources.files("pipeline") / "schemas" / PROJECT_XSD) as path:
        return xmlschema.XMLSchema(str(path))


def validate_project(qde: bytes) -> None:
    """Raise ExportError naming the element and the problem when `qde` breaks the REFI-QDA Project schema."""
    error = next(project_schema().iter_errors(io.BytesIO(qde)), None)
    if error is not None:
        raise ExportError(f"project.qde, at {error.path}: {error.reason} (REFI-QDA {PROJECT_XSD})")


def write_zip(entries: dict[str, bytes], path: Path) -> None:
    tmp = atomic_path(path)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries.items():
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_qda(run: Run, out_dir: Path) -> None:
    qde, texts = project_document(run)
    validate_project(qde)
    write_zip({"project.qde": qde, **{f"sources/{name}": text.encode("utf-8") for name, text in texts.items()}},
              out_dir / "innsikt.qdpx")
    write_bytes(codebook_document(run), out_dir / "codebook.qdc")


EXPORT_FILES = ("cards.xlsx", "cards.csv", "innsikt.qdpx", "codebook.qdc")


def run(*, run_dir: Path, out_dir: Path) -> list[Path]:
    """Write every export of the run in `run_dir` to `out_dir`; returns the files written."""
    loaded = load_run(run_dir)
    write_tables(loaded, out_dir)
    write_qda(loaded, out_dir)
    return [out_dir / name for name in EXPORT_FILES]
