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


def key_digests(keys: list[str]) -> np.ndarray:
    """The first 16 bytes of each key (a sha256 in hex: `text_key`, the embedding cache's keys) as two
    uint64s: what a store is searched by (`SegmentStore.locate`), at 16 bytes per key."""
    return np.frombuffer(bytes.fromhex("".join(key[:32] for key in keys)), dtype=np.uint64).reshape(-1, 2)


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

    def add(self, frame: pd.DataFrame) -> Path | None:
        """Store new rows (a frame with the schema's columns) as one segment; returns its path (None: no rows)."""
        if frame.empty:
            return None
        name = hashlib.sha256("".join(frame["key"]).encode()).hexdigest()[:20]
        path = self.root / f"segment-{name}.parquet"
        write_table(frame, self.schema, path)
        return path

    def index(self) -> StoreIndex:
        """Where every stored key is, read a segment at a time (only the keys): 24 bytes per stored key."""
        paths, found, segments = [], [], []
        for path, table in self.segments(columns=["key"]):
            found.append(key_digests(table["key"].to_pylist()))
            segments.append(np.full(len(table), len(paths), dtype=np.int32))
            paths.append(path)
        return StoreIndex(self.schema, paths, np.concatenate(found) if found else np.zeros((0, 2), dtype=np.uint64),
                          np.concatenate(segments) if segments else np.zeros(0, dtype=np.int32),
                          np.concatenate([np.arange(len(s), dtype=np.int32) for s in segments]) if segments
                          else np.zeros(0, dtype=np.int32))


class StoreIndex:
    """The keys of a `SegmentStore` as 16-byte digests (`key_digests`), sorted, with their segment and row."""

    def __init__(self, schema: pa.Schema, paths: list[Path], digest: np.ndarray, segment: np.ndarray, row: np.ndarray):
        order = np.lexsort((digest[:, 1], digest[:, 0]))
        self.schema, self.paths = schema, paths
        self.digest, self.segment, self.row = digest[order], segment[order], row[order]

    def extend(self, path: Path, keys: list[str]) -> None:
        """Add the keys of a segment just stored at `path` (`SegmentStore.add`)."""
        digest = np.concatenate([self.digest, key_digests(keys)])
        segment = np.concatenate([self.segment, np.full(len(keys), len(self.paths), dtype=np.int32)])
        row = np.concatenate([self.row, np.arange(len(keys), dtype=np.int32)])
        self.paths.append(path)
        order = np.lexsort((digest[:, 1], digest[:, 0]))
        self.digest, self.segment, self.row = digest[order], segment[order], row[order]

    def locate(self, digest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(segment number, -1 when not stored; row in it) of the keys with these digests."""
        segment, row = np.full(len(digest), -1, dtype=np.int64), np.zeros(len(digest), dtype=np.int64)
        if not len(self.digest) or not len(digest):
            return segment, row
        # The first 8 bytes find a run of stored keys (one key, but for a 64-bit clash), the last 8 the key in it.
        low = np.searchsorted(self.digest[:, 0], digest[:, 0], "left")
        high = np.searchsorted(self.digest[:, 0], digest[:, 0], "right")
        at = low.copy()
        for k in np.flatnonzero(high - low > 1).tolist():
            at[k] = low[k] + int(np.searchsorted(self.digest[low[k]:high[k], 1], digest[k, 1]))
        at = np.minimum(at, len(self.digest) - 1)
        hit = (at < high) & (self.digest[at, 0] == digest[:, 0]) & (self.digest[at, 1] == digest[:, 1])
        segment[hit], row[hit] = self.segment[at[hit]], self.row[at[hit]]
        return segment, row

    def rows(self, keys: list[str]) -> pd.DataFrame:
        """The stored rows of those of `keys` that are stored, one per key, indexed by key (as `TextMemo.load`
        gives them): each segment holding some of them is read once, not the whole store."""
        segment, row = self.locate(key_digests(keys))
        found = [pq.read_table(self.paths[k], schema=self.schema).take(pa.array(np.unique(row[segment == k])))
                 for k in np.unique(segment[segment >= 0]).tolist()]
        table = pa.concat_tables(found) if found else self.schema.empty_table()
        return table.to_pandas().drop_duplicates("key").set_index("key")


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


def items_at(batches, positions: np.ndarray, size: int) -> Iterator[list]:
    """The items at `positions` (ascending, counted over the batches in order) in lists of `size`, taking one
    batch (a list) at a time: what a stage streams to its workers without holding every text."""
    chunk: list = []
    seen = at = 0
    for batch in batches:
        end = int(np.searchsorted(positions, seen + len(batch)))
        for position in positions[at:end].tolist():
            chunk.append(batch[position - seen])
            if len(chunk) == size:
                yield chunk
                chunk = []
        seen, at = seen + len(batch), end
    if chunk:
        yield chunk
