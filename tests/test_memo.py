"""Tests for pipeline.memo: per-text results kept between runs in append-only segments."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pytest

from pipeline import memo, records
from pipeline.memo import SegmentStore, TextMemo, text_key, version_digest

SCHEMA = pa.schema([("key", pa.string()), ("value", pa.int64())])


def rows(*pairs) -> pd.DataFrame:
    return pd.DataFrame({"key": [k for k, _ in pairs], "value": [v for _, v in pairs]})


def test_text_key_is_the_sha256_of_the_text():
    import hashlib

    assert text_key("ø") == hashlib.sha256("ø".encode("utf-8")).hexdigest()
    assert len(text_key("a")) == 64 and text_key("a") != text_key("A")


def test_version_digest_changes_with_params_code_and_packages():
    base = version_digest(params={"x": 1}, modules=(records,), packages=("pyarrow",))
    assert base == version_digest(params={"x": 1}, modules=(records,), packages=("pyarrow",))
    assert base != version_digest(params={"x": 2}, modules=(records,), packages=("pyarrow",))
    assert base != version_digest(params={"x": 1}, modules=(memo,), packages=("pyarrow",))
    assert base != version_digest(params={"x": 1}, modules=(records,), packages=("pyarrow", "pandas"))


def test_a_memo_returns_what_was_added_one_row_per_key(tmp_path):
    store = TextMemo(tmp_path, "ns", "v1", SCHEMA)
    assert store.load().empty
    store.add(rows(("a", 1), ("b", 2)))
    store.add(rows(("b", 20), ("c", 3)))
    store.add(rows())  # nothing new: no segment
    assert len(list(store.root.glob("segment-*.parquet"))) == 2
    loaded = store.load()
    assert sorted(loaded.index) == ["a", "b", "c"] and loaded.loc["a", "value"] == 1 and loaded.loc["c", "value"] == 3
    assert len(store.table()) == 4  # every stored row, in segment order


def test_another_version_does_not_see_the_rows(tmp_path):
    TextMemo(tmp_path, "ns", "v1", SCHEMA).add(rows(("a", 1)))
    assert TextMemo(tmp_path, "ns", "v2", SCHEMA).load().empty
    assert TextMemo(tmp_path, "other", "v1", SCHEMA).load().empty


def test_an_unreadable_segment_is_skipped_with_a_warning_naming_it(tmp_path, caplog):
    store = SegmentStore(tmp_path / "store", SCHEMA, kind="cache", redo="embedded")
    store.add(rows(("a", 1)))
    (store.root / "segment-zzz.parquet").write_bytes(b"PAR1 cut short")
    assert store.table().column("key").to_pylist() == ["a"]
    assert "segment-zzz.parquet: unreadable cache segment skipped, its texts are embedded again" in caplog.text


def test_temp_files_of_a_killed_writer_are_removed_on_reading(tmp_path):
    store = SegmentStore(tmp_path, SCHEMA)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = tmp_path / f".segment-x.parquet.{int(dead.stdout)}.ab.tmp"
    leftover.write_bytes(b"half")
    store.table()
    assert not leftover.exists()


@pytest.mark.parametrize("frame", [rows(("a", 1))])
def test_segments_are_named_by_their_keys_so_the_same_rows_make_the_same_file(tmp_path, frame):
    first, second = SegmentStore(tmp_path / "1", SCHEMA), SegmentStore(tmp_path / "2", SCHEMA)
    first.add(frame)
    second.add(frame)
    assert [p.name for p in first.root.iterdir()] == [p.name for p in second.root.iterdir()]


def test_items_at_takes_the_positions_across_batches_in_lists_of_the_size():
    import numpy as np

    from pipeline.memo import items_at

    batches = [["a", "b", "c"], [], ["d", "e"], ["f"]]
    assert list(items_at(iter(batches), np.array([0, 2, 3, 5]), 3)) == [["a", "c", "d"], ["f"]]
    assert list(items_at(iter(batches), np.array([], dtype=int), 2)) == []
    assert list(items_at(iter(batches), np.arange(6), 2)) == [["a", "b"], ["c", "d"], ["e", "f"]]
