"""The review queue through Excel and back: `innsikt review export|import`.

`write_review_xlsx` writes the queue (`pipeline.review`) with the machine's theme and category, a
verdict drop-down (a list on a hidden sheet of the choices and the taxonomy themes) and an empty
verdict column; `read_verdicts` turns the filled sheet into labels (`card_id, theme_id`, the map
stage's labels file) and curation rules (`exclude`), with errors naming the sheet, row and column.
`export_run` and `import_verdicts` are the thin entries that read and write files.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.curation import append_rule, load_curation
from pipeline.errors import InnsiktError
from pipeline.records import (
    CARD_MAP,
    EMBEDDINGS,
    NORMALISED,
    SPREADSHEET_TRIGGERS,
    STATUS_REJECTED,
    THEMES,
    atomic_path,
    publish,
    read_table,
)
from pipeline.report_vectors import centred_unit_vectors
from pipeline.review import review_queue
from pipeline.ids import EMERGENT
from pipeline.taxonomy import load_labels, load_taxonomy

SHEET = "Gjennomgang"
CHOICES_SHEET = "Valg"
OK, EMERGENT_VERDICT, EXCLUDE = "ok", "emergent", "ekskluder"
COLUMNS = (  # (key in the queue entry, header in the sheet)
    ("rank", "rang"), ("card_id", "kort-id"), ("workshop_id", "verksted"), ("group_id", "gruppe"),
    ("text", "tekst"), ("taxonomy_theme_id", "maskinens tema-id"), ("theme_name", "maskinens tema"),
    ("category_id", "maskinens kategori"), ("confidence", "sikkerhet"), ("reason", "hvorfor"),
    ("verdict", "vurdering"), ("comment", "kommentar"),
)
HEADERS = {key: header for key, header in COLUMNS}


class ReviewError(InnsiktError):
    """A review sheet that cannot be read, or a verdict that is not one of the choices; names sheet, row, column."""


def choice_text(theme_id: str, name: str) -> str:
    """A taxonomy theme as the drop-down shows it."""
    return f"{name} ({theme_id})"


def write_review_xlsx(queue: list[dict], taxonomy_themes: list[tuple[str, str]], path: Path) -> None:
    """The queue as a sheet with an empty verdict column and a drop-down of the choices (hidden sheet)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    names = dict(taxonomy_themes)
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = SHEET
    sheet.append([header for _, header in COLUMNS])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for entry in queue:
        row = {**entry, "theme_name": names.get(entry["taxonomy_theme_id"], "nytt tema"), "verdict": None,
               "comment": None}
        sheet.append([row.get(key) for key, _ in COLUMNS])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # text, never a formula, whatever it starts with
                cell.quotePrefix = cell.value.startswith(SPREADSHEET_TRIGGERS)
    choices = workbook.create_sheet(CHOICES_SHEET)
    choices.append(["valg", "tema-id", "navn"])
    options = [(OK, "", "maskinens tema stemmer"), (EMERGENT_VERDICT, "", "utenfor taksonomien"),
               (EXCLUDE, "", "ikke et innspill (tas ut)")]
    options += [(choice_text(theme_id, name), theme_id, name) for theme_id, name in taxonomy_themes]
    for option in options:
        choices.append(list(option))
    choices.sheet_state = "hidden"
    verdict_column = get_column_letter([key for key, _ in COLUMNS].index("verdict") + 1)
    validation = DataValidation(type="list", formula1=f"={CHOICES_SHEET}!$A$2:$A${len(options) + 1}",
                                allow_blank=True, showErrorMessage=True, errorStyle="warning",
                                error="Velg fra listen: ok, emergent, ekskluder eller et tema i taksonomien.")
    sheet.add_data_validation(validation)
    if queue:
        validation.add(f"{verdict_column}2:{verdict_column}{len(queue) + 1}")
    widths = {"text": 60, "reason": 40, "theme_name": 30, "verdict": 34, "comment": 30}
    for index, (key, _) in enumerate(COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = widths.get(key, 14)
    sheet.freeze_panes = "A2"
    tmp = atomic_path(path)
    try:
        workbook.save(tmp)
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class Verdicts:
    """What a filled review sheet says: labels (card_id, theme_id) and cards to exclude, in sheet order."""

    labels: tuple[tuple[str, str], ...]
    excluded: tuple[str, ...]
    skipped: int  # rows without a verdict


def parse_verdict(value: str, machine_theme: str | None, theme_of_choice: dict[str, str]) -> tuple[str, str] | None:
    """('label', theme_id) or ('exclude', '') for a verdict; None when it is not one of the choices."""
    text = " ".join(value.split()).casefold()
    if text == OK:
        return "label", machine_theme or f"{EMERGENT}:annet"
    if text == EMERGENT_VERDICT:
        return "label", f"{EMERGENT}:annet"
    if text.startswith(f"{EMERGENT_VERDICT}:") and text[len(EMERGENT_VERDICT) + 1:].strip():
        return "label", f"{EMERGENT}:{' '.join(value.split())[len(EMERGENT_VERDICT) + 1:].strip()}"
    if text == EXCLUDE:
        return "exclude", ""
    theme = theme_of_choice.get(text)
    return ("label", theme) if theme else None


def read_verdicts(path: Path, taxonomy_themes: list[tuple[str, str]]) -> Verdicts:
    """The verdicts of a review sheet written by `write_review_xlsx` and filled in by the analyst."""
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, KeyError, OSError, ValueError) as exc:
        raise ReviewError(f"{path}: not a review workbook ({exc})") from exc
    if SHEET not in workbook.sheetnames:
        raise ReviewError(f"{path}: no sheet {SHEET!r}; found {workbook.sheetnames} (write one with "
                          f"`innsikt review export`)")
    rows = list(workbook[SHEET].iter_rows(values_only=True))
    workbook.close()
    header = [str(h).strip() if h is not None else "" for h in (rows[0] if rows else ())]
    column_of = {}
    for key in ("card_id", "taxonomy_theme_id", "verdict"):
        if HEADERS[key] not in header:
            raise ReviewError(f"{path}, sheet {SHEET!r}, row 1: no column {HEADERS[key]!r}; found {header}")
        column_of[key] = header.index(HEADERS[key])
    theme_of_choice = {}
    for theme_id, name in taxonomy_themes:
        for form in (theme_id, name, choice_text(theme_id, name)):
            theme_of_choice[" ".join(form.split()).casefold()] = theme_id
    labels, excluded, skipped, problems, seen = [], [], 0, [], {}
    for number, row in enumerate(rows[1:], start=2):
        value = row[column_of["verdict"]] if column_of["verdict"] < len(row) else None
        card_id = row[column_of["card_id"]] if column_of["card_id"] < len(row) else None
        where = f"{path}, sheet {SHEET!r}, row {number}"
        if value is None or not str(value).strip():
            skipped += 1
            continue
        if card_id is None or not str(card_id).strip():
            problems.append(f"{where}, column {get_column_letter(column_of['card_id'] + 1)} "
                            f"({HEADERS['card_id']!r}): empty; a verdict needs the card's id")
            continue
        card_id = str(card_id).strip()
        if card_id in seen:
            problems.append(f"{where}, column {get_column_letter(column_of['card_id'] + 1)} "
                            f"({HEADERS['card_id']!r}): card {card_id!r} again (first in row {seen[card_id]})")
            continue
        seen[card_id] = number
        machine = row[column_of["taxonomy_theme_id"]] if column_of["taxonomy_theme_id"] < len(row) else None
        parsed = parse_verdict(str(value), str(machine).strip() if machine else None, theme_of_choice)
        if parsed is None:
            problems.append(f"{where}, column {get_column_letter(column_of['verdict'] + 1)} "
                            f"({HEADERS['verdict']!r}): {value!r} is not a verdict; expected {OK!r}, "
                            f"{EMERGENT_VERDICT!r}, {EXCLUDE!r} or a taxonomy theme (id, name or the drop-down text)")
            continue
        kind, theme = parsed
        if kind == "exclude":
            excluded.append(card_id)
        else:
            labels.append((card_id, theme))
    if problems:
        raise ReviewError(problems[0] if len(problems) == 1 else f"{len(problems)} bad verdicts: " + "; ".join(problems))
    return Verdicts(tuple(labels), tuple(excluded), skipped)


