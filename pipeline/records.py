"""Parquet schemas exchanged between stages, and atomic read/write helpers."""
from __future__ import annotations

import csv
import io
import itertools
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import InnsiktError

STATUS_OK = "ok"
STATUS_REJECTED = "rejected"
STATUS_ASSIGNED = "assigned"
STATUS_OUTLIER = "outlier"

CARD_TYPES = ("wish", "postit", "oracle", "reflection", "other")

# ingest -> normalise
CARDS = pa.schema(
    [
        ("card_id", pa.string()),
        ("workshop_id", pa.string()),
        ("group_id", pa.string()),
        ("card_type", pa.string()),
        ("text", pa.string()),  # verbatim as transcribed
        ("source_file", pa.string()),
        ("source_row", pa.int64()),  # spreadsheet-style row: header is row 1
        ("metadata", pa.string()),  # JSON object of extra columns
        ("status", pa.string()),  # ok | rejected
        ("reason", pa.string()),
    ]
)

VOTES = pa.schema(
    [
        ("workshop_id", pa.string()),
        ("group_id", pa.string()),
        ("theme_id", pa.string()),
        ("choice", pa.string()),
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
    ]
)

# normalise -> embed, cluster, map, report
NORMALISED = pa.schema(
    list(CARDS)
    + [
        ("text_norm", pa.string()),  # repaired text: embedded, labelled and quoted
        ("language", pa.string()),  # nb | nn | en | ... | und
        ("language_confidence", pa.float64()),
        ("duplicate_of", pa.string()),  # first card of its duplicate group
        ("duplicate_kind", pa.string()),  # exact | near
    ]
)

# embed -> cluster, map
EMBEDDINGS = pa.schema([("card_id", pa.string()), ("embedding", pa.list_(pa.float32()))])

# cluster -> map
CLUSTER_ASSIGNMENTS = pa.schema(
    [("card_id", pa.string()), ("cluster", pa.int64()), ("similarity", pa.float64())]
)
CLUSTER_TOPICS = pa.schema(
    [
        ("cluster", pa.int64()),
        ("theme_id", pa.string()),
        ("label", pa.string()),
        ("keywords", pa.list_(pa.string())),
        ("size", pa.int64()),
    ]
)

# cluster -> report: what changed since the previous run's theme registry
THEME_CHANGES = pa.schema(
    [
        ("theme_id", pa.string()),
        ("label", pa.string()),
        ("change", pa.string()),  # new | grown | shrunk | unchanged | merged | retired
        ("size_before", pa.int64()),
        ("size_after", pa.int64()),
        ("merged_into", pa.string()),  # merged: the theme that now holds most of its cards
        ("split_from", pa.list_(pa.string())),  # new: previous themes that held a third of its cards or more
    ]
)

# map -> report
THEMES = pa.schema(
    [
        ("theme_id", pa.string()),
        ("cluster", pa.int64()),
        ("label", pa.string()),
        ("keywords", pa.list_(pa.string())),
        ("category_id", pa.string()),
        ("taxonomy_theme_id", pa.string()),  # null when emergent
        ("emergent", pa.bool_()),
        ("confidence", pa.float64()),
        ("size", pa.int64()),
        ("parent_id", pa.string()),  # a sub-theme's taxonomy theme; null for top-level themes
    ]
)
CARD_MAP = pa.schema(
    [
        ("card_id", pa.string()),
        ("status", pa.string()),  # assigned | outlier | rejected
        ("theme_id", pa.string()),
        ("category_id", pa.string()),
        ("taxonomy_theme_id", pa.string()),
        ("confidence", pa.float64()),
        ("centrality", pa.float64()),  # similarity to the theme centroid, for quote choice
        ("subtheme_id", pa.string()),  # the sub-theme within `theme_id`, if any
    ]
)
# map -> report: what each rule of configs/curation.yaml did (pipeline/curation.py)
CURATION = pa.schema(
    [
        ("line", pa.int64()),  # the rule's line in the curation file
        ("rule", pa.string()),  # rename | merge | split | move | pin | emergent | exclude
        ("target", pa.string()),  # the theme or card id the rule is about
        ("detail", pa.string()),
        ("cards", pa.int64()),  # cards the rule placed, moved or excluded
    ]
)


