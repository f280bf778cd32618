"""Evaluate: mapping and clustering against gold labels, zero-shot and cross-validated by workshop.

Gold file columns: `card_id, category_id, theme_id`, optional `also` (`;`-separated secondary
theme ids, accepted as correct too). Emergent gold themes are `emergent:<topic>` with category
`emergent`; junk cards have category `junk` and should be rejected.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    adjusted_mutual_info_score,
    adjusted_rand_score,
    f1_score,
    normalized_mutual_info_score,
    v_measure_score,
)

from pipeline.errors import InnsiktError
from pipeline.map import (
    embed_prototypes,
    load_codebook,
    map_to_taxonomy,
    params_for_encoder,
    prototype_texts,
)
from pipeline.embed import EmbeddingCache, embed, make_backend
from pipeline.params import Params
from pipeline.records import (
    CARD_MAP,
    CLUSTER_ASSIGNMENTS,
    CLUSTER_TOPICS,
    EMBEDDINGS,
    NORMALISED,
    STATUS_REJECTED,
    read_table,
    write_json,
    write_text,
)
from pipeline.ids import EMERGENT
from pipeline.report_charts import confusion_svg  # the heat maps are drawn like the report's charts
from pipeline.taxonomy import load_taxonomy
from pipeline.tune import training_groups, tuned_model_file

JUNK = "junk"


class GoldError(InnsiktError):
    """A gold file without the needed columns; names the file and the column."""


def load_gold(path: Path) -> pd.DataFrame:
    gold = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("card_id", "category_id", "theme_id"):
        if column not in gold.columns:
            raise GoldError(f"{path}, row 1, column {column!r}: missing; found {list(gold.columns)}")
    if "also" not in gold.columns:
        gold["also"] = ""
    return gold[["card_id", "category_id", "theme_id", "also"]]


def score(card_map: pd.DataFrame, assignments: pd.DataFrame, gold: pd.DataFrame, theme_category: dict) -> dict:
    """Card-level metrics of one mapping against gold (cards missing from either side are skipped)."""
    merged = gold.rename(columns={"category_id": "category_id_gold", "theme_id": "theme_id_gold"}).merge(
        card_map, on="card_id")
    junk = merged[merged["category_id_gold"] == JUNK]
    live = merged[(merged["category_id_gold"] != JUNK) & (merged["status"] != STATUS_REJECTED)]
    predicted = live["category_id"].fillna(EMERGENT)
    gold_category = live["category_id_gold"]
    also_categories = [
        {theme_category.get(t) for t in also.split(";") if t} for also in live["also"]
    ]
    correct = predicted == gold_category
    correct_with_also = correct | pd.Series([p in a for p, a in zip(predicted, also_categories)], index=live.index)
    gold_theme = live["theme_id_gold"]
    gold_emergent = gold_category == EMERGENT
    theme_correct = np.where(gold_emergent, predicted == EMERGENT, live["taxonomy_theme_id"] == gold_theme)
    pred_emergent = predicted == EMERGENT
    clusters = assignments.set_index("card_id").reindex(live["card_id"])["cluster"].fillna(-1).astype(int)
    categories = sorted(set(gold_category) | set(predicted))
    return {
        "cards": int(len(live)),
        "category_accuracy": _round(correct.mean()),
        "category_accuracy_with_also": _round(correct_with_also.mean()),
        "category_macro_f1": _round(f1_score(gold_category, predicted, average="macro", zero_division=0)),
        "category_agreement": agreement(live["card_id"], gold_category, predicted),
        "theme_accuracy": _round(np.mean(theme_correct)),
        "emergent_precision": _round((pred_emergent & gold_emergent).sum() / max(pred_emergent.sum(), 1)),
        "emergent_recall": _round((pred_emergent & gold_emergent).sum() / max(gold_emergent.sum(), 1)),
        "confidence_ece": _round(expected_calibration_error(live["confidence"].to_numpy(float), correct.to_numpy())),
        "junk_rejected": f"{int((junk['status'] == STATUS_REJECTED).sum())}/{len(junk)}",
        "clustering_ari": _round(adjusted_rand_score(gold_theme, clusters)),
        "clustering_nmi": _round(normalized_mutual_info_score(gold_theme, clusters)),
        "clustering_v_measure": _round(v_measure_score(gold_theme, clusters)),
        "confusion": {
            "labels": categories,
            "matrix": pd.crosstab(gold_category, predicted).reindex(index=categories, columns=categories,
                                                                  fill_value=0).values.tolist(),
        },
    }


def agreement(card_ids, gold, predicted) -> dict:
    """Chance-corrected agreement of the machine with the gold coder on each card's category, as
    between two human coders: Cohen's kappa and Krippendorff's alpha (nominal), by NLTK's
    AnnotationTask. None where undefined (no cards; both coders give one category throughout)."""
    from nltk.metrics.agreement import AnnotationTask

    data = [(coder, card, label) for card, gold_label, machine_label in zip(card_ids, gold, predicted)
            for coder, label in (("gold", gold_label), ("machine", machine_label))]
    task = AnnotationTask(data=data)
    result = {}
    for name, measure in (("cohen_kappa", task.kappa), ("krippendorff_alpha", task.alpha)):
        try:
            result[name] = _round(measure()) if data else None
        except ZeroDivisionError:  # expected agreement 1: every card in one category on both sides
            result[name] = None
    return result


OUTSIDE = "(outside every theme)"


def purity(themes, gold) -> float:
    """Share of the themed cards that belong to their theme's majority gold class (0 with no themed card)."""
    frame = pd.DataFrame({"theme": list(themes), "gold": list(gold)})
    if frame.empty:
        return 0.0
    return float(frame.groupby("theme")["gold"].agg(lambda g: g.value_counts().iloc[0]).sum() / len(frame))


