"""Ingest: every input file -> canonical card and vote records.

Reads CSV (`,` `;` tab; UTF-8 with or without BOM, UTF-16, cp1252; text that cp1252 would misread
is an error), XLSX (the first visible sheet; formulas' saved values; merged cells filled down),
JSONL and plain text (only CR and LF end a line).
Bad input stops the run with an `IngestError` naming file, row and column; suspicious but
usable input (long cards, non-Norwegian cards, tiny workshops, ignored sheets, votes for a
workshop without cards) gives an `IngestWarning` and goes on. Junk cards are kept as
`rejected` with a reason, and every data row of every card file becomes exactly one card,
so that nothing is lost.
"""
from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import io
import json
import logging
import re
import tempfile
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import InnsiktError
from pipeline import language
from pipeline.language import Detected, detect_language, obviously_norwegian
from pipeline.memo import TextMemo, text_key, version_digest
from pipeline.params import IngestParams
from pipeline.pii import Redactions, redact, redact_name
from pipeline.records import (BATCH_ROWS, CARDS, STATUS_OK, STATUS_REJECTED, VOTES, TableWriter, write_json,
                              write_table)
from pipeline.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)

# Python's csv module refuses fields over 128 KiB; a pasted document in one cell is a long card, not an error.
csv.field_size_limit(2**31 - 1)

CARD_SUFFIXES = {".csv", ".tsv", ".txt", ".xlsx", ".jsonl"}
SKIPPED_SUFFIXES = {".md"}  # notes about a corpus live beside it

COLUMN_ALIASES = {
    "card_id": ("card_id", "id", "kort_id", "kortid"),
    "workshop_id": ("workshop_id", "workshop", "verksted", "samling"),
    "group_id": ("group_id", "group", "gruppe"),
    "card_type": ("card_type", "type", "korttype", "kort_type"),
    "text": ("text", "tekst", "card_text", "kort_tekst", "innhold"),
    "theme_id": ("theme_id", "tema_id", "tema"),
    "choice": ("choice", "valg", "stemme"),
}
CARD_TYPE_ALIASES = {
    "wish": ("wish", "ønske", "ønskekort", "onske", "onskekort"),
    "postit": ("postit", "post-it", "post it", "lapp", "gul lapp"),
    "oracle": ("oracle", "orakel", "orakelspørsmål"),
    "reflection": ("reflection", "refleksjon", "refleksjonskort"),
}
_CARD_TYPE_BY_ALIAS = {alias: kind for kind, aliases in CARD_TYPE_ALIASES.items() for alias in aliases}


NOT_NORWEGIAN_MIN_WORDS = 3  # language of shorter cards is a guess
NOT_NORWEGIAN_MIN_CONFIDENCE = 0.6
SAME_WORKSHOP_MIN_CARDS = 3  # two files with the same cards (at least this many): the same workshop twice
OVERLAP_MIN_CARDS, OVERLAP_MIN_SHARE = 5, 0.5  # ... most of them: warn
ROWS_LISTED = 8  # rows named in one warning line before "..."
# Language detections kept between runs, by `memo.text_key(text)` (pipeline/memo.py).
LANGUAGE_MEMO = pa.schema([("key", pa.string()), ("language", pa.string()), ("confidence", pa.float64()),
                           ("nynorsk_share", pa.float64()), ("marker_balance", pa.int64())])


def _where(file: str, row: int | None, column: str | None) -> str:
    return file + (f", row {row}" if row is not None else "") + (f", column {column!r}" if column else "")


class IngestError(InnsiktError):
    """Input that cannot be read as cards; the message names file, row and column.

    `kind` says what is wrong in a word (`missing_text_column`, `duplicate_card_id`, ...; see
    the README's "Input errors and warnings"), for tests and for callers that want to react.
    """

    def __init__(self, file: str, message: str, row: int | None = None, column: str | None = None,
                 kind: str = "bad_input"):
        self.file, self.row, self.column, self.kind = file, row, column, kind
        super().__init__(f"{_where(file, row, column)}: {message}")


@dataclass(frozen=True)
class IngestWarning:
    """Suspicious but usable input: logged as one line, recorded in the manifest, never fatal."""

    kind: str
    file: str
    message: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        return f"{_where(self.file, self.row, self.column)}: {self.message}"

    def as_dict(self) -> dict:
        return {"kind": self.kind, "file": self.file, "row": self.row, "column": self.column,
                "message": self.message}


@dataclass(frozen=True)
class Source:
    """One input file: the name it is reported under and its raw bytes."""

    name: str
    data: bytes


@dataclass
class Table:
    """Rows of one file keyed by canonical column name, with their spreadsheet row numbers."""

    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]
    kind: str = "cards"
    empty: bool = False  # no header and no rows: nothing in the file at all
    header_row: int | None = 1  # None: no header row (JSONL keys, plain text)
    warnings: list[IngestWarning] = field(default_factory=list)


@dataclass
class IngestResult:
    cards: pd.DataFrame | None  # None from `run` with more than BATCH_ROWS cards: they are in its cards.parquet
    votes: pd.DataFrame
    inputs: list[dict] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)  # personal data replaced, per kind
    redactions_by_field: dict[str, dict[str, int]] = field(default_factory=dict)  # ... per field and kind
    warnings: list[IngestWarning] = field(default_factory=list)
    # Detected now, by memo.text_key(text); None from `run` when there were more than BATCH_ROWS (in the memo).
    languages: dict[str, Detected] | None = field(default_factory=dict)
    card_count: int = 0
    rejected: int = 0  # cards kept as rejected (junk)


# --- decoding -------------------------------------------------------------------------------