# Stage outputs with one row per card: a card id twice means a stage lost count (conservation).
# normalise -> report, beside cards.parquet: what normalise's safety net redacted, per kind
REDACTIONS_FILE = "redactions.json"

ONE_ROW_PER_CARD = (CARDS, NORMALISED, EMBEDDINGS, CLUSTER_ASSIGNMENTS, CARD_MAP)

_UMASK = os.umask(0)
os.umask(_UMASK)


class SchemaError(InnsiktError):
    """A stage input that does not have the columns its schema requires."""


def atomic_path(target: Path):
    """Temp file in the target's folder: a rename then publishes it in one step.

    The name holds the writer's pid (`.<name>.<pid>.<random>.tmp`), so a temp file left by a
    killed writer is recognised and removed by the next write to the same target.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; published files get the usual mode
    return Path(tmp)


def remove_stale_temp_files(target: Path) -> int:
    """Delete temp files of `target` whose writer process is gone (killed mid-write); returns how many."""
    removed = 0
    prefix = f".{target.name}."
    for tmp in target.parent.glob(f".{glob_escape(target.name)}.*.tmp"):
        pid = tmp.name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def remove_stale_temp_files_in(folder: Path) -> int:
    """Delete every temp file in `folder` (any target) whose writer process is gone."""
    removed = 0
    for tmp in Path(folder).glob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .<target>.<pid>.<random>.tmp
        if len(parts) == 4 and parts[1].isdigit() and not _alive(int(parts[1])):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its file alone
    return True


def publish(tmp: Path, target: Path) -> None:
    """Flush `tmp` to disk, then rename it over `target`: readers see the old file or the new one, whole."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, target)


def write_table(frame: pd.DataFrame, schema: pa.Schema, path: str | Path) -> None:
    path = Path(path)
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise SchemaError(f"{path}: frame lacks columns {missing}")
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    tmp = atomic_path(path)
    try:
        pq.write_table(table, tmp)
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_table(path: str | Path, schema: pa.Schema, columns: list[str] | None = None) -> pd.DataFrame:
    """The table at `path` as `schema` says (only `columns` of it, default all: what is not read costs no memory)."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: stage input not found (run the upstream stage first)")
    try:
        names = pq.read_schema(path).names
        missing = [name for name in schema.names if name not in names]
        if missing:
            raise SchemaError(f"{path}: columns {missing} missing; expected {schema.names}")
        columns = columns or schema.names
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise SchemaError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())}); "
                          f"rerun the stage that writes it") from exc
    frame = table.select(columns).cast(pa.schema([schema.field(name) for name in columns])).to_pandas()
    if "card_id" in columns and any(schema is keyed for keyed in ONE_ROW_PER_CARD):
        doubled = frame["card_id"][frame["card_id"].duplicated()]
        if not doubled.empty:
            first = doubled.iloc[0]
            raise SchemaError(f"{path}: duplicate card id {first!r} ({int((frame['card_id'] == first).sum())} rows"
                              f"{f', and {doubled.nunique() - 1} more ids' if doubled.nunique() > 1 else ''}); "
                              f"expected one row per card: rerun the stage that writes it")
    return frame


BATCH_ROWS = 1 << 14  # rows per batch of `read_batches` and per row group of `TableWriter`: not an engine param,
# so that a file's bytes do not depend on where the stage ran


def read_batches(path: str | Path, schema: pa.Schema, columns: list[str] | None = None,
                 rows: int | None = None) -> Iterator[pd.DataFrame]:
    """`read_table(path, schema)` (the same checks; only `columns`, default all) as frames of `rows` rows,
    read a Parquet batch at a time (`rows`: BATCH_ROWS): memory bounded by the batch, not the file."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: stage input not found (run the upstream stage first)")
    columns = columns or schema.names
    wanted = pa.schema([schema.field(name) for name in columns])
    try:
        source = pq.ParquetFile(path)
        missing = [name for name in schema.names if name not in source.schema_arrow.names]
        if missing:
            raise SchemaError(f"{path}: columns {missing} missing; expected {schema.names}")
        if any(schema is keyed for keyed in ONE_ROW_PER_CARD):
            _check_one_row_per_card(source, path)
        for batch in source.iter_batches(batch_size=rows or BATCH_ROWS, columns=columns):
            yield pa.Table.from_batches([batch]).cast(wanted).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise SchemaError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())}); "
                          f"rerun the stage that writes it") from exc


