"""Tuned encoder settings -> mapping accuracy on the devset, zero-shot and cross-validated by workshop.

Each variant is `innsikt evaluate` with `embed.backend` set to a tuned encoder and the given `tune.*`
settings: the encoder is tuned on the taxonomy and codebook only, and serves zero-shot and cross-validation
(the other workshops' labels go to the map); with `--tune-per-fold`, cross-validation tunes once per held-out
workshop on the other workshops' labels (`--cv-only` always does). Tuned models are kept in the cache folder, so
a rerun only scores. Needs a run of the pipeline on the devset (for the cards and clusters):

    innsikt run --input ../shared/data/devset/cards.csv ../shared/data/devset/votes.csv --out /tmp/devset
    python bench/tune_table.py --run-dir /tmp/devset --variant steps=200 --variant steps=200,frozen_layers=4
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from pipeline.evaluate import run as evaluate
from pipeline.params import Params, load_params

ROOT = Path(__file__).resolve().parents[1]


def variant_params(base: Params, spec: str) -> Params:
    tune = base.tune.model_dump()
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        tune[key] = type(tune[key])(value) if not isinstance(tune[key], bool) else value == "true"
    data = base.model_dump()
    data["tune"] = tune
    data["embed"]["backend"] = "e5-small-q4:models/encoder"  # any tuned backend: evaluate tunes its own
    return Params.model_validate(data)


def cross_validation_only(*, gold_path: Path, run_dir: Path, taxonomy_path: Path, codebook_path: Path,
                          cache_dir: Path, out_dir: Path, params: Params, by_workshop: bool = True) -> dict:
    """evaluate's cross-validation by workshop with per-fold tuned encoders, without the zero-shot part."""
    from pipeline.evaluate import cross_validate_tuned, load_gold, score
    from pipeline.records import CLUSTER_ASSIGNMENTS, CLUSTER_TOPICS, NORMALISED, read_table
    from pipeline.taxonomy import load_codebook, load_taxonomy

    gold = load_gold(gold_path)
    taxonomy = load_taxonomy(taxonomy_path)
    codebook = load_codebook(codebook_path, taxonomy)
    cards = read_table(run_dir / "normalise" / "cards.parquet", NORMALISED)
    assignments = read_table(run_dir / "cluster" / "assignments.parquet", CLUSTER_ASSIGNMENTS)
    from pipeline.records import EMBEDDINGS

    inputs = dict(cards=cards, card_embeddings=read_table(run_dir / "embed" / "embeddings.parquet", EMBEDDINGS),
                  assignments=assignments, topics=read_table(run_dir / "cluster" / "topics.parquet", CLUSTER_TOPICS),
                  prototypes=None, taxonomy=taxonomy, codebook=codebook, params=params.map)
    workshop_of = dict(zip(cards["card_id"], cards["workshop_id"]))
    cv_map, folds = cross_validate_tuned(workshop_of, gold, inputs, params, cache_dir)
    theme_category = {t.id: t.category_id for t in taxonomy.themes}
    return {"cross_validated_by_workshop": {"folds": folds, **score(cv_map, assignments, gold, theme_category)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--gold", type=Path, default=ROOT.parent / "shared" / "data" / "devset" / "cards.csv")
    parser.add_argument("--params", type=Path, default=ROOT / "configs" / "params.yaml")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache")
    parser.add_argument("--variant", action="append", default=[], help="tune settings, e.g. steps=200,frozen_layers=8")
    parser.add_argument("--zero-shot-only", action="store_true")
    parser.add_argument("--cv-only", action="store_true", help="only cross-validation by workshop, tuned per fold")
    parser.add_argument("--tune-per-fold", action="store_true", help="tune per fold on the other workshops' labels")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    base = load_params(args.params)
    rows = []
    for spec in args.variant or [""]:
        params = variant_params(base, spec)
        started = time.perf_counter()
        evaluate_with = cross_validation_only if args.cv_only else evaluate
        metrics = evaluate_with(gold_path=args.gold, run_dir=args.run_dir, taxonomy_path=ROOT / "configs" / "taxonomy.yaml",
                           codebook_path=ROOT / "configs" / "codebook.yaml", cache_dir=args.cache_dir,
                           out_dir=Path("/tmp") / "tune_table", params=params, by_workshop=not args.zero_shot_only,
                           **({} if args.cv_only else {"tune_per_fold": args.tune_per_fold}))
        zs, cv = metrics.get("zero_shot", {}), metrics.get("cross_validated_by_workshop", {})
        rows.append((spec or "defaults", zs.get("category_accuracy", ""), zs.get("category_macro_f1", ""),
                     cv.get("category_accuracy", ""), cv.get("category_macro_f1", ""),
                     f"{cv.get('emergent_precision', '')}/{cv.get('emergent_recall', '')}", cv.get("confidence_ece", ""),
                     round(time.perf_counter() - started)))
        print("| " + " | ".join(map(str, rows[-1])) + " |", flush=True)
    print("\n| tune settings | zero-shot acc | zero-shot F1 | CV acc | CV F1 | CV emergent P/R | CV ECE | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    main()
