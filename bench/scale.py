"""Per-stage wall time and peak memory at scale: cold (empty cache) and incremental (+1 workshop).

    python bench/scale.py --cards 1000 10000 [--added 100] [--keep DIR]
    python bench/scale.py --cards 10000 100000 --engine local ray --added 0 [--sample-size 5000] [--backend e5-small-onnx]
    python bench/scale.py --cards 100000 1000000 --engine ray --stages ingest normalise embed --embed-minutes 15
    python bench/scale.py --cards 10000 --engine local --stages ingest normalise embed --backend e5-small-onnx

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

With `--stages` only those stages run, cold, once per size, on the one engine given, and the memory
of each stage is sampled every second over the whole process tree (psutil): the stage process (the
driver), the largest Ray worker (`ray::` processes) and the tree's sum (an upper bound: shared
pages count in each process). `--embed-minutes` stops embed after that long (SIGINT; the cache is
written segment by segment, so a stop loses nothing) and prints cards embedded, throughput and
memory over time: what shows whether memory stays flat in the corpus size.
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import pyarrow.parquet as pq
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


def set_engine(workdir: Path, kind: str, sample_size: int | None, backend: str | None = None) -> None:
    """Point the copied configs/params.yaml at engine `kind` (and `sample_size` and `embed.backend`, if given)."""
    path = workdir / "configs" / "params.yaml"
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    params.setdefault("engine", {})["kind"] = kind
    if sample_size:
        params["engine"]["sample_size"] = sample_size
    if backend:
        params.setdefault("embed", {})["backend"] = backend
    path.write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")


def bench_engine(n_cards: int, kind: str, root: Path, sample_size: int | None, backend: str | None = None) -> dict:
    """One cold run on engine `kind`: stage times, Ray workers' peak memory, share placed, insights bytes."""
    corpus, workdir = root / "corpus", root / kind
    if not corpus.exists():
        make_corpus.write(make_corpus.generate(make_corpus.seed_texts(ROOT / DEMO_CORPUS), n_cards, 100, "ws-bench",
                                               seed=0), corpus)
    workdir.mkdir(parents=True)
    shutil.copytree(ROOT / "configs", workdir / "configs")
    set_engine(workdir, kind, sample_size, backend)
    logs: list[str] = []
    times = run_pipeline(corpus, workdir, f"{kind} cold", logs)
    text = "\n".join(logs)
    peaks = [float(m) for m in re.findall(r"peak memory per worker ([\d.]+) GiB \(largest\)", text)]
    placed = re.search(r"fitted on a sample of (\d+) cards; (\d+) cards \((\d+)%\) placed", text)
    return {"times": times, "worker_peak": max(peaks, default=None),
            "placed": (int(placed[2]), int(placed[1])) if placed else (0, None),
            "insights": (workdir / "outputs/report/insights.json").read_bytes()}


def compare_engines(n_cards: int, kinds: list[str], root: Path, sample_size: int | None,
                    backend: str | None = None) -> None:
    runs = {kind: bench_engine(n_cards, kind, root, sample_size, backend) for kind in kinds}
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


class TreeMemory:
    """Peak resident memory of a process and everything under it, sampled (driver, largest Ray worker, sum)."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self.driver = self.worker = self.total = 0.0

    def sample(self) -> tuple[float, float, float]:
        """(driver, largest worker, tree sum) now, in GiB; the peaks are updated."""
        try:
            driver = self.root.memory_info().rss / 2**30
            children = self.root.children(recursive=True)
        except psutil.NoSuchProcess:
            return 0.0, 0.0, 0.0
        worker, total = 0.0, driver
        for child in children:
            try:
                rss = child.memory_info().rss / 2**30
                name = child.name()
            except psutil.NoSuchProcess:
                continue
            total += rss
            if name.startswith("ray::"):
                worker = max(worker, rss)
        self.driver, self.worker, self.total = max(self.driver, driver), max(self.worker, worker), max(self.total, total)
        return driver, worker, total


def segment_rows(folder: Path, skip: set[Path]) -> int:
    """Rows in the cache segments under `folder` that are not in `skip` (those of earlier stages)."""
    rows = 0
    for path in folder.rglob("segment-*.parquet"):
        if path not in skip:
            try:
                rows += pq.read_metadata(path).num_rows
            except OSError:  # being renamed into place right now
                pass
    return rows


def run_sampled(command: list[str], workdir: Path, minutes: float | None = None, progress_of=None) -> dict:
    """Run one stage process, sampling its tree's memory every second; stop it (SIGINT) after `minutes`.
    `progress_of()`: cards done so far, printed with the memory every 30 s."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    memory, timeline, stopped, last = TreeMemory(process.pid), [], False, -30.0
    stderr_chunks: list[bytes] = []
    import threading

    reader = threading.Thread(target=lambda: stderr_chunks.append(process.stderr.read()), daemon=True)
    reader.start()
    while True:
        pid, status, _ = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            break
        now = time.perf_counter() - start
        driver, worker, total = memory.sample()
        if now - last >= 30:
            last = now
            done = progress_of() if progress_of is not None else None
            timeline.append((now, done, driver, worker, total))
            print(f"    {now:7.0f} s:{f' {done} cards,' if done is not None else ''} driver {driver:.2f} GiB, largest worker {worker:.2f} GiB, "
                  f"tree {total:.2f} GiB", flush=True)
        if minutes is not None and now > minutes * 60 and not stopped:
            process.send_signal(signal.SIGINT)
            stopped = True
            stop_at = now
        if stopped and now - stop_at > 120:
            os.killpg(process.pid, signal.SIGKILL)  # our own session: the stage and the Ray processes it started
        time.sleep(1)
    reader.join()
    wall = time.perf_counter() - start
    if process.returncode != 0 and not stopped:
        raise SystemExit(f"{' '.join(command)} failed:\n{b''.join(stderr_chunks).decode('utf-8', 'replace')}")
    return {"wall": stop_at if stopped else wall, "driver": memory.driver, "worker": memory.worker,
            "total": memory.total, "timeline": timeline, "stopped": stopped,
            "done": progress_of() if progress_of is not None else None}


