"""Per-stage wall time and peak memory at scale: cold (empty cache) and incremental (+1 workshop).

    python bench/scale.py --cards 1000 10000 [--added 100] [--keep DIR]

For each size: generate a corpus (bench/make_corpus.py), run the stage commands of dvc.yaml
(each in its own process, as `dvc repro` runs them) with an empty embedding cache, then add one
workshop of `--added` cards and run them again on the previous outputs, cache and theme registry
(what `dvc repro` does after a new workshop file lands). Peak memory is each stage process's
maximum resident set (os.wait4). Speed is quoted as incremental/cold, measured in this one command.
Also prints the share of old cards that kept their theme id.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import make_corpus  # noqa: E402

STAGES = ("ingest", "normalise", "embed", "cluster", "map", "report")
DEMO_CORPUS = "corpora/demo"


def stage_commands(corpus: Path) -> dict[str, list[str]]:
    """The commands of dvc.yaml, reading `corpus` instead of the demo corpus."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    return {name: shlex.split(stages[name]["cmd"].replace(DEMO_CORPUS, str(corpus))) for name in STAGES}


def run_stage(command: list[str], workdir: Path) -> tuple[float, float]:
    """(wall seconds, peak resident GiB) of one stage process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode("utf-8", "replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    return wall, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def run_pipeline(corpus: Path, workdir: Path, what: str) -> dict[str, tuple[float, float]]:
    times = {}
    for name, command in stage_commands(corpus).items():
        times[name] = run_stage(command, workdir)
        print(f"  {what} {name}: {times[name][0]:.1f} s, {times[name][1]:.2f} GiB", flush=True)  # progress
    return times


def card_themes(workdir: Path) -> dict[str, str]:
    cards = pd.read_parquet(workdir / "outputs/map/cards.parquet", columns=["card_id", "status", "theme_id"])
    assigned = cards[cards["status"] == "assigned"]
    return dict(zip(assigned["card_id"], assigned["theme_id"]))


def bench_size(n_cards: int, added: int, root: Path) -> None:
    corpus, workdir = root / "corpus", root / "work"
    seeds = make_corpus.seed_texts(ROOT / DEMO_CORPUS)
    make_corpus.write(make_corpus.generate(seeds, n_cards, 100, "ws-bench", seed=0), corpus)
    workdir.mkdir(parents=True)
    shutil.copytree(ROOT / "configs", workdir / "configs")
    chars = pd.concat([pd.read_csv(path) for path in sorted(corpus.glob("*.csv"))])["text"].str.len().mean()
    print(f"{n_cards} cards, {chars:.0f} characters per card on average", flush=True)
    cold = run_pipeline(corpus, workdir, "cold")
    total_cold = sum(w for w, _ in cold.values())
    dominant = max(cold, key=lambda name: cold[name][0])
    if not added:
        print(f"\n{n_cards} cards cold: {total_cold:.1f} s, peak {max(m for _, m in cold.values()):.2f} GiB; "
              f"dominant stage {dominant} ({cold[dominant][0] / total_cold:.0%} of the wall time)")
        return
    before = card_themes(workdir)
    make_corpus.write(make_corpus.generate(seeds, added, added, "ws-added", seed=1), corpus)
    incremental = run_pipeline(corpus, workdir, "incremental")
    after = card_themes(workdir)
    kept = sum(after.get(card) == theme for card, theme in before.items()) / max(len(before), 1)

    print(f"\n{n_cards} cards cold, then +{added} cards (one workshop) incremental")
    print(f"{'stage':<10} {'cold s':>9} {'cold GiB':>9} {'incr s':>9} {'incr GiB':>9} {'incr/cold':>10}")
    for name in STAGES:
        (cw, cm), (iw, im) = cold[name], incremental[name]
        print(f"{name:<10} {cw:>9.1f} {cm:>9.2f} {iw:>9.1f} {im:>9.2f} {iw / cw:>10.2f}")
    total_incr = sum(w for w, _ in incremental.values())
    print(f"{'total':<10} {total_cold:>9.1f} {max(m for _, m in cold.values()):>9.2f} {total_incr:>9.1f} "
          f"{max(m for _, m in incremental.values()):>9.2f} {total_incr / total_cold:>10.2f}")
    print(f"dominant stage (cold): {dominant} ({cold[dominant][0] / total_cold:.0%} of the wall time)")
    print(f"old cards that kept their theme id: {kept:.3f} ({len(before)} assigned before)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--added", type=int, default=100, help="Cards in the added workshop (0: cold run only).")
    parser.add_argument("--keep", type=Path, help="Keep corpora and outputs under this folder.")
    args = parser.parse_args()
    for n_cards in args.cards:
        if args.keep:
            root = args.keep / f"{n_cards}"
            shutil.rmtree(root, ignore_errors=True)
            bench_size(n_cards, args.added, root)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                bench_size(n_cards, args.added, Path(tmp))


if __name__ == "__main__":
    main()
