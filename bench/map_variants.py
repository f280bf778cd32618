"""Two designs around the map, measured on the devset beside the mapping as it is: score fusion of the frozen
and the tuned encoder, and self-training on the map's own confident cards.

    innsikt run --input ../shared/data/devset/cards.csv ../shared/data/devset/votes.csv --out /tmp/devset
    python bench/map_variants.py --run-dir /tmp/devset --fusion 0.3 0.5 --self-training 0.2 0.4

- **Fusion** `a`: a card's similarity to a prototype is `a` x the frozen encoder's cosine + (1 - `a`) x the
  tuned encoder's (exactly: each encoder's centred unit vectors, scaled by sqrt(a) and sqrt(1 - a), side by side).
  The map's thresholds move to the fused scale on the calibration texts, as for any encoder
  (`pipeline.map.on_scale_of`). The tuned encoder is tuned on the taxonomy and codebook only (cached).
- **Self-training** `s`: the share `s` of each workshop's cards that the map places most confidently on a
  taxonomy theme become labels for a second pass over the others (they keep their first placement). In
  cross-validation the held-out workshop's pseudo-labels join the other workshops' gold labels.

Prints zero-shot and cross-validated (by workshop) category accuracy, macro-F1, emergent precision/recall, ECE.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.embed import E5SmallQ4, EmbeddingCache, embed_texts, make_backend
from pipeline.evaluate import JUNK, load_gold, score, with_tuned_encoder
from pipeline.map import best_scores, calibration_texts, embed_prototypes, map_to_taxonomy, on_scale_of, prototype_texts
from pipeline.params import load_params
from pipeline.records import (CLUSTER_ASSIGNMENTS, CLUSTER_TOPICS, EMBEDDINGS, NORMALISED, embedding_matrix,
                              read_table)
from pipeline.taxonomy import load_codebook, load_taxonomy
from pipeline.tune import training_groups, tuned_model_file
from pipeline.vectors import unit_rows

ROOT = Path(__file__).resolve().parents[1]


def fused(share: float, frozen: np.ndarray, tuned: np.ndarray, frozen_mean: np.ndarray, tuned_mean: np.ndarray):
    """Vectors whose cosines are `share` x frozen + (1 - share) x tuned cosines (both centred by the given means)."""
    return np.hstack([np.sqrt(share) * unit_rows(frozen - frozen_mean),
                      np.sqrt(1 - share) * unit_rows(tuned - tuned_mean)])


def pseudo_labels(card_map: pd.DataFrame, share: float, workshop_of: dict, workshops) -> pd.DataFrame:
    """The `share` of each workshop's cards placed most confidently on a taxonomy theme, as labels."""
    workshop = card_map["card_id"].map(workshop_of)
    placed = card_map[workshop.isin(workshops) & card_map["taxonomy_theme_id"].notna()]
    picks = [part.sort_values(["confidence", "card_id"], ascending=[False, True])
             .head(int(round(share * (workshop == name).sum())))
             for name, part in placed.groupby(placed["card_id"].map(workshop_of))]
    picked = pd.concat(picks)
    return pd.DataFrame({"card_id": picked["card_id"], "theme_id": picked["taxonomy_theme_id"]})


def second_pass(inputs: dict, first: pd.DataFrame, labels: pd.DataFrame, pseudo: pd.DataFrame) -> pd.DataFrame:
    _, again = map_to_taxonomy(**inputs, labels=pd.concat([labels, pseudo]))
    return pd.concat([again[~again["card_id"].isin(pseudo["card_id"])], first[first["card_id"].isin(pseudo["card_id"])]])


