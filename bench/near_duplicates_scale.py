"""Wall time and peak memory of normalise's near-duplicate search alone, on a corpus's ingested cards.

    python bench/near_duplicates_scale.py --cards /tmp/scale-bench/1000000/ray/outputs/ingest/cards.parquet [--in-memory]

This runs the search as a cold normalise does over more than `near_duplicates.SPILL_MIN_TEXTS` cards:
`normalise.find_duplicates_spilled`, from scratch, spilled to a temporary folder beside the cards, here
in this process (the local engine); with `--in-memory`, `normalise.find_duplicates` (every signature,
vector and candidate pair in memory, as before). It reads the duplicate keys of the ingested texts (not
of `text_norm`: cleaning and æ/ø/å repair change a few texts, not the size of the search), and prints
its time, the duplicate groups and the process's peak resident memory (getrusage: exact), with a 1 s
sample of it over time.
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import threading
import time
from pathlib import Path

import psutil

from pipeline import near_duplicates
from pipeline.normalise import find_duplicates, find_duplicates_spilled
from pipeline.params import DEFAULTS
from pipeline.records import CARDS, STATUS_OK, read_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=Path, required=True, help="An ingest stage's cards.parquet.")
    parser.add_argument("--in-memory", action="store_true", help="The search with everything in memory (before).")
    args = parser.parse_args()
    process, samples, done = psutil.Process(), [], threading.Event()
    start = time.perf_counter()

    def sample() -> None:
        while not done.wait(1.0):
            samples.append((time.perf_counter() - start, process.memory_info().rss / 2**30))

    threading.Thread(target=sample, daemon=True).start()
    cards = read_table(args.cards, CARDS)
    keys = [near_duplicates.duplicate_key(text) for text in cards.loc[cards["status"] == STATUS_OK, "text"]]
    loaded = time.perf_counter() - start
    print(f"{len(keys)} duplicate keys ({len(set(keys))} distinct) read in {loaded:.0f} s, "
          f"{process.memory_info().rss / 2**30:.2f} GiB", flush=True)
    before = process.memory_info().rss / 2**30
    step = time.perf_counter()
    threshold = DEFAULTS.normalise.near_duplicate_threshold
    if args.in_memory:
        found, comparison = find_duplicates(keys, threshold)
        largest, how = comparison.largest_bucket, "in memory (find_duplicates)"
    else:
        with tempfile.TemporaryDirectory(prefix="near-duplicates-", dir=args.cards.parent) as folder:
            found, largest = find_duplicates_spilled(keys, threshold, Path(folder))
        how = "spilled (find_duplicates_spilled)"
    search = time.perf_counter() - step
    done.set()
    groups = len({hit[0] for hit in found if hit is not None})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"whole search, from scratch, {how}: {search:.0f} s; {groups} duplicate groups; "
          f"largest bucket {largest}; process peak {peak:.2f} GiB ({peak - before:.2f} GiB above "
          f"the cards and keys read)")
    print("memory over time: " + ", ".join(f"{t:.0f}s {m:.2f}" for t, m in samples[::30]))


if __name__ == "__main__":
    main()
