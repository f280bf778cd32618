"""Per-stage wall time on a corpus, cold (empty embedding cache) and warm (everything cached).

    python bench/stage_times.py [CORPUS_DIR]     # default: corpora/demo

Prints a table; speed is quoted as the warm/cold ratio measured in this one process.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from pipeline import cluster, embed, ingest, map, normalise, report
from pipeline.params import load_params


def timed_run(corpus: Path, out: Path, cache: Path, params) -> dict[str, float]:
    times: dict[str, float] = {}
    cards = out / "normalise" / "cards.parquet"
    embeddings = out / "embed" / "embeddings.parquet"
    backend = embed.make_backend(params.embed.backend)
    steps = [
        ("ingest", lambda: ingest.run(inputs=[corpus], out_dir=out / "ingest", params=params.ingest)),
        ("normalise", lambda: normalise.run(cards_path=out / "ingest" / "cards.parquet", out_dir=out / "normalise",
                                            params=params.normalise)),
        ("embed", lambda: embed.run(cards_path=cards, cache_dir=cache, out_dir=out / "embed", params=params.embed)),
        ("cluster", lambda: cluster.run(cards_path=cards, embeddings_path=embeddings, out_dir=out / "cluster",
                                        model_dir=out / "model", params=params.cluster,
                                        embedder=cluster.make_embedder(backend))),
        ("map", lambda: map.run(cards_path=cards, embeddings_path=embeddings, cluster_dir=out / "cluster",
                                taxonomy_path=Path("configs/taxonomy.yaml"), cache_dir=cache, out_dir=out / "map",
                                params=params)),
        ("report", lambda: report.run(ingest_dir=out / "ingest", cards_path=cards, map_dir=out / "map",
                                      taxonomy_path=Path("configs/taxonomy.yaml"), out_dir=out / "report",
                                      params=params)),
    ]
    for name, step in steps:
        start = time.perf_counter()
        step()
        times[name] = time.perf_counter() - start
    return times


def main() -> None:
    corpus = Path(sys.argv[1] if len(sys.argv) > 1 else "corpora/demo")
    params = load_params("configs/params.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # The first pass also pays one-off import and JIT costs; it is reported apart.
        warmup = timed_run(corpus, tmp / "warmup", tmp / "warmup-cache", params)
        cold = timed_run(corpus, tmp / "cold", tmp / "cache", params)
        warm = timed_run(corpus, tmp / "warm", tmp / "cache", params)
    print(f"corpus: {corpus}")
    print(f"{'stage':<10} {'first (s)':>10} {'cold (s)':>10} {'warm (s)':>10} {'warm/cold':>10}")
    for stage in cold:
        print(f"{stage:<10} {warmup[stage]:>10.2f} {cold[stage]:>10.2f} {warm[stage]:>10.2f} "
              f"{warm[stage] / cold[stage]:>10.2f}")
    total_cold, total_warm = sum(cold.values()), sum(warm.values())
    print(f"{'total':<10} {sum(warmup.values()):>10.2f} {total_cold:>10.2f} {total_warm:>10.2f} "
          f"{total_warm / total_cold:>10.2f}")


if __name__ == "__main__":
    main()