def measure(name: str, inputs: dict, gold: pd.DataFrame, workshop_of: dict, theme_category: dict,
            self_training: float | None = None) -> str:
    labelled = gold[gold["category_id"] != JUNK]
    folds = sorted(set(workshop_of.values()))
    _, zero_shot = map_to_taxonomy(**inputs)
    parts = []
    for held_out in folds:
        training = labelled[labelled["card_id"].map(workshop_of) != held_out][["card_id", "theme_id"]]
        _, card_map = map_to_taxonomy(**inputs, labels=training)
        if self_training:
            card_map = second_pass(inputs, card_map, training, pseudo_labels(card_map, self_training, workshop_of,
                                                                            [held_out]))
        parts.append(card_map[card_map["card_id"].map(workshop_of) == held_out])
    if self_training:
        zero_shot = second_pass(inputs, zero_shot, labelled.iloc[:0][["card_id", "theme_id"]],
                                pseudo_labels(zero_shot, self_training, workshop_of, folds))
    z = score(zero_shot, inputs["assignments"], gold, theme_category)
    c = score(pd.concat(parts), inputs["assignments"], gold, theme_category)
    return (f"| {name} | {z['category_accuracy']:.3f} | {z['category_macro_f1']:.3f} | {c['category_accuracy']:.3f} "
            f"| {c['category_macro_f1']:.3f} | {c['emergent_precision']:.2f}/{c['emergent_recall']:.2f} "
            f"| {c['confidence_ece']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True, help="a run of the pipeline on the devset")
    parser.add_argument("--gold", type=Path, default=ROOT.parent / "shared" / "data" / "devset" / "cards.csv")
    parser.add_argument("--params", type=Path, default=ROOT / "configs" / "params.yaml")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache")
    parser.add_argument("--fusion", type=float, nargs="*", default=[0.3, 0.5], help="shares of the frozen encoder")
    parser.add_argument("--self-training", type=float, nargs="*", default=[0.2, 0.4], help="shares pseudo-labelled")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    params = load_params(args.params)
    params = params.model_copy(update={"tune": params.tune.model_copy(update={"enabled": True})})
    taxonomy = load_taxonomy(ROOT / "configs" / "taxonomy.yaml")
    codebook = load_codebook(ROOT / "configs" / "codebook.yaml", taxonomy)
    cards = read_table(args.run_dir / "normalise" / "cards.parquet", NORMALISED)
    embeddings = read_table(args.run_dir / "embed" / "embeddings.parquet", EMBEDDINGS)
    gold = load_gold(args.gold)
    workshop_of = dict(zip(cards["card_id"], cards["workshop_id"]))
    theme_category = {t.id: t.category_id for t in taxonomy.themes}
    bundled = make_backend(params.embed.backend)
    frozen_prototypes = embed_prototypes(prototype_texts(taxonomy, codebook), bundled, args.cache_dir)
    frozen = dict(cards=cards, card_embeddings=embeddings, prototypes=frozen_prototypes, taxonomy=taxonomy,
                  codebook=codebook, params=params.map,
                  assignments=read_table(args.run_dir / "cluster" / "assignments.parquet", CLUSTER_ASSIGNMENTS),
                  topics=read_table(args.run_dir / "cluster" / "topics.parquet", CLUSTER_TOPICS))
    groups = training_groups(taxonomy, codebook)
    tuned = with_tuned_encoder(frozen, groups, params, args.cache_dir)

    print("| variant | zero-shot acc | zero-shot F1 | CV acc | CV F1 | CV emergent P/R | CV ECE |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(measure("frozen", frozen, gold, workshop_of, theme_category), flush=True)
    print(measure("tuned", tuned, gold, workshop_of, theme_category), flush=True)

    model_file, _ = tuned_model_file(groups, params.tune, args.cache_dir)
    tuned_backend = E5SmallQ4(model=str(model_file), workers=params.embed.workers)
    texts = calibration_texts()
    calibration = []
    for backend in (bundled, tuned_backend):
        cache = EmbeddingCache(args.cache_dir, backend.model_id)
        calibration.append(np.asarray(embed_texts(texts, backend, cache.load(), cache.add)[0], dtype=np.float64))
    tuned_backend.close()
    frozen_scores = best_scores(calibration[0], frozen_prototypes, taxonomy, codebook, params.map)
    cards_frozen = embedding_matrix(embeddings).astype(np.float64)
    cards_tuned = embedding_matrix(tuned["card_embeddings"]).astype(np.float64)
    prototypes_frozen = np.stack([v for _, v in frozen_prototypes]).astype(np.float64)
    prototypes_tuned = np.stack([v for _, v in tuned["prototypes"]]).astype(np.float64)
    for share in args.fusion:
        means = cards_frozen.mean(axis=0, keepdims=True), cards_tuned.mean(axis=0, keepdims=True)
        calibration_means = calibration[0].mean(axis=0, keepdims=True), calibration[1].mean(axis=0, keepdims=True)
        owners = [theme for theme, _ in frozen_prototypes]
        prototypes = list(zip(owners, fused(share, prototypes_frozen, prototypes_tuned, *means)))
        calibration_prototypes = list(zip(owners, fused(share, prototypes_frozen, prototypes_tuned,
                                                        *calibration_means)))
        fused_scores = best_scores(fused(share, *calibration, *calibration_means), calibration_prototypes, taxonomy,
                                   codebook, params.map)
        vectors = embeddings.copy()
        vectors["embedding"] = list(fused(share, cards_frozen, cards_tuned, *means).astype(np.float32))
        inputs = {**frozen, "card_embeddings": vectors, "prototypes": prototypes,
                  "params": on_scale_of(params.map, frozen_scores, fused_scores)}
        print(measure(f"fusion {share} frozen", inputs, gold, workshop_of, theme_category), flush=True)
    for share in args.self_training:
        for name, inputs in (("frozen", frozen), ("tuned", tuned)):
            print(measure(f"{name}, self-training {share}", inputs, gold, workshop_of, theme_category, share),
                  flush=True)


if __name__ == "__main__":
    main()
