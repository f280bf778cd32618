"""Ingest: every input file -> canonical card and vote records.

Reads CSV (`,` `;` tab; UTF-8 with or without BOM, UTF-16, cp1252), XLSX, JSONL and plain text.
Bad input stops the run with an `IngestError` naming file, row and column; junk cards are
kept as `rejected` with a reason so that nothing is lost.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
from collections import Counter
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.params import IngestParams
from pipeline.pii import PII_KINDS, redact
from pipeline.records import CARDS, STATUS_OK, STATUS_REJECTED, VOTES, write_json, write_table

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


class IngestError(ValueError):
    """Input that cannot be read as cards; the message names file, row and column."""

    def __init__(self, file: str, message: str, row: int | None = None, column: str | None = None):
        self.file, self.row, self.column = file, row, column
        where = file + (f", row {row}" if row is not None else "") + (f", column {column!r}" if column else "")
        super().__init__(f"{where}: {message}")


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


@dataclass
class IngestResult:
    cards: pd.DataFrame
    votes: pd.DataFrame
    inputs: list[dict] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)  # personal data replaced, per kind


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
                          row=_line_of(data, data.index(b"\x00")))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Excel on Windows saves CSV as cp1252; a file that is neither fails below.
    return _decode_strict(source, data, "cp1252")


def _decode_strict(source: Source, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise IngestError(
            source.name,
            f"undecodable byte 0x{data[exc.start]:02x} at offset {exc.start}; "
            f"expected UTF-8, UTF-16 or cp1252 text",
            row=_line_of(data, exc.start),
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


def _canonical_header(source: Source, header: list[str]) -> list[str]:
    by_alias = {alias: canon for canon, aliases in COLUMN_ALIASES.items() for alias in aliases}
    names: list[str] = []
    for position, raw in enumerate(header, start=1):
        name = str(raw or "").strip().lstrip("\ufeff").lower()
        if not name:
            name = f"column_{position}"
        name = by_alias.get(name.replace(" ", "_"), name)
        if name in names:
            raise IngestError(source.name, f"column name {name!r} appears twice in the header", row=1, column=name)
        names.append(name)
    return names


def _sniff_delimiter(first_line: str) -> str:
    counts = {delim: first_line.count(delim) for delim in (",", ";", "\t")}
    best = max(counts, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _parse_delimited(source: Source, text: str) -> Table:
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if not first:
        return Table(columns=[], rows=[])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_sniff_delimiter(first), strict=True)
    try:
        # Number by record, not physical line: a quoted multi-line cell is still one spreadsheet row.
        records = list(enumerate(reader, start=1))
    except csv.Error as exc:
        raise IngestError(source.name, f"broken CSV quoting: {exc}", row=reader.line_num) from exc
    records = [(line, row) for line, row in records if any(cell.strip() for cell in row)]
    if not records:
        return Table(columns=[], rows=[])
    header_line, header = records[0]
    columns = _canonical_header(source, header)
    rows = []
    for line, row in records[1:]:
        if len(row) > len(columns):
            raise IngestError(
                source.name,
                f"{len(row)} fields but the header has {len(columns)} (unquoted delimiter in a text?)",
                row=line,
                column=None,
            )
        rows.append((line, {col: (row[i] if i < len(row) else "") for i, col in enumerate(columns)}))
    return Table(columns=columns, rows=rows)


def _parse_xlsx(source: Source) -> Table:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(io.BytesIO(source.data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise IngestError(source.name, f"not a readable XLSX workbook: {exc}") from exc
    sheet = workbook.worksheets[0]  # cards are on the first sheet; later sheets are notes
    records = [
        (number, [_cell_text(value) for value in values])
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1)
        if any(_cell_text(value).strip() for value in values)
    ]
    workbook.close()
    if not records:
        return Table(columns=[], rows=[])
    columns = _canonical_header(source, records[0][1])
    rows = [(n, {col: (cells[i] if i < len(cells) else "") for i, col in enumerate(columns)}) for n, cells in records[1:]]
    return Table(columns=columns, rows=rows)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _parse_jsonl(source: Source, text: str) -> Table:
    columns: list[str] = []
    rows = []
    # Not splitlines(): JSON strings may hold U+2028, U+0085 etc. unescaped; only newlines end a record.
    for number, line in enumerate(re.split(r"\r\n?|\n", text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestError(source.name, f"invalid JSON: {exc.msg}", row=number) from exc
        if not isinstance(obj, dict):
            raise IngestError(source.name, f"expected a JSON object, found {type(obj).__name__}", row=number)
        keys = _canonical_header(source, list(obj.keys()))
        record = {key: _cell_text(value) for key, value in zip(keys, obj.values())}
        columns.extend(key for key in keys if key not in columns)
        rows.append((number, record))
    return Table(columns=columns, rows=rows)


def _parse_plain(source: Source, text: str) -> Table:
    """One card per line, or per blank-line-separated block when the file has blank lines."""
    lines = text.splitlines()
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
    return Table(columns=["text"], rows=rows)


# --- records --------------------------------------------------------------------------------


def classify(table: Table) -> str:
    if "text" in table.columns:
        return "cards"
    if {"theme_id", "choice"} <= set(table.columns):
        return "votes"
    return "unknown"


def card_type_of(raw: str) -> str:
    return _CARD_TYPE_BY_ALIAS.get(raw.strip().lower(), "other" if raw.strip() else "other")


def junk_reason(text: str, params: IngestParams) -> str | None:
    stripped = text.strip()
    if not stripped:
        return "empty card"
    if sum(ch.isalpha() for ch in stripped) < params.min_letters:
        return "no words (punctuation or digits only)"
    phrase = re.sub(r"[\W_]+$", "", stripped.lower())
    if phrase in {p.lower() for p in params.junk_phrases}:
        return f"placeholder text ({phrase!r})"
    return None


def content_id(workshop_id: str, text: str) -> str:
    return f"{workshop_id}-{hashlib.sha1(text.strip().encode('utf-8')).hexdigest()[:10]}"


def ingest(sources: list[Source], params: IngestParams) -> IngestResult:
    """Parse every source into card and vote records; pure (no file system)."""
    cards: list[dict] = []
    votes: list[dict] = []
    inputs: list[dict] = []
    first_seen: dict[str, tuple[str, int]] = {}
    seen_content: dict[str, str] = {}
    redactions: Counter = Counter()
    for source in sources:
        digest = hashlib.sha256(source.data).hexdigest()
        if digest in seen_content:
            raise IngestError(source.name, f"same content as {seen_content[digest]} (a file given twice?)")
        seen_content[digest] = source.name
        table = parse(source)
        kind = classify(table)
        if kind == "unknown":
            raise IngestError(
                source.name,
                f"no text column: expected one of {list(COLUMN_ALIASES['text'])} "
                f"(or theme_id and choice for votes), found {table.columns}",
                row=1,
                column="text",
            )
        if kind == "votes":
            votes.extend(_vote_records(source, table))
        else:
            cards.extend(_card_records(source, table, params, first_seen, redactions))
        inputs.append({"path": source.name, "sha256": digest, "kind": kind, "rows": len(table.rows)})
    return IngestResult(
        cards=pd.DataFrame(cards, columns=CARDS.names),
        votes=pd.DataFrame(votes, columns=VOTES.names),
        inputs=inputs,
        redactions={kind: redactions[kind] for kind in PII_KINDS},
    )


def _card_records(source: Source, table: Table, params: IngestParams, first_seen: dict,
                  redactions: Counter) -> list[dict]:
    default_workshop = Path(source.name).stem
    known = {"card_id", "workshop_id", "group_id", "card_type", "text"}
    records = []
    for row_number, row in table.rows:
        # Personal data never leaves ingest: the text is redacted before anything is written,
        # and so is the text the content hash of a generated id is taken from.
        text, found = redact(row.get("text", ""))
        redactions.update(found)
        workshop_id = row.get("workshop_id", "").strip() or default_workshop
        card_id = row.get("card_id", "").strip()
        if not card_id:
            card_id = content_id(workshop_id, text)
            suffix = 2
            while card_id in first_seen:  # same text again, in this file or another of the workshop
                card_id = f"{content_id(workshop_id, text)}-{suffix}"
                suffix += 1
        if card_id in first_seen:
            other_file, other_row = first_seen[card_id]
            raise IngestError(
                source.name,
                f"duplicate card id {card_id!r} (first seen in {other_file}, row {other_row})",
                row=row_number,
                column="card_id",
            )
        first_seen[card_id] = (source.name, row_number)
        raw_type = row.get("card_type", "")
        extras = {key: value for key, value in row.items() if key not in known and value != ""}
        for key, value in extras.items():
            extras[key], found = redact(value)
            redactions.update(found)
        if card_type_of(raw_type) == "other" and raw_type.strip():
            extras["card_type_raw"] = raw_type
        reason = junk_reason(text, params)
        records.append(
            {
                "card_id": card_id,
                "workshop_id": workshop_id,
                "group_id": row.get("group_id", "").strip() or None,
                "card_type": card_type_of(raw_type),
                "text": text,
                "source_file": source.name,
                "source_row": row_number,
                "metadata": json.dumps(extras, ensure_ascii=False, sort_keys=True),
                "status": STATUS_REJECTED if reason else STATUS_OK,
                "reason": reason,
            }
        )
    return records


def _vote_records(source: Source, table: Table) -> list[dict]:
    records = []
    for row_number, row in table.rows:
        for column in ("workshop_id", "group_id", "theme_id", "choice"):
            if not row.get(column, "").strip():
                raise IngestError(source.name, f"empty {column} in a votes row", row=row_number, column=column)
        records.append(
            {
                "workshop_id": row["workshop_id"].strip(),
                "group_id": row["group_id"].strip(),
                "theme_id": row["theme_id"].strip(),
                "choice": row["choice"].strip().lower(),
                "source_file": source.name,
                "source_row": row_number,
            }
        )
    return records


# --- entry ------------------------------------------------------------------------------------


def discover(paths: list[Path]) -> list[Path]:
    """Input files under the given files and folders, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            candidates = [path]
        else:
            raise IngestError(str(path), "input path does not exist")
        for candidate in candidates:
            relative_parts = candidate.relative_to(path).parts if path.is_dir() else (candidate.name,)
            if any(part.startswith(".") for part in relative_parts):
                continue
            suffix = candidate.suffix.lower()
            if suffix in SKIPPED_SUFFIXES:
                continue
            if suffix not in CARD_SUFFIXES:
                raise IngestError(
                    display_name(candidate), f"unsupported file type {suffix!r}; expected one of {sorted(CARD_SUFFIXES)}"
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


def run(*, inputs: list[Path], out_dir: Path, params: IngestParams) -> IngestResult:
    files = discover(inputs)
    if not files:
        raise IngestError(", ".join(str(p) for p in inputs), "no input files found")
    result = ingest([Source(display_name(f), f.read_bytes()) for f in files], params)
    write_table(result.cards, CARDS, out_dir / "cards.parquet")
    write_table(result.votes, VOTES, out_dir / "votes.parquet")
    write_json({"inputs": result.inputs, "redactions": result.redactions}, out_dir / "manifest.json")
    return result