def decode(source: Source) -> str:
    data = source.data
    if data.startswith(codecs.BOM_UTF8):
        return _decode_strict(source, data[len(codecs.BOM_UTF8) :], "utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode_strict(source, data, "utf-16")
    if b"\x00" in data:
        # UTF-16 without a BOM: ASCII characters leave every other byte zero.
        even_zeros, odd_zeros = data[0::2].count(0), data[1::2].count(0)
        if odd_zeros > len(data) // 4 and even_zeros == 0:
            return _decode_strict(source, data, "utf-16-le")
        if even_zeros > len(data) // 4 and odd_zeros == 0:
            return _decode_strict(source, data, "utf-16-be")
        raise IngestError(source.name, "binary content (NUL bytes); expected a text, CSV, JSONL or XLSX file",
                          row=_line_of(data, data.index(b"\x00")), kind="binary")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Excel on Windows saves CSV as cp1252; a file that is neither fails below, or reads as
    # cp1252 with symbols where Norwegian letters belong (Mac Roman, DOS), which is an error too.
    text = _decode_strict(source, data, "cp1252")
    _check_misread(source, text)
    return text


# What ø, æ, å and Ø saved as Mac Roman, and ø and å saved by DOS (cp850/cp865), read as in cp1252.
# Never beside a letter in Norwegian text; › and † only count inside a word (› is also a quote mark).
MISREAD_MAC = "¿¾Œ¯"
MISREAD_DOS = "›†"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # only these end a line: str.splitlines() also splits on U+2028, FF, ...


def _check_misread(source: Source, text: str) -> None:
    for match in re.finditer(f"[{MISREAD_MAC}{MISREAD_DOS}]", text):
        at = match.start()
        before = at > 0 and text[at - 1].isalpha()
        after = at + 1 < len(text) and text[at + 1].isalpha()
        if not (before and after or (before or after) and match.group() in MISREAD_MAC):
            continue
        start, end = at, at + 1
        while start > 0 and (text[start - 1].isalpha() or text[start - 1] in MISREAD_MAC + MISREAD_DOS):
            start -= 1
        while end < len(text) and (text[end].isalpha() or text[end] in MISREAD_MAC + MISREAD_DOS):
            end += 1
        guess = "Mac Roman" if match.group() in MISREAD_MAC else "a DOS code page (850/865)"
        raise IngestError(
            source.name,
            f"{text[start:end]!r} looks misread: the file is not UTF-8 or UTF-16, and read as cp1252 it has "
            f"{match.group()!r} where a Norwegian letter belongs (saved as {guess}?); expected UTF-8, UTF-16 "
            f"or cp1252 text: save it again as 'CSV UTF-8'",
            row=len(_LINE_BREAK.findall(text, 0, at)) + 1, kind="undecodable")


def _decode_strict(source: Source, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise IngestError(
            source.name,
            f"undecodable byte 0x{data[exc.start]:02x} at offset {exc.start}; "
            f"expected UTF-8, UTF-16 or cp1252 text",
            row=_line_of(data, exc.start),
            kind="undecodable",
        ) from exc


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


# --- parsing per format ---------------------------------------------------------------------


def parse(source: Source) -> Table:
    suffix = Path(source.name).suffix.lower()
    if suffix == ".xlsx":
        return _parse_xlsx(source)
    text = decode(source)
    if suffix == ".jsonl":
        return _parse_jsonl(source, text)
    if suffix == ".txt":
        return _parse_plain(source, text)
    return _parse_delimited(source, text)


def _canonical_header(source: Source, header: list[str], row: int = 1) -> list[str]:
    by_alias = {alias: canon for canon, aliases in COLUMN_ALIASES.items() for alias in aliases}
    names: list[str] = []
    for position, raw in enumerate(header, start=1):
        name = str(raw or "").strip().lstrip("\ufeff").lower()
        if not name:
            name = f"column_{position}"
        name = by_alias.get(name.replace(" ", "_"), name)
        if name in names:
            raise IngestError(source.name, f"column name {name!r} appears twice in the header", row=row,
                              column=name, kind="duplicate_column")
        names.append(name)
    return names


def _sniff_delimiter(first_line: str, text: str) -> str:
    counts = {delim: first_line.count(delim) for delim in (",", ";", "\t")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    if counts[best]:
        return best
    # A one-column file: every line is one cell, commas and semicolons included. A delimiter
    # that never occurs keeps the csv module for quoting (multi-line cells) without splitting.
    return next((d for d in "\x1f\x1e\x1d\x1c" if d not in text), ",")


def _parse_delimited(source: Source, text: str) -> Table:
    first = next((line for line in _LINE_BREAK.split(text) if line.strip()), "")
    if not first:
        return Table(columns=[], rows=[], empty=True)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(first, text), strict=True)
    # Number by record, not physical line: a quoted multi-line cell is still one spreadsheet row.
    records: list[tuple[int, list[str]]] = []
    while True:
        number, first_line = len(records) + 1, reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            where = f"line {first_line}" + (f" to {reader.line_num}" if reader.line_num > first_line else "")
            if "unexpected end of data" in str(exc) or "EOF" in str(exc):
                problem = (f"a quoted cell opened on {where.split(' to ')[0]} is never closed "
                           f"(it runs to the end of the file); expected a closing '\"'")
            else:
                problem = f"{exc} ({where}); expected a quoted cell to end with '\"' followed by a delimiter"
            raise IngestError(source.name, f"broken CSV quoting: {problem}", row=number,
                              kind="broken_quoting") from exc
        records.append((number, row))
    records = [(line, row) for line, row in records if any(cell.strip() for cell in row)]
    if not records:
        return Table(columns=[], rows=[], empty=True)
    header_line, header = records[0]
    columns = _canonical_header(source, header, row=header_line)
    rows = []
    for line, row in records[1:]:
        if len(row) > len(columns):
            raise IngestError(
                source.name,
                f"{len(row)} fields but the header has {len(columns)} (unquoted delimiter in a text?); "
                f"expected at most {len(columns)}",
                row=line,
                column=None,
                kind="too_many_fields",
            )
        rows.append((line, {col: (row[i] if i < len(row) else "") for i, col in enumerate(columns)}))
    return Table(columns=columns, rows=rows, header_row=header_line)


def _parse_xlsx(source: Source) -> Table:
    try:
        return _read_xlsx(source)
    except IngestError:
        raise
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on a damaged or foreign file
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise IngestError(source.name, f"not a readable XLSX workbook ({detail}); expected an Excel .xlsx file",
                          kind="unreadable_xlsx") from exc


FILLED_DOWN = ("workshop_id", "group_id", "card_type")  # merged .xlsx cells of these columns fill down


def _read_xlsx(source: Source) -> Table:
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    # The full model (not read_only): merged ranges and sheet visibility are only there. Formulas
    # as written first; their saved values need a second load, done only when there are formulas.
    workbook = load_workbook(io.BytesIO(source.data))
    sheets = workbook.worksheets
    if not sheets:
        return Table(columns=[], rows=[], empty=True)
    visible = [sheet for sheet in sheets if sheet.sheet_state == "visible"]
    if not visible:
        raise IngestError(source.name, f"no visible sheet (all of {[s.title for s in sheets]} are hidden); "
                                       f"expected the cards on a visible sheet", kind="empty_first_sheet")
    sheet = visible[0]  # cards are on the first sheet the analyst sees; later and hidden sheets are notes
    sheet_cells = {(cell.row, cell.column): cell for row in sheet.iter_rows() for cell in row}
    values = {ref: cell.value for ref, cell in sheet_cells.items()}
    formulas = {ref: cell.value for ref, cell in sheet_cells.items() if cell.data_type == "f"}
    others = [f"{other.title!r}" + ("" if other.sheet_state == "visible" else " (hidden)")
              for other in sheets if other is not sheet and _sheet_has_content(other)]
    unsaved: dict[tuple[int, int], str] = {}  # formula cells without a usable saved value -> why
    if formulas:
        saved = load_workbook(io.BytesIO(source.data), data_only=True)[sheet.title]
        for (row, col), formula in formulas.items():
            cell = saved.cell(row, col)
            text = formula if isinstance(formula, str) else getattr(formula, "text", str(formula))
            if cell.data_type == "e":
                unsaved[(row, col)] = f"holds the formula {text!r} whose saved value is the error {cell.value}"
                values[(row, col)] = None
            elif cell.value is None and cell.data_type != "str":  # type str and no value: the formula gave ""
                unsaved[(row, col)] = f"holds the formula {text!r} without a saved value"
                values[(row, col)] = None
            else:
                values[(row, col)] = cell.value
    # A row is a row when a cell of its own holds something (or a formula that lost its value);
    # then merged cells of the id columns fill down, so every row of a merged group cell carries
    # the group. Not a merged text cell: that is one card, not one per row.
    own = {row for (row, col), value in values.items() if _cell_text(value).strip() or (row, col) in unsaved}
    width = max((col for _, col in values), default=0)
    if not own:
        if others:
            raise IngestError(source.name, f"the first visible sheet {sheet.title!r} is empty, but sheet(s) "
                                           f"[{', '.join(others)}] are not; expected the cards on the first visible "
                                           f"sheet", kind="empty_first_sheet")
        return Table(columns=[], rows=[], empty=True)
    header_row = min(own)
    columns = _canonical_header(source, [_cell_text(values.get((header_row, col))) for col in range(1, width + 1)],
                                row=header_row)
    for merged in sheet.merged_cells.ranges:
        if merged.min_col <= len(columns) and columns[merged.min_col - 1] in FILLED_DOWN:
            top = values.get((merged.min_row, merged.min_col))
            for row in range(max(merged.min_row, header_row) + 1, merged.max_row + 1):
                values[(row, merged.min_col)] = top
    records = [(row, [_cell_text(values.get((row, col))) for col in range(1, width + 1)]) for row in sorted(own)]
    rows = [(n, {col: (cells[i] if i < len(cells) else "") for i, col in enumerate(columns)}) for n, cells in records[1:]]
    warnings = []
    lost = [(row, col, why) for (row, col), why in sorted(unsaved.items()) if row > header_row and col <= len(columns)]
    for row, col, why in lost[:ROWS_LISTED]:
        warnings.append(IngestWarning(
            "formula_without_value", source.name,
            f"cell {get_column_letter(col)}{row} of sheet {sheet.title!r} {why} (saved by a program that does "
            f"not compute formulas?); read as empty: open the file in Excel and save it again",
            row=row, column=columns[col - 1]))
    if len(lost) > ROWS_LISTED:
        rest = lost[ROWS_LISTED:]
        warnings.append(IngestWarning(
            "formula_without_value", source.name,
            f"{len(rest)} more formula cell(s) of sheet {sheet.title!r} without a usable saved value "
            f"({', '.join(get_column_letter(c) + str(r) for r, c, _ in rest[:ROWS_LISTED])}"
            f"{' ...' if len(rest) > ROWS_LISTED else ''}); read as empty", row=rest[0][0]))
    if others:
        warnings.append(IngestWarning(
            "ignored_sheets", source.name,
            f"cards are read from the first visible sheet {sheet.title!r} only; sheet(s) [{', '.join(others)}] "
            f"are ignored"))
    return Table(columns=columns, rows=rows, warnings=warnings, header_row=header_row)


def _sheet_has_content(sheet) -> bool:
    return any(_cell_text(value).strip() for values in sheet.iter_rows(values_only=True) for value in values)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _parse_jsonl(source: Source, text: str) -> Table:
    columns: list[str] = []
    rows = []
    filled = False
    # Not splitlines(): JSON strings may hold U+2028, U+0085 etc. unescaped; only newlines end a record.
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if not line.strip():
            continue
        filled = True
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestError(source.name, f"invalid JSON: {exc.msg} at character {exc.pos + 1}; "
                                           f"expected one JSON object per line", row=number,
                              kind="invalid_json") from exc
        except RecursionError as exc:
            raise IngestError(source.name, "invalid JSON: nested too deeply; expected one JSON object per line",
                              row=number, kind="invalid_json") from exc
        if not isinstance(obj, dict):
            raise IngestError(source.name, f"expected a JSON object, found {type(obj).__name__}", row=number,
                              kind="invalid_json")
        keys = _canonical_header(source, list(obj.keys()), row=number)
        record = {key: _json_cell(source, number, key, value) for key, value in zip(keys, obj.values())}
        for key, value in record.items():
            if _has_surrogate(key) or _has_surrogate(value):
                raise IngestError(source.name, "invalid JSON: a lone surrogate escape (e.g. \\ud800) is not a "
                                               "character; expected valid Unicode text", row=number,
                                  column=None if _has_surrogate(key) else key, kind="invalid_json")
        columns.extend(key for key in keys if key not in columns)
        rows.append((number, record))
    return Table(columns=columns, rows=rows, empty=not filled, header_row=None)


_JSON_TYPE_NAMES = {dict: "an object", list: "an array", bool: "a boolean", int: "a number", float: "a number"}


def _json_cell(source: Source, number: int, key: str, value) -> str:
    """A JSONL value as a cell: the text must be a string; ids a string or a number; extras anything."""
    found = "null" if value is None and key == "text" else _JSON_TYPE_NAMES.get(type(value))
    if key == "text" and found:
        shown = " (an empty card is \"\")" if value is None else f" ({json.dumps(value, ensure_ascii=False)[:60]})"
        raise IngestError(source.name, f"expected the card text as a JSON string, found {found}{shown}", row=number,
                          column=key, kind="invalid_json")
    if key in COLUMN_ALIASES and found in ("an object", "an array", "a boolean"):
        raise IngestError(source.name, f"expected {key} as a JSON string or number, found {found}", row=number,
                          column=key, kind="invalid_json")
    if found in ("an object", "an array", "a boolean"):  # kept as metadata: as JSON, not as Python would print it
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return _cell_text(value)


def _parse_plain(source: Source, text: str) -> Table:
    """One card per line, or per blank-line-separated block when the file has blank lines."""
    lines = _LINE_BREAK.split(text)
    filled = [i for i, line in enumerate(lines) if line.strip()]
    # Blocks only when a blank line separates cards; blank lines at the start or end do not count.
    has_blocks = bool(filled) and any(not line.strip() for line in lines[filled[0] : filled[-1] + 1])
    rows: list[tuple[int, dict[str, str]]] = []
    if not has_blocks:
        rows = [(n, {"text": line}) for n, line in enumerate(lines, start=1) if line.strip()]
    else:
        start, block = None, []
        for number, line in enumerate(lines + [""], start=1):
            if line.strip():
                start = start or number
                block.append(line.strip())
            elif block:
                rows.append((start, {"text": " ".join(block)}))
                start, block = None, []
    return Table(columns=["text"], rows=rows, empty=not filled, header_row=None)


# --- records --------------------------------------------------------------------------------


VOTE_COLUMNS = ("workshop_id", "group_id", "theme_id", "choice")


def classify(table: Table) -> str:
    """A file with theme_id and choice columns is votes, whatever else it has; else a text column makes cards."""
    if {"theme_id", "choice"} <= set(table.columns):
        return "votes"
    if "text" in table.columns:
        return "cards"
    return "unknown"


def canonical_group(raw: str) -> str | None:
    """A group id as it is compared and stored: `g1`, `G1` and `g1` + a zero-width space are one group.

    NFKC, format characters removed (zero-width spaces and joiners, soft hyphens, BOMs), runs of
    white space made one space, ends stripped, case-folded; None when nothing is left.
    """
    text = "".join(ch for ch in unicodedata.normalize("NFKC", raw) if unicodedata.category(ch) != "Cf")
    return " ".join(text.split()).casefold() or None


def card_type_of(raw: str) -> str:
    return _CARD_TYPE_BY_ALIAS.get(raw.strip().lower(), "other" if raw.strip() else "other")


def junk_reason(text: str, params: IngestParams) -> str | None:
    stripped = text.strip()
    if not stripped:
        return "empty card"
    # Enough letters: stop counting at min_letters (a pasted document has hundreds of thousands).
    if len(list(islice(filter(str.isalpha, stripped), params.min_letters))) < params.min_letters:
        return "no words (punctuation or digits only)"
    phrase = re.sub(r"[\W_]+$", "", stripped.lower())
    if phrase in {p.lower() for p in params.junk_phrases}:
        return f"placeholder text ({phrase!r})"
    return None


def content_id(workshop_id: str, text: str) -> str:
    return f"{workshop_id}-{hashlib.sha1(text.strip().encode('utf-8')).hexdigest()[:10]}"


def ingest(sources: list[Source], params: IngestParams, taxonomy: Taxonomy | None = None,
           languages: dict[str, Detected] | None = None) -> IngestResult:
    """Parse every source into card and vote records; pure (no file system).

    With a `taxonomy`, votes are checked against it here, at the door: an unknown theme id or a
    choice the theme does not offer stops the run naming the file, row and column. `languages`:
    earlier `detect_language` results by `memo.text_key(text)`; texts not in it are detected now
    (the result's `languages`). The same steps as `run`, with the cards held in memory.
    """
    known = languages or {}
    state = Ingestion(params, taxonomy, known=lambda keys: {key: known[key] for key in keys if key in known})
    spool = MemorySpool()
    for source in sources:
        state.add(source, spool)
    state.finish(spool)
    rows = [row for batch in state.card_batches(spool) for row in batch]
    return state.result(pd.DataFrame(rows, columns=CARDS.names))


# --- what is kept across files ------------------------------------------------------------------


def _digest(*parts: str) -> bytes:
    """16 bytes standing for `parts`, each length-prefixed (("ab", "c") and ("a", "bc") differ)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.digest()


def _digest_rows(digests: list[bytes]) -> np.ndarray:
    """`_digest`s as rows of two uint64s, as `DigestIndex` takes them."""
    return np.frombuffer(b"".join(digests), dtype=np.uint64).reshape(-1, 2) if digests \
        else np.zeros((0, 2), dtype=np.uint64)


class DigestIndex:
    """16-byte digests (of card ids, of cards' workshop and text), each with a number, in sorted runs
    merged as they grow, so that adding a file's digests costs about a sort of its own: what ingest keeps
    per card across files, 24 bytes each, instead of the strings (two strings with one 128-bit digest:
    never seen)."""

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, digest: np.ndarray, number: np.ndarray) -> None:
        """Digests not in the index yet, each once, with their numbers."""
        if not len(digest):
            return
        while self.runs and len(self.runs[-1][0]) <= 2 * len(digest):
            older, numbers = self.runs.pop()
            digest, number = np.concatenate([older, digest]), np.concatenate([numbers, number])
        order = np.lexsort((digest[:, 1], digest[:, 0]))
        self.runs.append((digest[order], number[order]))

    def get(self, digest: np.ndarray) -> np.ndarray:
        """The number of each digest, -1 when it is not in the index."""
        found = np.full(len(digest), -1, dtype=np.int64)
        for keys, numbers in self.runs:
            # The first 8 bytes find a run of keys (one key but for a 64-bit clash), the last 8 the key in it.
            low = np.searchsorted(keys[:, 0], digest[:, 0], "left")
            high = np.searchsorted(keys[:, 0], digest[:, 0], "right")
            for k in np.flatnonzero(high > low).tolist():
                at = low[k] + int(np.searchsorted(keys[low[k]:high[k], 1], digest[k, 1]))
                if at < high[k] and keys[at, 1] == digest[k, 1]:
                    found[k] = numbers[at]
        return found


# Cards as spooled between the two passes: the output columns (card_id null when it is generated) and the
# ids as found, which `Redactions.apart` needs once every file is read.
SPOOL = pa.schema(list(CARDS) + [("raw_card_id", pa.string()), ("raw_workshop_id", pa.string()),
                                 ("raw_group_id", pa.string())])
_AT = {name: k for k, name in enumerate(SPOOL.names)}


class MemorySpool:
    """Spooled cards (tuples in SPOOL's order) in memory: `ingest`'s."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, rows: list[tuple]) -> None:
        self.rows.extend(rows)

    def close(self) -> None:
        pass

    def batches(self, columns: list[str] | None = None) -> Iterator[list[tuple]]:
        at = [_AT[name] for name in columns] if columns else None
        for start in range(0, len(self.rows), BATCH_ROWS):
            part = self.rows[start:start + BATCH_ROWS]
            yield part if at is None else [tuple(row[k] for k in at) for row in part]


class FileSpool(MemorySpool):
    """Spooled cards in a Parquet file, a row group of BATCH_ROWS cards at a time: `run`'s."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path, self.writer = path, None

    def add(self, rows: list[tuple]) -> None:
        self.rows.extend(rows)
        while len(self.rows) >= BATCH_ROWS:
            self._write(self.rows[:BATCH_ROWS])
            del self.rows[:BATCH_ROWS]

    def _write(self, rows: list[tuple]) -> None:
        columns = list(zip(*rows)) if rows else [() for _ in SPOOL]
        table = pa.Table.from_arrays([pa.array(list(values), type=field.type) for values, field in zip(columns, SPOOL)],
                                     schema=SPOOL)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, SPOOL)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.rows or self.writer is None:
            self._write(self.rows)
            self.rows = []
        self.writer.close()

    def batches(self, columns: list[str] | None = None) -> Iterator[list[tuple]]:
        names = columns or SPOOL.names
        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=BATCH_ROWS, columns=names):
            yield list(zip(*(batch.column(name).to_pylist() for name in names)))


@dataclass
class _Workshop:
    first: int  # number of its first card
    file: str  # that card's file, as shown
    usable: int = 0


class Ingestion:
    """Ingest a file at a time (`add`), then the checks and ids that need every file (`finish`), then the
    cards (`card_batches`). Across files it keeps a few numbers per card (16-byte digests of given ids,
    of id-less cards' generated ids and of usable cards' workshop and text), a few fields per file and
    per workshop, and the votes; the cards themselves go to a spool (`MemorySpool`, `FileSpool`).

    `known(keys)`: earlier language detections of these `memo.text_key`s (those it has); `flush(detected)`,
    when given, takes every BATCH_ROWS new detections (then dropped here) to keep for later lookups.
    """

    def __init__(self, params: IngestParams, taxonomy: Taxonomy | None,
                 known: Callable[[list[str]], dict[str, Detected]],
                 flush: Callable[[dict[str, Detected]], None] | None = None):
        self.params, self.taxonomy, self.known, self.flush = params, taxonomy, known, flush
        self.redactions = Redactions()
        self.inputs: list[dict] = []
        self.names: list[str] = []  # every source
        self.files: list[str] = []  # card files, numbered as in `given` and `file_of_card`
        self.file_warnings: list[IngestWarning] = []
        self.long_warnings: list[IngestWarning] = []
        self.foreign: dict[str, tuple[Counter, list[int]]] = {}  # file shown -> languages, first rows
        self.seen_content: dict[str, str] = {}
        self.seen_cards: dict[bytes, str] = {}  # digest of the cards of a file (workshop, group, type, text) -> file
        self.workshop_from_name: dict[str, str] = {}  # workshop ids taken from a file name -> the first such file
        self.given = DigestIndex()  # card ids given -> file number << 32 | row
        self.file_of_card = DigestIndex()  # (workshop, text) of every usable card so far -> its first file
        self.idless: list[tuple[np.ndarray, np.ndarray]] = []  # digests of generated ids, card numbers
        self.workshops: dict[tuple[str, str], _Workshop] = {}  # (workshop as found, redacted) -> counts
        self.votes: list[dict] = []
        self.cards = self.rejected = 0
        self.pending: list[tuple[str, str, str, int]] = []  # (key, text, file shown, row): language to check
        self.detected: dict[str, Detected] = {}
        self.flushed = False
        self.warnings: list[IngestWarning] = []
        self.generated: dict[int, str] = {}  # card number -> id, for generated ids that are not the plain content id
        self.clean_ids: dict[int, str] = {}  # card number -> generated id redacted, where redaction changed it

    def add(self, source: Source, spool: MemorySpool) -> None:
        digest = hashlib.sha256(source.data).hexdigest()
        self.names.append(source.name)
        if digest in self.seen_content:
            raise IngestError(source.name, f"same content as {self.seen_content[digest]} (a file given twice?); "
                                           f"expected each file once", kind="same_content")
        self.seen_content[digest] = source.name
        table = Table(columns=[], rows=[], empty=True) if not source.data.strip() else parse(source)
        if table.empty:
            raise IngestError(source.name, "empty file: no header and no cards; expected a header row and one row "
                                           "per card (an export that failed? remove the file or export it again)",
                              kind="empty_file")
        kind = classify(table)
        shown = self.redactions.name("file_name", source.name)  # the name outputs show; errors name the file itself
        if kind == "unknown":
            raise IngestError(
                source.name,
                f"no text column: expected one of {list(COLUMN_ALIASES['text'])} "
                f"(or theme_id and choice for votes), found {table.columns}",
                row=1,
                column="text",
                kind="missing_text_column",
            )
        self.file_warnings.extend(table.warnings)
        ignored = [column for column in table.columns if column not in VOTE_COLUMNS]
        if kind == "votes" and ignored:
            self.file_warnings.append(IngestWarning(
                "ignored_columns", source.name,
                f"a votes file (it has theme_id and choice): column(s) {ignored} are not read; expected only "
                f"{', '.join(VOTE_COLUMNS)}", row=table.header_row, column=ignored[0]))
        if not table.rows:
            self.file_warnings.append(IngestWarning(
                "header_only", source.name, f"a header ({', '.join(table.columns)}) but no {kind}; the file adds nothing"))
        if kind == "votes":
            self.votes.extend(_vote_records(source, table, self.taxonomy, shown, self.redactions))
        else:
            _check_workshop_from_name(source, table, self.workshop_from_name)
            number = len(self.files)
            self.files.append(source.name)
            self._check_card_ids(source, table, number)
            records = _card_records(source, table, self.params, self.redactions, shown)
            self._check_same_workshop_twice(source, records, number)
            spool.add(self._note_cards(records))
        self.inputs.append({"path": shown, "sha256": digest, "kind": kind, "rows": len(table.rows)})

    def _check_card_ids(self, source: Source, table: Table, number: int) -> None:
        """Every given card id once across all files: the first id seen before stops the run."""
        given = [(row_number, card_id) for row_number, row in table.rows if (card_id := row.get("card_id", "").strip())]
        if not given:
            return
        digest = _digest_rows([_digest(card_id) for _, card_id in given])
        here: dict[str, int] = {}
        for (row_number, card_id), earlier in zip(given, self.given.get(digest).tolist()):
            if earlier >= 0:
                other_file, other_row = self.files[earlier >> 32], earlier & 0xFFFFFFFF
            elif card_id in here:
                other_file, other_row = source.name, here[card_id]
            else:
                here[card_id] = row_number
                continue
            raise IngestError(
                source.name,
                f"duplicate card id {card_id!r} (first seen in {other_file}, row {other_row}); "
                f"expected every card id once across all files",
                row=row_number,
                column="card_id",
                kind="duplicate_card_id",
            )
        self.given.add(digest, np.array([number << 32 | row_number for row_number, _ in given], dtype=np.int64))

    def _check_same_workshop_twice(self, source: Source, records: list[dict], number: int) -> None:
        """The same workshop exported twice (say .xlsx and .csv) has other bytes but the same cards.

        `file_of_card` has (workshop, text) of the usable cards of earlier files with their file; this
        file's cards are added to it (one index for all files, so many files stay linear).
        """
        keys = sorted(_digest(card["workshop_id"], card["group_id"] or "", card["card_type"], card["text"].strip())
                      for card in records)
        fingerprint = hashlib.blake2b(b"".join(keys), digest_size=16).digest()
        if len(records) >= SAME_WORKSHOP_MIN_CARDS and fingerprint in self.seen_cards:
            raise IngestError(source.name, f"the same {len(records)} cards as {self.seen_cards[fingerprint]} (same "
                                           f"workshop, groups and texts: the same workshop given twice?); expected "
                                           f"each workshop once", kind="same_cards")
        self.seen_cards.setdefault(fingerprint, source.name)
        live = [card for card in records if card["status"] == STATUS_OK]
        digest = _digest_rows([_digest(card["workshop_id"], card["text"].strip()) for card in live])
        earlier = self.file_of_card.get(digest).tolist()
        shared = Counter(self.files[at] for at in earlier if at >= 0)
        fresh: dict[bytes, int] = {}
        for k, at in enumerate(earlier):
            if at < 0:
                fresh.setdefault(digest[k].tobytes(), k)
        self.file_of_card.add(digest[list(fresh.values())], np.full(len(fresh), number, dtype=np.int64))
        if len(live) < OVERLAP_MIN_CARDS:
            return
        for other, count in shared.most_common(1):
            if count >= OVERLAP_MIN_CARDS and count >= OVERLAP_MIN_SHARE * len(live):
                self.file_warnings.append(IngestWarning(
                    "overlapping_files", source.name,
                    f"{count} of its {len(live)} cards are also in {other}, with the same workshop and text "
                    f"(the same workshop given twice?); all are kept"))

    def _note_cards(self, records: list[dict]) -> list[tuple]:
        """What is kept of a file's cards (warnings, counts, digests), and the cards as spooled."""
        params, rows = self.params, []
        idless_digest, idless_at = [], []
        for number, card in enumerate(records, start=self.cards):
            text, ok = card["text"], card["status"] == STATUS_OK
            if len(text) > params.long_card_chars:
                self.long_warnings.append(IngestWarning(
                    "long_card", card["source_file"],
                    f"card of {len(text):,} characters (over ingest.long_card_chars = {params.long_card_chars:,}); "
                    f"the embedding model reads it in parts or cuts it, the report keeps it whole",
                    row=card["source_row"], column="text"))
            if ok and len(re.findall(r"[^\W\d_]{2,}", text)) >= NOT_NORWEGIAN_MIN_WORDS and not obviously_norwegian(text):
                self.pending.append((text_key(text), text, card["source_file"], card["source_row"]))
            raw = card.pop("_raw_ids")
            workshop = self.workshops.setdefault((raw["workshop_id"], card["workshop_id"]),
                                                 _Workshop(number, card["source_file"]))
            workshop.usable += ok
            self.rejected += not ok
            if card["card_id"] is None:  # generated once every file is read (`_generate_card_ids`)
                raw["card_id"] = content_id(card["workshop_id"], text)
                idless_digest.append(_digest(raw["card_id"]))
                idless_at.append(number)
            rows.append(tuple(card[name] for name in CARDS.names) + (raw["card_id"], raw["workshop_id"], raw["group_id"]))
        if idless_at:
            self.idless.append((_digest_rows(idless_digest), np.array(idless_at, dtype=np.int64)))
        self.cards += len(records)
        if len(self.pending) >= BATCH_ROWS:
            self._check_languages()
        return rows

    def _check_languages(self) -> None:
        """Languages of the pending cards: from `known` when there, else detected (and kept in `detected`)."""
        keys = list(dict.fromkeys(key for key, *_ in self.pending if key not in self.detected))
        known = self.known(keys) if keys else {}
        for key, text, file, row in self.pending:
            detection = known.get(key) or self.detected.get(key)
            if detection is None:
                detection = self.detected[key] = detect_language(text)
            if detection.code not in ("nb", "nn", "und") and detection.confidence >= NOT_NORWEGIAN_MIN_CONFIDENCE:
                codes, rows = self.foreign.setdefault(file, (Counter(), []))
                codes[detection.code] += 1
                if len(rows) < ROWS_LISTED:
                    rows.append(row)
        self.pending = []
        if self.flush is not None and len(self.detected) >= BATCH_ROWS:
            self.flush(self.detected)
            self.detected, self.flushed = {}, True

    def finish(self, spool: MemorySpool) -> None:
        """The checks and ids that need every file, then the warnings (`warnings`), in the order of the files."""
        spool.close()
        self._check_languages()
        card_rows = sum(item["rows"] for item in self.inputs if item["kind"] == "cards")
        if self.cards != card_rows:  # every data row of a card file is exactly one card
            raise IngestError(", ".join(item["path"] for item in self.inputs),
                              f"card conservation violated: {card_rows} data rows but {self.cards} cards",
                              kind="conservation")
        if not self.cards and self.names:
            names = self.names
            raise IngestError(", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else ""),
                              "no cards in any input file; expected at least one file with a text column and rows",
                              kind="no_cards")
        self._generate_card_ids(spool)
        # Ids redacted alike are told apart (`Redactions.apart`) only now that every id has been seen.
        for vote in self.votes:
            for column, raw in vote.pop("_raw_ids").items():
                if vote[column]:
                    vote[column] = self.redactions.apart(_ID_SCOPES[column], raw, vote[column])
        usable: dict[str, list] = {}  # workshop -> [file of its first card, usable cards]
        for (raw, clean), workshop in sorted(self.workshops.items(), key=lambda item: item[1].first):
            name = self.redactions.apart("workshop", raw, clean) if clean else clean
            usable.setdefault(name, [workshop.file, 0])[1] += workshop.usable
        warnings = self.file_warnings + self.long_warnings
        for file, (codes, rows) in self.foreign.items():
            languages = ", ".join(f"{code} ({n})" for code, n in codes.most_common())
            found = sum(codes.values())
            warnings.append(IngestWarning(
                "not_norwegian", file,
                f"{found} card(s) look not Norwegian: {languages}, rows {_rows_text(rows, found)}; "
                f"they are kept and themed with the rest (taxonomy and repair are Norwegian)"))
        if self.params.min_workshop_cards:
            for workshop, (file, n) in usable.items():
                if n < self.params.min_workshop_cards:
                    warnings.append(IngestWarning(
                        "small_workshop", file,
                        f"workshop {workshop!r} has only {n} usable card(s) (ingest.min_workshop_cards = "
                        f"{self.params.min_workshop_cards}); its counts and quotes rest on very little"))
        warnings.extend(_vote_warnings(self.votes, sorted(usable)))
        self.warnings = [_redacted_warning(warning) for warning in warnings]

    def _generate_card_ids(self, spool: MemorySpool) -> None:
        """Ids for the cards without one: `content_id(workshop, text)`; cards of one workshop with the
        same text are numbered `-2`, `-3` ... in the sorted order of what else tells them apart (group,
        card type, metadata, file name; the row number last, for true copies), so that the ids do not
        depend on the order of the rows or files. Given ids are never taken.

        Only the cards whose content id is shared or taken are read back from the spool for that; then
        every generated id is redacted (counted, and what `Redactions.apart` tells apart)."""
        if not self.idless:
            return
        digest = np.concatenate([d for d, _ in self.idless])
        number = np.concatenate([n for _, n in self.idless])
        self.idless = []
        order = np.lexsort((digest[:, 1], digest[:, 0]))
        ordered = digest[order]
        equal = (ordered[1:] == ordered[:-1]).all(axis=1)
        shared = np.zeros(len(digest), dtype=bool)
        shared[order[1:][equal]] = shared[order[:-1][equal]] = True
        del ordered
        shared |= self.given.get(digest) >= 0
        wanted = set(number[shared].tolist())
        same_text: dict[str, list[tuple]] = {}
        at = 0
        for batch in spool.batches(["raw_card_id", "raw_group_id", "card_type", "metadata", "source_file",
                                    "source_row"]) if wanted else ():
            for k, (base, *order_key) in enumerate(batch, start=at):
                if k in wanted:
                    same_text.setdefault(base, []).append((*order_key, k))
            at += len(batch)
        for base, cards in sorted(same_text.items()):
            cards.sort()
            taken: set[str] = set()
            suffix = 1
            for *_, k in cards:
                card_id = base if suffix == 1 else f"{base}-{suffix}"
                while card_id in taken or self.given.get(_digest_rows([_digest(card_id)]))[0] >= 0:
                    suffix += 1  # a given id that looks like a generated one
                    card_id = f"{base}-{suffix}"
                suffix += 1
                taken.add(card_id)
                if card_id != base:
                    self.generated[k] = card_id
        at = 0
        for batch in spool.batches(["card_id", "raw_card_id"]):
            for k, (card_id, raw) in enumerate(batch, start=at):
                if card_id is None:
                    raw = self.generated.get(k, raw)
                    clean = self.redactions.ident("card", "card_id", raw)
                    if clean != raw:
                        self.clean_ids[k] = clean
            at += len(batch)

    def card_batches(self, spool: MemorySpool) -> Iterator[list[tuple]]:
        """The cards in CARDS' order of columns, a spooled batch at a time, with their final ids."""
        apart, at = self.redactions.apart, 0
        for batch in spool.batches():
            rows = []
            for k, (card_id, workshop_id, group_id, *rest, raw_card, raw_workshop, raw_group) in enumerate(batch, at):
                if card_id is None:
                    raw_card = self.generated.get(k, raw_card)
                    card_id = self.clean_ids.get(k, raw_card)
                rows.append((apart("card", raw_card, card_id) if card_id else card_id,
                             apart("workshop", raw_workshop, workshop_id) if workshop_id else workshop_id,
                             apart("group", raw_group, group_id) if group_id else group_id, *rest))
            at += len(batch)
            yield rows

    def result(self, cards: pd.DataFrame | None) -> IngestResult:
        return IngestResult(
            cards=cards,
            votes=pd.DataFrame(self.votes, columns=VOTES.names),
            inputs=self.inputs,
            redactions=self.redactions.per_kind(),
            redactions_by_field=self.redactions.per_field(),
            warnings=self.warnings,
            languages=None if self.flushed else self.detected,
            card_count=self.cards,
            rejected=self.rejected,
        )


def _card_records(source: Source, table: Table, params: IngestParams, redactions: Redactions,
                  shown: str) -> list[dict]:
    # Personal data never leaves ingest: every field that reaches an output is redacted here,
    # before anything is written (pipeline/pii.py), and counted per field. The default workshop
    # (the file name) and the column names are counted once per file.
    default_workshop: str | None = None  # redacted when first needed: counted only when used
    column_shown = {column: redactions.text("column_name", column) for column in table.columns}
    known = {"card_id", "workshop_id", "group_id", "card_type", "text"}
    records = []
    for row_number, row in table.rows:
        # The text the content hash of a generated id is taken from is the redacted one.
        text = redactions.text("text", row.get("text", ""))
        raw_workshop, raw_group = row.get("workshop_id", "").strip(), canonical_group(row.get("group_id", "")) or ""
        if raw_workshop:
            workshop_id = redactions.ident("workshop", "workshop_id", raw_workshop)
        else:
            raw_workshop = Path(source.name).stem
            if default_workshop is None:
                default_workshop = redactions.ident("workshop", "workshop_id", raw_workshop)
            workshop_id = default_workshop
        raw_card_id = row.get("card_id", "").strip() or None  # checked once across files (`_check_card_ids`)
        card_id = redactions.ident("card", "card_id", raw_card_id) if raw_card_id else None
        records.append(_card_record(row, row_number, text, workshop_id, raw_workshop, raw_group,
                                    card_id, raw_card_id, column_shown, known, params, redactions, shown))
    return records


def _card_record(row: dict, row_number: int, text: str, workshop_id: str, raw_workshop: str,
                 raw_group: str, card_id: str | None, raw_card_id: str | None, column_shown: dict, known: set,
                 params: IngestParams, redactions: Redactions, shown: str) -> dict:
    raw_type = redactions.text("card_type", row.get("card_type", ""))
    extras = {column_shown[key]: redactions.text("metadata", value) for key, value in row.items()
              if key not in known and value != ""}
    if card_type_of(raw_type) == "other" and raw_type.strip():
        extras["card_type_raw"] = raw_type
    reason = junk_reason(text, params)
    return {
        "card_id": card_id,
        "workshop_id": workshop_id,
        "group_id": redactions.ident("group", "group_id", raw_group) or None,
        "card_type": card_type_of(raw_type),
        "text": text,
        "source_file": shown,
        "source_row": row_number,
        "metadata": json.dumps(extras, ensure_ascii=False, sort_keys=True),
        "status": STATUS_REJECTED if reason else STATUS_OK,
        "reason": reason,
        "_raw_ids": {"card_id": raw_card_id, "workshop_id": raw_workshop, "group_id": raw_group},
    }


_ID_SCOPES = {"card_id": "card", "workshop_id": "workshop", "group_id": "group"}


def _redacted_warning(warning: IngestWarning) -> IngestWarning:
    """A warning as written to the manifest and the log: its file, column and message repeat
    values of the input, whose personal data is counted in their own fields, so not again here."""
    return IngestWarning(warning.kind, redact_name(warning.file)[0], redact(warning.message)[0], warning.row,
                         None if warning.column is None else redact(warning.column)[0])


def _check_workshop_from_name(source: Source, table: Table, taken: dict[str, str]) -> None:
    """hamar/ark1.csv and molde/ark1.csv without a workshop column would silently be one workshop 'ark1'.

    Files in one folder with one stem (ws.csv beside ws.txt) are one workshop, as before.
    """
    if all(row.get("workshop_id", "").strip() for _, row in table.rows):
        return  # every row names its workshop (or there are no rows)
    path = Path(source.name)
    first = taken.setdefault(path.stem, source.name)
    if Path(first).parent != path.parent:
        raise IngestError(
            source.name,
            f"workshop {path.stem!r} (from the file name) is also the workshop of {first}, another file in "
            f"another folder without a workshop column; expected a workshop_id column, or distinct file names, "
            f"to tell the workshops apart", row=table.header_row, column="workshop_id", kind="ambiguous_workshop")


def _rows_text(rows: list[int], total: int | None = None) -> str:
    """The first rows (of `total`, default all of `rows`), and how many more."""
    total = len(rows) if total is None else total
    listed = ", ".join(str(r) for r in rows[:ROWS_LISTED])
    return listed + (f" and {total - ROWS_LISTED} more" if total > ROWS_LISTED else "")


def _vote_warnings(votes: list[dict], workshops: list[str]) -> list[IngestWarning]:
    """Votes for a workshop that has no cards (`workshops`: those with cards, sorted): most often a misspelt
    workshop id."""
    if not workshops:
        return []
    unknown: dict[tuple[str, str], list[int]] = defaultdict(list)
    for vote in votes:
        if vote["workshop_id"] not in workshops:
            unknown[(vote["source_file"], vote["workshop_id"])].append(vote["source_row"])
    warnings = []
    for (file, workshop), rows in unknown.items():
        close = difflib.get_close_matches(workshop, workshops, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        warnings.append(IngestWarning(
            "unknown_workshop", file,
            f"{len(rows)} vote(s) for workshop {workshop!r}, which has no cards (rows {_rows_text(rows)}); "
            f"{hint}workshops with cards: {workshops[:ROWS_LISTED]}{' ...' if len(workshops) > ROWS_LISTED else ''}",
            row=rows[0], column="workshop_id"))
    return warnings


def _vote_records(source: Source, table: Table, taxonomy: Taxonomy | None, shown: str,
                  redactions: Redactions) -> list[dict]:
    """Vote records, checked against `taxonomy` when given. Every field is redacted after the checks
    (errors name the value as found, outputs never), and `source_file` is the name as shown."""
    themes = {theme.id: theme for theme in taxonomy.themes} if taxonomy is not None else None
    records = []
    for row_number, row in table.rows:
        for column in VOTE_COLUMNS:
            if not (canonical_group if column == "group_id" else str.strip)(row.get(column, "")):
                raise IngestError(source.name, f"empty {column} in a votes row; expected a value",
                                  row=row_number, column=column, kind="empty_vote_field")
        theme_id, choice = row["theme_id"].strip(), row["choice"].strip().lower()
        if themes is not None:
            if theme_id not in themes:
                close = difflib.get_close_matches(theme_id, list(themes), n=1)
                raise IngestError(
                    source.name,
                    f"{theme_id!r} is not a theme of taxonomy {taxonomy.id!r}; expected one of its "
                    f"{len(themes)} theme ids" + (f" (did you mean {close[0]!r}?)" if close else ""),
                    row=row_number, column="theme_id", kind="unknown_theme")
            if choice not in themes[theme_id].choices:
                raise IngestError(
                    source.name,
                    f"{row['choice'].strip()!r} is not a choice for theme {theme_id!r}; "
                    f"expected one of {list(themes[theme_id].choices)}",
                    row=row_number, column="choice", kind="bad_choice")
        records.append(
            {
                "workshop_id": redactions.ident("workshop", "votes.workshop_id", row["workshop_id"].strip()),
                "group_id": redactions.ident("group", "votes.group_id", canonical_group(row["group_id"]) or ""),
                "theme_id": redactions.text("votes.theme_id", theme_id),
                "choice": redactions.text("votes.choice", choice),
                "source_file": shown,
                "source_row": row_number,
                "_raw_ids": {"workshop_id": row["workshop_id"].strip(),
                             "group_id": canonical_group(row["group_id"]) or ""},
            }
        )
    return records


# --- entry ------------------------------------------------------------------------------------


def discover(paths: list[Path]) -> list[Path]:
    """Input files under the given files and folders, in a stable order."""
    found: list[Path] = []
    for path in paths:
        try:
            if path.is_dir():
                candidates = sorted(p for p in path.rglob("*") if p.is_file())
            elif path.is_file():
                candidates = [path]
            else:
                raise IngestError(str(path), "input path does not exist", kind="missing_path")
        except OSError as exc:
            raise IngestError(str(path), f"cannot list input folder: {exc.strerror or exc}", kind="unreadable") from exc
        for candidate in candidates:
            relative_parts = candidate.relative_to(path).parts if path.is_dir() else (candidate.name,)
            if any(part.startswith(".") for part in relative_parts):
                continue
            suffix = candidate.suffix.lower()
            if suffix in SKIPPED_SUFFIXES:
                continue
            if suffix not in CARD_SUFFIXES:
                raise IngestError(
                    display_name(candidate), f"unsupported file type {suffix!r}; expected one of {sorted(CARD_SUFFIXES)}",
                    kind="unsupported_type",
                )
            found.append(candidate)
    return found


def display_name(path: Path) -> str:
    """Path relative to the working directory when inside it, so ids do not depend on the checkout."""
    resolved = path.resolve()
    try:
        return resolved.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return resolved.as_posix()


def read_source(path: Path) -> Source:
    name = display_name(path)
    try:
        return Source(name, path.read_bytes())
    except OSError as exc:
        raise IngestError(name, f"cannot read file: {exc.strerror or exc}", kind="unreadable") from exc


def language_memo(cache_dir: Path) -> TextMemo:
    """Detections depend only on pipeline/language.py and the language models."""
    version_id = version_digest(params={}, modules=(language,), packages=("lingua-language-detector",))
    return TextMemo(cache_dir, "language", version_id, LANGUAGE_MEMO)


def languages_from_memo(rows: pd.DataFrame) -> dict[str, Detected]:
    """LANGUAGE_MEMO rows (indexed by key) as `ingest(languages=...)` takes them."""
    return {key: Detected(code, confidence, share, int(balance)) for key, code, confidence, share, balance in
            zip(rows.index, rows["language"], rows["confidence"], rows["nynorsk_share"], rows["marker_balance"])}


def languages_to_memo(languages: dict[str, Detected]) -> pd.DataFrame:
    """`IngestResult.languages` as LANGUAGE_MEMO rows."""
    rows = [(key, d.code, d.confidence, d.nynorsk_share, d.marker_balance) for key, d in languages.items()]
    return pd.DataFrame(rows, columns=LANGUAGE_MEMO.names)


def run(*, inputs: list[Path], out_dir: Path, params: IngestParams, taxonomy: Path | None = None,
        cache_dir: Path | None = None) -> IngestResult:
    """Read the inputs, log every warning as one line, and write cards, votes and the manifest.

    With `taxonomy` (a taxonomy YAML path), votes are checked against it before anything is written.
    `cache_dir`: where language detections are kept between runs (None: detect every text).

    Memory is bounded by the largest input file and BATCH_ROWS cards, not by the corpus: files are read
    one at a time (`Ingestion`), their cards spooled to a Parquet file beside the outputs, and cards.parquet
    written from it a row group at a time. The result's `cards` are the cards written when there are at
    most BATCH_ROWS of them (else None).
    """
    files = discover(inputs)
    if not files:
        raise IngestError(", ".join(str(p) for p in inputs), "no input files found", kind="no_input")
    loaded = load_taxonomy(taxonomy) if taxonomy is not None else None
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ingest-", dir=out_dir) as folder:
        folder = Path(folder)
        # Without a cache, a memo lives in the folder for the run: detections are looked up, not held.
        memo = language_memo(cache_dir if cache_dir is not None else folder / "cache")
        index = memo.index()

        def flush(detected: dict[str, Detected]) -> None:
            path = memo.add(languages_to_memo(detected))
            if path is not None:
                index.extend(path, list(detected))

        state = Ingestion(params, loaded, known=lambda keys: languages_from_memo(index.rows(keys)), flush=flush)
        spool = FileSpool(folder / "cards.parquet")
        for path in files:
            state.add(read_source(path), spool)
        state.finish(spool)
        memo.add(languages_to_memo(state.detected))
        for warning in state.warnings:
            log.warning("%s", warning)
        cards = None
        with TableWriter(out_dir / "cards.parquet", CARDS) as writer:
            for rows in state.card_batches(spool):
                cards = pd.DataFrame(rows, columns=CARDS.names)
                writer.write(cards)
    result = state.result(cards if state.cards <= BATCH_ROWS else None)
    write_table(result.votes, VOTES, out_dir / "votes.parquet")
    write_json({"inputs": result.inputs, "redactions": result.redactions,
                "redactions_by_field": result.redactions_by_field,
                "warnings": [w.as_dict() for w in result.warnings]}, out_dir / "manifest.json")
    return result