def merge_labels(existing: pd.DataFrame, new: list[tuple[str, str]]) -> pd.DataFrame:
    """`existing` labels (card_id, theme_id) with the new ones: a new verdict replaces a card's old label,
    other cards keep their order; new cards follow in sheet order."""
    new_of = dict(new)
    kept = existing[~existing["card_id"].isin(new_of)][["card_id", "theme_id"]]
    added = pd.DataFrame(new, columns=["card_id", "theme_id"])
    return pd.concat([kept, added], ignore_index=True)


def write_labels(labels: pd.DataFrame, path: Path) -> None:
    """The labels file the map stage reads (`card_id,theme_id`, UTF-8), written whole and renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["card_id", "theme_id"])
            writer.writerows(labels[["card_id", "theme_id"]].itertuples(index=False, name=None))
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# --- Entries for `innsikt review export|import`: read, call, write ------------------------------------


def export_run(*, run_dir: Path, out: Path, size: int, sample_size: int | None = None) -> list[dict]:
    """Write the review sheet of the run in `run_dir` (the layout of `innsikt run --out` and `outputs/`)."""
    insights_path = run_dir / "report" / "insights.json"
    if not insights_path.is_file():
        raise ReviewError(f"{insights_path}: missing; run the pipeline first (innsikt run or dvc repro)")
    insights = json.loads(insights_path.read_text(encoding="utf-8"))
    taxonomy_themes = [(t["taxonomy_theme_id"], t["name"]) for c in insights["taxonomy"]["categories"]
                       for t in c["themes"]]
    cards = read_table(run_dir / "normalise" / "cards.parquet", NORMALISED)
    card_map = read_table(run_dir / "map" / "cards.parquet", CARD_MAP)
    themes = read_table(run_dir / "map" / "themes.parquet", THEMES)
    live_ids = card_map.loc[card_map["status"] != STATUS_REJECTED, "card_id"].tolist()
    vectors = centred_unit_vectors(read_table(run_dir / "embed" / "embeddings.parquet", EMBEDDINGS), live_ids)
    queue = review_queue(card_map, vectors, size, texts=dict(zip(cards["card_id"], cards["text_norm"])),
                         workshop_of=dict(zip(cards["card_id"], cards["workshop_id"])),
                         group_of=dict(zip(cards["card_id"], cards["group_id"])),
                         theme_label=dict(zip(themes["theme_id"], themes["label"])),
                         taxonomy_theme_name=dict(taxonomy_themes), sample_size=sample_size)
    write_review_xlsx(queue, taxonomy_themes, out)
    return queue


def import_verdicts(*, sheet: Path, taxonomy_path: Path, labels_path: Path, curation_path: Path,
                    reason: str = "gjennomgang") -> Verdicts:
    """Add a filled review sheet's verdicts to the labels file and the curation file.

    A new label replaces the card's old one; an excluded card loses its label and gets one `exclude`
    rule (not a second one when the sheet is imported again). Nothing is written when a verdict is bad.
    """
    taxonomy = load_taxonomy(taxonomy_path)
    verdicts = read_verdicts(sheet, [(t.id, t.name) for t in taxonomy.themes])
    existing = (load_labels(labels_path, taxonomy) if labels_path.is_file()
                else pd.DataFrame(columns=["card_id", "theme_id"]))
    already = {rule.body.card for rule in load_curation(curation_path).rules if rule.kind == "exclude"}
    labels = merge_labels(existing, list(verdicts.labels))
    labels = labels[~labels["card_id"].isin(verdicts.excluded)]
    if verdicts.labels or not existing.equals(labels):
        write_labels(labels, labels_path)
    for card in verdicts.excluded:
        if card not in already:
            append_rule(curation_path, "exclude", card=card, reason=reason)
    return verdicts
