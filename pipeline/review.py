"""Review: the cards whose label would help most, and the analyst's verdicts on them through Excel.

The review queue ranks the cards the analyst has not decided (a card labelled, or moved by a
curation rule, has confidence 1) by greedy facility location weighted by uncertainty: each pick
is the card whose neighbourhood holds the most not-yet-covered doubt, the sum over all undecided
cards j of (1 - confidence_j) * max(0, similarity(pick, j) - similarity(j, nearest earlier pick)).
Uncertain cards near many other uncertain cards come first, and a near-duplicate of a pick adds
almost nothing, so the picks are spread out. Measured against least-confidence, margin,
density and their products with `bench/learning_curve.py` (README, "Review").

The Excel round-trip: `write_review_xlsx` writes the queue with the machine's theme and category,
a verdict drop-down (a list on a hidden sheet of the taxonomy themes) and an empty verdict column;
`read_verdicts` turns the filled sheet into labels (`card_id, theme_id`, the map stage's labels
file) and curation rules (`exclude`), with errors naming the sheet, row and column.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.records import SPREADSHEET_TRIGGERS, STATUS_REJECTED, atomic_path, publish
from pipeline.report_vectors import SCORE_DECIMALS, one_blas_thread
from pipeline.taxonomy import EMERGENT

METHOD = ("usikre kort nær mange andre usikre kort først (fasilitetsplassering vektet med 1 - sikkerhet), "
          "spredt så to nesten like kort ikke begge velges; kort analytikeren har avgjort er utelatt")
# Candidates for a pick: the most uncertain cards, so a corpus of 10,000 cards costs
# MAX_CANDIDATES x cards similarities per pick, not cards x cards. Every undecided card still counts as covered.
MAX_CANDIDATES = 2000
UNCERTAIN_BELOW = 0.7  # a card with a lower confidence is "usikker"; above it is picked for what it represents
NEIGHBOURS = 10  # nearest cards whose themes name the other side of an uncertain card's boundary
DECIDED = 1.0  # the confidence of a labelled card or one a curation rule moved


def queue_order(vectors: np.ndarray, uncertainty: np.ndarray, size: int) -> list[int]:
    """Row indices of the `size` picks, best first; rows in card id order (ties go to the first)."""
    n = len(vectors)
    size = min(size, n)
    if size <= 0:
        return []
    candidates = np.lexsort((np.arange(n), -uncertainty))[:MAX_CANDIDATES]
    with one_blas_thread():
        similarity = vectors[candidates] @ vectors.T  # (candidates, cards)
    covered = np.full(n, -1.0)  # similarity of each card to its nearest pick; -1 before any pick
    chosen: list[int] = []
    for _ in range(size):
        gain = (np.maximum(similarity - covered[None, :], 0.0) * uncertainty[None, :]).sum(axis=1)
        gain = np.round(gain, SCORE_DECIMALS)  # float noise from another BLAS cannot flip a tie
        gain[[k for k, row in enumerate(candidates) if row in chosen]] = -np.inf
        best = int(np.argmax(gain))
        chosen.append(int(candidates[best]))
        covered = np.maximum(covered, similarity[best])
    return chosen


def review_queue(card_map: pd.DataFrame, vectors: dict[str, np.ndarray], size: int, *,
                 texts: dict[str, str], workshop_of: dict[str, str], group_of: dict[str, str | None],
                 theme_label: dict[str, str], taxonomy_theme_name: dict[str, str],
                 labelled: frozenset[str] = frozenset()) -> list[dict]:
    """The review queue, `size` entries of the insights contract (see docs/insights.md, `review`).

    `card_map`: the map stage's card table; `vectors`: centred unit vector per live card;
    `labelled`: card ids already labelled (a card with confidence 1 counts as decided too).
    """
    live = card_map[(card_map["status"] != STATUS_REJECTED) & card_map["card_id"].isin(vectors.keys())]
    live = live.sort_values("card_id", kind="stable").reset_index(drop=True)
    confidence = live["confidence"].astype(float).fillna(0.0).to_numpy()
    undecided = ~(live["card_id"].isin(labelled).to_numpy() | (confidence >= DECIDED))
    pool = live[undecided].reset_index(drop=True)
    if pool.empty or size <= 0:
        return []
    X = np.vstack([vectors[c] for c in pool["card_id"]])
    uncertainty = 1.0 - confidence[undecided]
    picks = queue_order(X, uncertainty, size)
    with one_blas_thread():
        nearest_pick = np.argmax(X[picks] @ X.T, axis=0)  # which pick each undecided card is closest to
    represents = np.bincount(nearest_pick, minlength=len(picks)) - 1  # not counting the pick itself
    all_ids = live["card_id"].tolist()
    A = np.vstack([vectors[c] for c in all_ids])
    home = [_home(t) for t in live["taxonomy_theme_id"]]
    entries = []
    for rank, (row, count) in enumerate(zip(picks, represents), start=1):
        card = pool.iloc[row]
        own = _home(card["taxonomy_theme_id"])
        other = _other_side(A @ X[row], home, own, all_ids.index(card["card_id"]))
        entries.append({
            "card_id": card["card_id"],
            "workshop_id": workshop_of[card["card_id"]],
            "group_id": _none(group_of.get(card["card_id"])),
            "text": texts[card["card_id"]],
            "theme_id": _none(card["theme_id"]),
            "theme_label": theme_label.get(card["theme_id"]) if _none(card["theme_id"]) else None,
            "category_id": _none(card["category_id"]) or EMERGENT,
            "taxonomy_theme_id": _none(card["taxonomy_theme_id"]),
            "confidence": round(float(card["confidence"]), 4),
            "reason": reason(float(card["confidence"]), own, other, int(count), taxonomy_theme_name),
            "rank": rank,
        })
    return entries


def _none(value):
    return None if value is None or (isinstance(value, float) and value != value) or value is pd.NA else value


def _home(taxonomy_theme_id) -> str:
    return _none(taxonomy_theme_id) or EMERGENT


def _other_side(similarity: np.ndarray, home: list[str], own: str, self_row: int) -> str | None:
    """The theme most of the card's nearest neighbours hold, other than its own (similarity-weighted)."""
    order = [i for i in np.lexsort((np.arange(len(similarity)), -np.round(similarity, SCORE_DECIMALS)))
             if i != self_row][:NEIGHBOURS]
    votes: dict[str, float] = {}
    for i in order:
        if home[i] != own:
            votes[home[i]] = votes.get(home[i], 0.0) + max(float(similarity[i]), 0.0)
    return max(sorted(votes), key=lambda t: votes[t]) if votes else None


def reason(confidence: float, own: str, other: str | None, represents: int, names: dict[str, str]) -> str:
    """A short Norwegian phrase: why this card is worth a look."""
    def name(theme: str) -> str:
        return "nytt tema" if theme == EMERGENT else names.get(theme, theme)

    if confidence < UNCERTAIN_BELOW:
        text = f"usikker mellom {name(own)} og {name(other)}" if other else f"usikker ({confidence:.2f})"
        return text + (f"; representerer {represents} kort" if represents >= 5 else "")
    return f"representerer {represents} kort" if represents > 0 else f"sikkerhet bare {confidence:.2f}"


def review_section(card_map: pd.DataFrame, vectors: dict[str, np.ndarray], size: int, **kwargs) -> dict:
    """`review` in insights.json: the method in one line and the queue."""
    return {"method": METHOD, "queue": review_queue(card_map, vectors, size, **kwargs)}


# --- The Excel round-trip ----------------------------------------------------------------------------

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


class ReviewError(ValueError):
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
