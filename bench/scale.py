"""Per-stage wall time and peak memory at scale: cold (empty cache) and incremental (+1 workshop).

    python bench/scale.py --cards 1000 10000 [--added 100] [--keep DIR]
    python bench/scale.py --cards 10000 100000 --engine local ray --added 0 [--sample-size 5000]

For each size: generate a corpus (bench/make_corpus.py), run the stage commands of dvc.yaml
(each in its own process, as `dvc repro` runs them) with an empty embedding cache, then add one
workshop of `--added` cards and run them again on the previous outputs, cache and theme registry
(what `dvc repro` does after a new workshop file lands). Peak memory is each stage process's
maximum resident set (os.wait4). Speed is quoted as incremental/cold, measured in this one command.
Also prints the share of old cards that kept their theme id.

With `--engine local ray` each size runs once per engine (`engine.kind`; Ray on a cluster started
for each stage on this machine, with as many CPUs as the local engine uses cores) and a comparison
follows: Ray's overhead at equal cores, the peak memory of each Ray worker (as the workers report
it), the share of cards placed by the fitted model rather than fitted (above `engine.sample_size`),
and whether the two runs' insights.json are byte-identical.
"""
from __future__ import annotations

import argparse
import os
import re
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


def run_stage(command: list[str], workdir: Path, logs: list[str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak resident GiB) of one stage process; its log is appended to `logs`."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode("utf-8", "replace")
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr}")
    if logs is not None:
        logs.append(stderr)
    return wall, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def run_pipeline(corpus: Path, workdir: Path, what: str, logs: list[str] | None = None) -> dict[str, tuple[float, float]]:
    times = {}
    for name, command in stage_commands(corpus).items():
        times[name] = run_stage(command, workdir, logs)
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


def set_engine(workdir: Path, kind: str, sample_size: int | None) -> None:
    """Point the copied configs/params.yaml at engine `kind` (and `sample_size`, if given)."""
    path = workdir / "configs" / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params.setdefault("engine", {})["kind"] = kind
    if sample_size:
        params["engine"]["sample_size"] = sample_size
    path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


def bench_engine(n_cards: int, kind: str, root: Path, sample_size: int | None) -> dict:
    """One cold run on engine `kind`: stage times, Ray workers' peak memory, share placed, insights bytes."""
    corpus, workdir = root / "corpus", root / kind
    if not corpus.exists():
        make_corpus.write(make_corpus.generate(make_corpus.seed_texts(ROOT / DEMO_CORPUS), n_cards, 100, "ws-bench",
                                               seed=0), corpus)
    workdir.mkdir(parents=True)
    shutil.copytree(ROOT / "configs", workdir / "configs")
    set_engine(workdir, kind, sample_size)
    logs: list[str] = []
    times = run_pipeline(corpus, workdir, f"{kind} cold", logs)
    text = "\n".join(logs)
    peaks = [float(m) for m in re.findall(r"peak memory per worker ([\d.]+) GiB \(largest\)", text)]
    placed = re.search(r"fitted on a sample of (\d+) cards; (\d+) cards \((\d+)%\) placed", text)
    return {"times": times, "worker_peak": max(peaks, default=None),
            "placed": (int(placed[2]), int(placed[1])) if placed else (0, None),
            "insights": (workdir / "outputs/report/insights.json").read_bytes()}


def compare_engines(n_cards: int, kinds: list[str], root: Path, sample_size: int | None) -> None:
    runs = {kind: bench_engine(n_cards, kind, root, sample_size) for kind in kinds}
    print(f"\n{n_cards} cards cold, by engine ({os.cpu_count()} cores; Ray started with as many CPUs)")
    print(f"{'stage':<10}" + "".join(f" {kind + ' s':>9} {kind + ' GiB':>10}" for kind in kinds))
    for name in STAGES:
        print(f"{name:<10}" + "".join(f" {runs[k]['times'][name][0]:>9.1f} {runs[k]['times'][name][1]:>10.2f}"
                                      for k in kinds))
    totals = {k: sum(w for w, _ in runs[k]["times"].values()) for k in kinds}
    print(f"{'total':<10}" + "".join(f" {totals[k]:>9.1f} {max(m for _, m in runs[k]['times'].values()):>10.2f}"
                                     for k in kinds))
    for kind in kinds:
        placed, sample = runs[kind]["placed"]
        worker = runs[kind]["worker_peak"]
        print(f"{kind}: cards placed by the fitted model {placed} of {n_cards} ({placed / n_cards:.1%})"
              + (f", fitted on a sample of {sample}" if sample else ", all fitted (at most engine.sample_size)")
              + (f"; peak memory per Ray worker {worker:.2f} GiB" if worker is not None else ""))
    if "local" in runs:
        for kind in kinds:
            if kind != "local":
                print(f"{kind} overhead at equal cores: {totals[kind] / totals['local'] - 1:+.1%} of the local wall "
                      f"time; insights.json byte-identical to local: {runs[kind]['insights'] == runs['local']['insights']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--added", type=int, default=100, help="Cards in the added workshop (0: cold run only).")
    parser.add_argument("--keep", type=Path, help="Keep corpora and outputs under this folder.")
    parser.add_argument("--engine", nargs="+", choices=["local", "ray"],
                        help="Compare these engines (cold runs): Ray's overhead, worker memory, share placed.")
    parser.add_argument("--sample-size", type=int, help="engine.sample_size for the runs (default: the params').")
    args = parser.parse_args()
    for n_cards in args.cards:
        if args.keep:
            root = args.keep / f"{n_cards}"
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
        else:
            tmp = tempfile.TemporaryDirectory()
            root = Path(tmp.name)
        if args.engine:
            compare_engines(n_cards, args.engine, root, args.sample_size)
        else:
            bench_size(n_cards, args.added, root)
        if not args.keep:
            tmp.cleanup()


if __name__ == "__main__":
    main()