def theme_scores(card_map: pd.DataFrame, gold: pd.DataFrame) -> dict:
    """How well the run's themes agree with the gold themes, at the top level of the hierarchy (a taxonomy
    theme or an emergent topic; `themes.*`) and at its leaves (a card's sub-theme, else its theme;
    `leaves.*`). Over the live non-junk cards: purity over the themed cards; ARI and AMI over all of
    them, the cards outside every theme counted as one more group; `outside_share` is their share."""
    merged = gold.rename(columns={"category_id": "category_id_gold", "theme_id": "theme_id_gold"}).merge(
        card_map, on="card_id")
    live = merged[(merged["category_id_gold"] != JUNK) & (merged["status"] != STATUS_REJECTED)]
    top = live["theme_id"].where(live["theme_id"].notna(), OUTSIDE).astype(str)
    sub = live["subtheme_id"] if "subtheme_id" in live else pd.Series(None, index=live.index, dtype=object)
    leaf = sub.where(sub.notna(), top).astype(str)
    result = {"cards": int(len(live)), "outside_share": _round((top == OUTSIDE).mean()) if len(live) else 0.0}
    for name, labels in (("themes", top), ("leaves", leaf)):
        themed = labels != OUTSIDE
        result[name] = {
            "count": int(labels[themed].nunique()),
            "category_purity": _round(purity(labels[themed], live["category_id_gold"][themed])),
            "theme_purity": _round(purity(labels[themed], live["theme_id_gold"][themed])),
            "ari": _round(adjusted_rand_score(live["theme_id_gold"], labels)),
            "ami": _round(adjusted_mutual_info_score(live["theme_id_gold"], labels)),
        }
    return result


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by cards per bin:
    how far a card's stated confidence in its category is from how often such cards are right."""
    if len(confidence) == 0:
        return 0.0
    which = np.minimum((np.asarray(confidence) * bins).astype(int), bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.sum() * abs(np.mean(correct[members]) - np.mean(confidence[members]))
    return float(gap / len(confidence))


def _round(value: float) -> float:
    return round(float(value), 4)


def cross_validate(workshop_of: dict, gold: pd.DataFrame, map_inputs: dict) -> tuple[pd.DataFrame, list[str]]:
    """Per workshop: labels of the other workshops supplied, predictions kept for this one."""
    labelled = gold[gold["category_id"] != JUNK]
    folds, parts = sorted(set(workshop_of.values())), []
    for workshop in folds:
        training = labelled[labelled["card_id"].map(workshop_of) != workshop]
        _, card_map = map_to_taxonomy(**map_inputs, labels=training[["card_id", "theme_id"]])
        parts.append(card_map[card_map["card_id"].map(workshop_of) == workshop])
    return pd.concat(parts, ignore_index=True), folds


def is_tuned(backend: str) -> bool:
    """A tuned encoder (`e5-small-q4:<model>`, `e5-small-onnx:<model>`): evaluated by tuning it again without the
    scored labels."""
    kind, _, model = backend.partition(":")
    return kind in ("e5-small-q4", "e5-small-onnx") and bool(model)


def with_tuned_encoder(map_inputs: dict, groups: dict[str, list[str]], params: Params, cache_dir: Path) -> dict:
    """`map_inputs` with cards and prototypes embedded by the base encoder tuned on `groups` (and nothing else), and
    the map params moved to its similarity scale (`pipeline.map.params_for_encoder`)."""
    model_file, _ = tuned_model_file(groups, params.tune, cache_dir)
    kind = params.embed.backend.partition(":")[0]  # the tuned model runs where the configured one does
    backend = make_backend(f"{kind}:{model_file}", workers=params.embed.workers, cache_dir=cache_dir)
    try:
        cache = EmbeddingCache(cache_dir, backend.model_id)
        cards_embedded, _, _ = embed(map_inputs["cards"], backend, cache.load(), on_new_segment=cache.add,
                                     batch_size=params.embed.batch_size)
        prototypes = embed_prototypes(prototype_texts(map_inputs["taxonomy"], map_inputs["codebook"]), backend,
                                      cache_dir)
        map_params = params_for_encoder(map_inputs["params"], backend, prototypes, map_inputs["taxonomy"],
                                        map_inputs["codebook"], cache_dir)
    finally:
        backend.close()
    return {**map_inputs, "card_embeddings": cards_embedded, "prototypes": prototypes, "params": map_params}


def fold_groups(held_out: str, workshop_of: dict, training: pd.DataFrame, cards: pd.DataFrame, map_inputs: dict
                ) -> dict[str, list[str]]:
    """Training texts for the fold that scores workshop `held_out`: the taxonomy, the codebook and the labelled
    cards of the other workshops (`training`, which holds none of `held_out`'s cards)."""
    if (training["card_id"].map(workshop_of) == held_out).any():
        raise AssertionError(f"fold {held_out}: its own labels reached the training set")
    text_of = dict(zip(cards["card_id"], cards["text_norm"]))
    labelled = pd.DataFrame({"theme_id": training["theme_id"], "text": training["card_id"].map(text_of)}).dropna()
    return training_groups(map_inputs["taxonomy"], map_inputs["codebook"], labelled)


def cross_validate_tuned(workshop_of: dict, gold: pd.DataFrame, map_inputs: dict, params: Params, cache_dir: Path
                         ) -> tuple[pd.DataFrame, list[str]]:
    """As `cross_validate`, with an encoder tuned per fold on the other workshops' labels only."""
    labelled = gold[gold["category_id"] != JUNK]
    labelled = labelled[labelled["card_id"].isin(set(map_inputs["card_embeddings"]["card_id"]))]
    folds, parts = sorted(set(workshop_of.values())), []
    for workshop in folds:
        training = labelled[labelled["card_id"].map(workshop_of) != workshop]
        groups = fold_groups(workshop, workshop_of, training, map_inputs["cards"], map_inputs)
        _, card_map = map_to_taxonomy(**with_tuned_encoder(map_inputs, groups, params, cache_dir),
                                      labels=training[["card_id", "theme_id"]])
        parts.append(card_map[card_map["card_id"].map(workshop_of) == workshop])
    return pd.concat(parts, ignore_index=True), folds


def unmatched_metrics(gold_path: Path, run_dir: Path) -> dict:
    """metrics.json when no gold card is in the run (another corpus): the scores are null, and say why."""
    return {"gold": str(gold_path), "skipped": f"none of the card ids of {gold_path} is in the run at {run_dir}: "
                                              f"no gold labels for this corpus",
            "zero_shot": None, "cross_validated_by_workshop": None, "themes": None}


def run(*, gold_path: Path, run_dir: Path, taxonomy_path: Path, codebook_path: Path, cache_dir: Path,
        out_dir: Path, params: Params, by_workshop: bool = True, skip_unmatched: bool = False,
        tune_per_fold: bool = False) -> dict:
    """Score the run in `run_dir` against the gold file. When no gold card is in the run, raise
    GoldError, or with `skip_unmatched` write null metrics and placeholder plots (dvc.yaml: pointing
    the pipeline at another corpus keeps `dvc repro` green).

    With a tuned encoder, zero-shot uses one tuned on the taxonomy and codebook only; cross-validation uses that
    same encoder with the other workshops' labels in the map (no label reaches the tuning, so none can leak), or
    with `tune_per_fold` (for a tune stage trained on labels) an encoder tuned per fold on the other workshops'
    labels."""
    gold = load_gold(gold_path)
    cards = read_table(run_dir / "normalise" / "cards.parquet", NORMALISED)
    if skip_unmatched and not set(gold["card_id"]) & set(cards["card_id"]):
        metrics = unmatched_metrics(gold_path, run_dir)
        for name in ("confusion_zero_shot.svg", "confusion_cross_validated.svg"):
            write_text(confusion_svg({"labels": [], "matrix": []}, "No gold labels for this corpus"), out_dir / name)
        write_json(metrics, out_dir / "metrics.json")
        return metrics
    assignments = read_table(run_dir / "cluster" / "assignments.parquet", CLUSTER_ASSIGNMENTS)
    taxonomy = load_taxonomy(taxonomy_path)
    codebook = load_codebook(codebook_path, taxonomy)
    map_inputs = dict(
        cards=cards,
        card_embeddings=read_table(run_dir / "embed" / "embeddings.parquet", EMBEDDINGS),
        assignments=assignments,
        topics=read_table(run_dir / "cluster" / "topics.parquet", CLUSTER_TOPICS),
        # A tuned encoder is tuned again for each evaluation below (its own prototypes, no scored labels).
        prototypes=None if is_tuned(params.embed.backend) else embed_prototypes(
            prototype_texts(taxonomy, codebook), make_backend(params.embed.backend, cache_dir=cache_dir), cache_dir),
        taxonomy=taxonomy,
        codebook=codebook,
        params=params.map,
    )
    theme_category = {t.id: t.category_id for t in taxonomy.themes}
    if not set(gold["card_id"]) & set(cards["card_id"]):
        raise GoldError(f"{gold_path}: none of its card ids is in the run at {run_dir} (gold for another corpus? "
                        f"--skip-unmatched writes null metrics instead)")
    tuned = is_tuned(params.embed.backend)
    zero_shot_inputs = (with_tuned_encoder(map_inputs, training_groups(taxonomy, codebook), params, cache_dir)
                        if tuned else map_inputs)  # tuned on the taxonomy and codebook only
    _, zero_shot_map = map_to_taxonomy(**zero_shot_inputs)
    encoder = ("tuned per fold" if tune_per_fold else "tuned on the taxonomy and codebook") if tuned else \
        params.embed.backend
    metrics = {"gold": str(gold_path), "encoder": encoder,
               "zero_shot": score(zero_shot_map, assignments, gold, theme_category)}
    write_text(confusion_svg(metrics["zero_shot"]["confusion"], "Zero-shot: gold (rows) vs predicted"),
               out_dir / "confusion_zero_shot.svg")
    if by_workshop:
        workshop_of = dict(zip(cards["card_id"], cards["workshop_id"]))
        cv_map, folds = (cross_validate_tuned(workshop_of, gold, map_inputs, params, cache_dir)
                         if tuned and tune_per_fold else cross_validate(workshop_of, gold, zero_shot_inputs))
        metrics["cross_validated_by_workshop"] = {"folds": folds,
                                                  **score(cv_map, assignments, gold, theme_category)}
        write_text(confusion_svg(metrics["cross_validated_by_workshop"]["confusion"],
                                 "Labels from the other workshops: gold (rows) vs predicted"),
                   out_dir / "confusion_cross_validated.svg")
    metrics["themes"] = theme_scores(read_table(run_dir / "map" / "cards.parquet", CARD_MAP), gold)
    write_json(metrics, out_dir / "metrics.json")
    return metrics