def _check_one_row_per_card(source: pq.ParquetFile, path: Path) -> None:
    """`read_table`'s one-row-per-card check, on 8-byte digests of the ids (8 bytes per card); the ids
    themselves are read only when two digests are equal."""
    import hashlib

    import numpy as np

    digests = [np.frombuffer(b"".join(hashlib.blake2b(card.encode("utf-8"), digest_size=8).digest()
                                      for card in batch.column(0).to_pylist()), dtype=np.uint64)
               for batch in source.iter_batches(batch_size=BATCH_ROWS, columns=["card_id"])]
    digest = np.sort(np.concatenate(digests)) if digests else np.zeros(0, dtype=np.uint64)
    if not (digest[1:] == digest[:-1]).any():
        return
    ids = pq.read_table(path, columns=["card_id"]).column(0).to_pandas()
    doubled = ids[ids.duplicated()]
    if not doubled.empty:
        first = doubled.iloc[0]
        raise SchemaError(f"{path}: duplicate card id {first!r} ({int((ids == first).sum())} rows"
                          f"{f', and {doubled.nunique() - 1} more ids' if doubled.nunique() > 1 else ''}); "
                          f"expected one row per card: rerun the stage that writes it")


class TableWriter:
    """`write_table` a frame at a time: each `write(frame)` adds row groups of at most BATCH_ROWS rows, and
    the file is published whole when the `with` block ends without an error (else removed). Frames of
    at most BATCH_ROWS rows each, written in order, give the bytes `write_table` gives for all of them
    when there are at most BATCH_ROWS rows in all."""

    def __init__(self, path: str | Path, schema: pa.Schema):
        self.path, self.schema = Path(path), schema
        self.rows = 0

    def __enter__(self) -> TableWriter:
        self.tmp = atomic_path(self.path)
        self.writer = None
        return self

    def write(self, frame: pd.DataFrame) -> None:
        missing = [name for name in self.schema.names if name not in frame.columns]
        if missing:
            raise SchemaError(f"{self.path}: frame lacks columns {missing}")
        table = pa.Table.from_pandas(frame[self.schema.names], schema=self.schema, preserve_index=False)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.tmp, table.schema)
        self.writer.write_table(table, row_group_size=BATCH_ROWS)
        self.rows += len(frame)

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                if self.writer is None:  # no rows: what write_table writes for an empty frame
                    self.write(pd.DataFrame({name: pd.Series([], dtype=object) for name in self.schema.names}))
                self.writer.close()
                publish(self.tmp, self.path)
            elif self.writer is not None:
                self.writer.close()
        finally:
            self.tmp.unlink(missing_ok=True)


def write_bytes(data: bytes, path: str | Path) -> None:
    """Atomic, flushed to disk, like every other output: a killed run never leaves half a file (a PNG, say)."""
    path = Path(path)
    tmp = atomic_path(path)
    try:
        tmp.write_bytes(data)
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(text: str, path: str | Path, encoding: str = "utf-8") -> None:
    write_chunks([text], path, encoding)


def write_chunks(chunks: Iterable[str], path: str | Path, encoding: str = "utf-8") -> None:
    """`write_text("".join(chunks), path)` without the joined text in memory: a large report is written as it
    is rendered (insights.json and report.html of 100k cards are 70 and 90 MB of text, and a copy when encoded)."""
    path = Path(path)
    tmp = atomic_path(path)
    try:
        with open(tmp, "w", encoding=encoding) as handle:
            pending: list[str] = []
            size = 0
            for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= 1 << 20:  # one write per MB: the JSON encoder yields millions of tiny pieces
                    handle.write("".join(pending))
                    pending, size = [], 0
            handle.write("".join(pending))
        publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# A spreadsheet runs a cell that starts with one of these as a formula (OWASP "CSV injection").
