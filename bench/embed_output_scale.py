"""Memory of the embed stage over a whole corpus with every vector already in the cache (nothing to embed).

    python bench/embed_output_scale.py --cards /tmp/scale-bench/1000000/ray/outputs/normalise/cards.parquet \\
        --work /tmp/scale-bench/1000000/embed-output

Embedding 1M cards takes about 13 hours on this machine, so a bounded embed run (bench/scale.py
--embed-minutes) never reaches the part of the stage that gathers every card's vector and writes
embeddings.parquet. This fills an embedding cache under `--work` with stand-in vectors (random unit
vectors, 384 float32 each, one cache segment per `embed.segment_size` texts, under the keys the default
backend gives the cards' texts) and runs the stage command of dvc.yaml on it: it finds every text in the
cache, so what is measured is reading the cards, looking the cache up and writing all the vectors.
Memory is sampled every second (driver; there are no Ray workers when nothing is embedded).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import scale

from pipeline.embed import EmbeddingCache, cache_key, model_id_of
from pipeline.params import DEFAULTS
from pipeline.records import NORMALISED, STATUS_OK, read_batches


def fill_cache(cards: Path, cache_dir: Path, dim: int = 384) -> int:
    """Stand-in vectors for every distinct usable text of `cards`, in segments of embed.segment_size."""
    model_id = model_id_of(DEFAULTS.embed.backend)
    cache = EmbeddingCache(cache_dir, model_id)
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    pending: list[str] = []
    total = 0
    for frame in read_batches(cards, NORMALISED, ["status", "text_norm"]):
        for text in frame.loc[frame["status"] == STATUS_OK, "text_norm"]:
            key = cache_key(model_id, text)
            if key not in seen:
                seen.add(key)
                pending.append(key)
        while len(pending) >= DEFAULTS.embed.segment_size:
            part, pending = pending[:DEFAULTS.embed.segment_size], pending[DEFAULTS.embed.segment_size:]
            vectors = rng.standard_normal((len(part), dim)).astype(np.float32)
            cache.add(part, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
            total += len(part)
    if pending:
        vectors = rng.standard_normal((len(pending), dim)).astype(np.float32)
        cache.add(pending, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        total += len(pending)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=Path, required=True, help="A normalise stage's cards.parquet.")
    parser.add_argument("--work", type=Path, required=True, help="A folder for the cache and the output (emptied).")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    (args.work / "configs").mkdir(parents=True)
    shutil.copytree(ROOT / "configs", args.work / "configs", dirs_exist_ok=True)
    start = time.perf_counter()
    filled = fill_cache(args.cards.resolve(), args.work / ".cache")
    print(f"cache filled with {filled} stand-in vectors in {time.perf_counter() - start:.0f} s", flush=True)
    command = scale.stage_commands(Path("unused"))["embed"]
    command = [str(args.cards.resolve()) if part == "outputs/normalise/cards.parquet" else part for part in command]
    result = scale.run_sampled(command, args.work)
    rows = scale.pq.read_metadata(args.work / "outputs" / "embed" / "embeddings.parquet").num_rows
    print(f"embed, every vector from the cache: {result['wall']:.1f} s, {rows} cards written; driver peak "
          f"{result['driver']:.2f} GiB, tree {result['total']:.2f} GiB")


if __name__ == "__main__":
    main()