def bench_stages(n_cards: int, stages: list[str], kind: str, root: Path, sample_size: int | None,
                 embed_minutes: float | None, backend: str | None = None) -> dict:
    """Cold runs of `stages` on engine `kind`, with per-stage wall time and sampled memory of driver and workers."""
    corpus, workdir = root / "corpus", root / kind
    if not corpus.exists():
        start = time.perf_counter()
        make_corpus.write(make_corpus.generate(make_corpus.seed_texts(ROOT / DEMO_CORPUS), n_cards, 100, "ws-bench",
                                               seed=0), corpus)
        print(f"  {n_cards} cards generated in {time.perf_counter() - start:.0f} s", flush=True)
    if stages[0] == "ingest" or not workdir.exists():
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        shutil.copytree(ROOT / "configs", workdir / "configs")
        set_engine(workdir, kind, sample_size, backend)
    else:  # later stages only: on the outputs a previous run left in `workdir`
        print(f"  reusing the outputs in {workdir} ({', '.join(STAGES[:STAGES.index(stages[0])])})", flush=True)
    commands = stage_commands(corpus)
    results = {}
    for name in stages:
        before = set((workdir / ".cache").rglob("segment-*.parquet")) if (workdir / ".cache").exists() else set()
        progress_of = (lambda skip=before: segment_rows(workdir / ".cache", skip)) if name == "embed" else None
        result = run_sampled(commands[name], workdir, embed_minutes if name == "embed" else None, progress_of)
        results[name] = result
        done = f", {result['done']} cards embedded ({result['done'] / result['wall']:.1f}/s)" if name == "embed" else ""
        print(f"  {kind} {name}: {result['wall']:.1f} s{' (stopped)' if result['stopped'] else ''}, driver "
              f"{result['driver']:.2f} GiB, largest worker {result['worker']:.2f} GiB, tree {result['total']:.2f} GiB"
              f"{done}", flush=True)
    return results


def report_stages(runs: dict[int, dict]) -> None:
    sizes = sorted(runs)
    print(f"\nper stage: wall s / driver GiB / largest Ray worker GiB / tree GiB ({os.cpu_count()} cores)")
    stages = list(runs[sizes[0]])
    print(f"{'stage':<10}" + "".join(f" {f'{n} cards':>36}" for n in sizes))
    for name in stages:
        cells = []
        for n in sizes:
            r = runs[n][name]
            cells.append(f"{r['wall']:>8.1f}{'*' if r['stopped'] else ' '} {r['driver']:>7.2f} {r['worker']:>7.2f} "
                         f"{r['total']:>7.2f}")
        print(f"{name:<10}" + "".join(f" {c:>36}" for c in cells))
    for n in sizes:
        embed = runs[n].get("embed")
        if embed and embed["timeline"] and embed["wall"]:
            print(f"embed at {n} cards{' (stopped, *)' if embed['stopped'] else ''}: {embed['done']} cards in "
                  f"{embed['wall']:.0f} s ({embed['done'] / embed['wall']:.1f}/s); driver GiB over time: "
                  + ", ".join(f"{t:.0f}s {d:.2f}" for t, _, d, _, _ in embed["timeline"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--added", type=int, default=100, help="Cards in the added workshop (0: cold run only).")
    parser.add_argument("--keep", type=Path, help="Keep corpora and outputs under this folder.")
    parser.add_argument("--engine", nargs="+", choices=["local", "ray"],
                        help="Compare these engines (cold runs): Ray's overhead, worker memory, share placed.")
    parser.add_argument("--sample-size", type=int, help="engine.sample_size for the runs (default: the params').")
    parser.add_argument("--stages", nargs="+", choices=STAGES,
                        help="Run only these stages, cold, on one engine, with memory sampled over time (driver, workers).")
    parser.add_argument("--embed-minutes", type=float, help="With --stages: stop embed after this many minutes.")
    parser.add_argument("--backend", help="With --stages or --engine: embed.backend for the runs (default: the params').")
    args = parser.parse_args()
    if args.stages and (not args.engine or len(args.engine) != 1):
        parser.error(f"--stages takes one engine (--engine local or --engine ray); got --engine {args.engine}")
    if args.embed_minutes is not None and not args.stages:
        parser.error("--embed-minutes needs --stages")
    staged: dict[int, dict] = {}
    for n_cards in args.cards:
        if args.keep:
            root = args.keep / f"{n_cards}"
            if not args.stages:  # --stages reuses a corpus kept there (generating 1M cards takes minutes)
                shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True, exist_ok=True)
        else:
            tmp = tempfile.TemporaryDirectory()
            root = Path(tmp.name)
        if args.stages:
            staged[n_cards] = bench_stages(n_cards, args.stages, args.engine[0], root, args.sample_size,
                                           args.embed_minutes, args.backend)
        elif args.engine:
            compare_engines(n_cards, args.engine, root, args.sample_size, args.backend)
        else:
            bench_size(n_cards, args.added, root)
        if not args.keep:
            tmp.cleanup()
    if staged:
        report_stages(staged)


if __name__ == "__main__":
    main()