SPREADSHEET_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, prefixed with `'` (shown, never run).

    Numbers stay numbers (-3 is a number to the spreadsheet too); only text is neutralised.
    """
    if isinstance(value, str) and value.startswith(SPREADSHEET_TRIGGERS):
        return "'" + value
    return value


def write_csv(rows: list[list[Any]], path: str | Path) -> None:
    """Every CSV the project writes: text cells neutralised, UTF-8 with a BOM (else Excel misreads æ/ø/å)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([[spreadsheet_safe(cell) for cell in row] for row in rows])
    write_text(buffer.getvalue(), path, encoding="utf-8-sig")


def write_json(obj: Any, path: str | Path) -> None:
    """`json.dumps(obj, ensure_ascii=False, indent=2) + "\\n"`, written as it is encoded (the same text)."""
    encoder = json.JSONEncoder(ensure_ascii=False, indent=2, sort_keys=False)
    write_chunks(itertools.chain(encoder.iterencode(obj), ["\n"]), path)


def embedding_matrix(frame: pd.DataFrame):
    """(n, d) float32 matrix from the `embedding` list column. When the rows are the rows of one float32
    matrix, in order (as `read_embeddings` gives them), that matrix itself, read-only: no second copy
    (at 100k cards each copy is 150 MB)."""
    import numpy as np

    if frame.empty:
        return np.zeros((0, 0), dtype=np.float32)
    rows = frame["embedding"].tolist()
    base = getattr(rows[0], "base", None)
    if (isinstance(base, np.ndarray) and base.dtype == np.float32 and base.ndim == 2 and len(base) == len(rows)
            and base.flags.c_contiguous and all(isinstance(row, np.ndarray) and row.base is base for row in rows)):
        start, stride = base.__array_interface__["data"][0], base.strides[0]
        if all(row.__array_interface__["data"][0] == start + i * stride and row.shape == base.shape[1:]
               for i, row in enumerate(rows)):
            shared = base.view()
            shared.flags.writeable = False
            return shared
    return np.stack([np.asarray(v, dtype=np.float32) for v in rows])


EMBEDDING_READ_ROWS = 1 << 12


def read_embeddings(path: str | Path) -> pd.DataFrame:
    """`read_table(path, EMBEDDINGS)` (the same checks), read a Parquet batch at a time into one float32
    matrix: the `embedding` column holds its rows (views), so `embedding_matrix` gives it back without a
    copy. Reading the whole table and converting it held the vectors three times (0.5 GB at 100k cards)."""
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"{path}: stage input not found (run the upstream stage first)")
    ids: list[str] = []
    matrix = None
    try:
        # Streamed in small batches: Arrow's allocator keeps what a batch used, about 4 times its size.
        source = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        missing = [name for name in EMBEDDINGS.names if name not in source.schema_arrow.names]
        if missing:
            raise SchemaError(f"{path}: columns {missing} missing; expected {EMBEDDINGS.names}")
        _check_one_row_per_card(source, path)
        for batch in source.iter_batches(batch_size=EMBEDDING_READ_ROWS, columns=EMBEDDINGS.names):
            table = pa.Table.from_batches([batch]).cast(EMBEDDINGS)
            column = table.column("embedding").combine_chunks()
            at = len(ids)
            lengths = np.diff(column.offsets.to_numpy())
            if column.null_count or column.values.null_count:
                raise SchemaError(f"{path}: a null vector or number among rows {at}..{at + len(column) - 1}; "
                                  f"rerun the embed stage")
            width = matrix.shape[1] if matrix is not None else int(lengths[0])
            if (lengths != width).any():
                row = int(np.flatnonzero(lengths != width)[0])
                raise SchemaError(f"{path}: row {at + row} has a vector of {int(lengths[row])} numbers, row 0 of "
                                  f"{width}; rerun the embed stage")
            if matrix is None:
                matrix = np.empty((source.metadata.num_rows, width), dtype=np.float32)
            first = int(column.offsets[0].as_py())
            values = column.values.slice(first, len(column) * width).to_numpy(zero_copy_only=False)
            matrix[at:at + len(column)] = values.reshape(len(column), width)
            ids.extend(table.column("card_id").to_pylist())
    except (pa.ArrowException, OSError) as exc:
        raise SchemaError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())}); "
                          f"rerun the stage that writes it") from exc
    if matrix is None:
        return EMBEDDINGS.empty_table().to_pandas()
    return pd.DataFrame({"card_id": ids, "embedding": list(matrix[:len(ids)])})
