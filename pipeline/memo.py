"""Per-text results kept between runs, so a rerun computes only texts it has not seen.

A memo lives in `<cache dir>/<namespace>/<version>/` and holds append-only Parquet segments of
(key, columns...). The version is a digest of everything the result depends on (params, the
source of the modules that compute it, package versions): change any of them and the old
segments are simply not read. Segments are written atomically, so a killed run loses nothing
that finished.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.records import remove_stale_temp_files_in, write_table

log = logging.getLogger(__name__)


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def version_digest(*, params: dict, modules: tuple, packages: tuple[str, ...]) -> str:
    """Digest of params, module sources and package versions: what a memoised result depends on."""
    parts = [json.dumps(params, sort_keys=True)]
    parts += [inspect.getsource(module) for module in modules]
    parts += [f"{name}=={version(name)}" for name in packages]
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:16]


class SegmentStore:
    """Append-only Parquet segments of (key, columns...) in one folder, each written atomically and
    named by the digest of its keys: the one store under the memos and the embedding cache."""

    def __init__(self, root: Path, schema: pa.Schema, kind: str = "memo", redo: str = "computed"):
        self.root = Path(root)
        self.schema = schema  # first column: `key`
        self._skipped = f"unreadable {kind} segment skipped, its texts are {redo} again"

    def table(self) -> pa.Table:
        """Every stored row, in segment order: a key stored by two segments appears twice. An
        unreadable segment (a full disk, say) is skipped with a warning: its rows are redone."""
        tables = [table for _, table in self.segments()]
        return pa.concat_tables(tables) if tables else self.schema.empty_table()

    def segments(self, columns: list[str] | None = None) -> Iterator[tuple[Path, pa.Table]]:
        """(path, its rows: only `columns`, default all) of each readable segment, in segment order, one at a
        time; an unreadable one is skipped with a warning (as in `table`)."""
        if self.root.is_dir():
            remove_stale_temp_files_in(self.root)  # segments a killed run was writing
        schema = self.schema if columns is None else pa.schema([self.schema.field(name) for name in columns])
        for segment in sorted(self.root.glob("segment-*.parquet")):
            try:
                table = pq.read_table(segment, schema=self.schema, columns=columns).cast(schema)
            except (pa.ArrowException, OSError, KeyError) as exc:
                log.warning("%s: %s (%s)", segment, self._skipped, " ".join(str(exc).split()))
                continue
            yield segment, table

    def add(self, frame: pd.DataFrame) -> None:
        """Store new rows (a frame with the schema's columns) as one segment."""
        if frame.empty:
            return
        name = hashlib.sha256("".join(frame["key"]).encode()).hexdigest()[:20]
        write_table(frame, self.schema, self.root / f"segment-{name}.parquet")


class TextMemo(SegmentStore):
    """Per-text results under one version: `<root>/<namespace>/<version>/segment-*.parquet`."""

    def __init__(self, root: Path, namespace: str, version_id: str, schema: pa.Schema):
        super().__init__(Path(root) / namespace / version_id, schema)

    def load(self) -> pd.DataFrame:
        """One row per key (its first), indexed by key."""
        return self.table().to_pandas().drop_duplicates("key").set_index("key")


def first_appearance(digest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows of 16-byte digests ((n, 2) uint64, one per text): (each row's id, numbered by first
    appearance; the row where each id first appears). Sorting 16 bytes per text instead of a dictionary
    of the texts keeps memory at a few bytes per text (two texts with one 128-bit digest: never seen)."""
    order = np.lexsort((digest[:, 1], digest[:, 0]))  # stable: equal digests in the order they appear
    ordered = digest[order]
    new = np.concatenate(([True], (ordered[1:] != ordered[:-1]).any(axis=1))) if len(digest) else np.zeros(0, bool)
    del ordered
    first_at = order[new]
    by_first = np.argsort(first_at, kind="stable")
    rank = np.empty(len(first_at), dtype=np.int64)
    rank[by_first] = np.arange(len(first_at))
    ids = np.empty(len(digest), dtype=np.int64)
    ids[order] = rank[np.cumsum(new) - 1]
    return ids, first_at[by_first]
