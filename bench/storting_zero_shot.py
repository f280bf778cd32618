"""Zero-shot mapping on real text: Storting case titles (2019-2020) -> standing committee.

    python bench/storting_zero_shot.py [--data PATH] [--backend e5-small-q4:models/encoder]

An independent check that the mapping is not tuned to the workshop devset: the same scoring
core (`pipeline.map.score_cards`, mean-centred e5 embeddings, top-k prototype similarity) maps
614 real case titles onto committees described only by a name and one sentence each
(`configs/storting_committees.yaml`). No labels are used. Data: data.stortinget.no (NLOD), via
martigso/stortingscrape.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.embed import make_backend
from pipeline.map import Codebook, Target, embed_prototypes, prototype_texts, score_cards
from pipeline.params import load_params
from pipeline.taxonomy import load_taxonomy
from pipeline.embed import EmbeddingCache, embed_texts

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "external" / "stortinget_cases_2019_2020" / "stortinget_cases_2019_2020.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--backend", help="embed.backend to use (default: the params'), e.g. a tuned encoder: does "
                                          "tuning on the workshop taxonomy cost general ability?")
    args = parser.parse_args()
    params = load_params(REPO / "configs" / "params.yaml")
    if args.backend:
        params = params.model_copy(update={"embed": params.embed.model_copy(update={"backend": args.backend})})
    taxonomy = load_taxonomy(REPO / "configs" / "storting_committees.yaml")
    cases = pd.read_csv(args.data, dtype=str, keep_default_na=False)
    known = {c.id for c in taxonomy.categories}
    usable = cases[cases["label"].isin(known)].reset_index(drop=True)
    cache_dir = REPO / ".cache" / "embeddings"
    backend = make_backend(params.embed.backend, cache_dir=REPO / ".cache")
    cache = EmbeddingCache(cache_dir, backend.model_id)
    vectors, embedded, reused = embed_texts(usable["text"].tolist(), backend, cache.load(), cache.add)
    codebook = Codebook(cues={}, phrases={})
    prototypes = embed_prototypes(prototype_texts(taxonomy, codebook), backend, cache_dir)
    targets = [Target(t.id, t.category_id, t.id) for t in taxonomy.themes]
    similarity, _ = score_cards(vectors.astype(np.float64), usable["text"].tolist(),
                                np.stack([v for _, v in prototypes]), [t for t, _ in prototypes],
                                np.ones(len(prototypes)), targets, codebook, params.map)
    predicted = np.array([targets[j].category_id for j in similarity.argmax(axis=1)])
    gold = usable["label"].to_numpy()
    accuracy = float(np.mean(predicted == gold))
    majority = usable["label"].value_counts().iloc[0] / len(usable)
    print(f"Storting case titles: {len(cases)} rows, {len(usable)} with a committee in the config "
          f"({len(cases) - len(usable)} blank or unknown labels left out); {embedded} embedded, {reused} cached")
    print(f"{'committee':<10} {'cases':>6} {'correct':>8} {'recall':>7}")
    for committee in sorted(known):
        mask = gold == committee
        if mask.any():
            print(f"{committee:<10} {mask.sum():>6} {int((predicted[mask] == committee).sum()):>8} "
                  f"{(predicted[mask] == committee).mean():>7.2f}")
    print(f"zero-shot accuracy: {accuracy:.3f} (majority-class baseline {majority:.3f}, "
          f"chance {1 / len(known):.3f})")


if __name__ == "__main__":
    main()
