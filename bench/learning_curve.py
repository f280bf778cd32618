"""Learning curve of the review queue: accuracy on a new workshop after k of its cards are labelled.

For each workshop of the devset in turn (the "new" workshop), the mapping starts zero-shot
(taxonomy and codebook only, no labels from any workshop), then gets k = 0, 5, 10, 20, 40 gold
labels of that workshop's cards, chosen by the review queue (`pipeline.review`, computed on the
zero-shot mapping) or at random (several seeds). Printed, averaged over workshops (and seeds):

- `rest`: category accuracy on the workshop's cards that were not labelled (the issue's measure);
- `same rest, zero-shot`: the zero-shot accuracy on those same cards, so `rest` minus it is what
  the labels taught the mapping about the other cards, and the rest is which cards were left out;
- `whole workshop`: every card of the workshop, the labelled ones counted as the analyst set them.

Reuses a run's embeddings (no re-embedding): run the devset once, then

    innsikt run --input ../shared/data/devset/cards.csv ../shared/data/devset/votes.csv --out /tmp/devset
    python bench/learning_curve.py --run-dir /tmp/devset
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.embed import make_backend  # noqa: E402
from pipeline.evaluate import JUNK, load_gold  # noqa: E402
from pipeline.map import embed_prototypes, load_codebook, map_to_taxonomy, prototype_texts  # noqa: E402
from pipeline.params import load_params  # noqa: E402
from pipeline.records import (  # noqa: E402
    CLUSTER_ASSIGNMENTS, CLUSTER_TOPICS, EMBEDDINGS, NORMALISED, STATUS_REJECTED, read_table)
from pipeline.report_vectors import centred_unit_vectors  # noqa: E402
from pipeline.review import review_queue  # noqa: E402
from pipeline.taxonomy import EMERGENT, load_taxonomy  # noqa: E402

KS = (0, 5, 10, 20, 40)


def accuracy(card_map: pd.DataFrame, card_ids: list[str], gold_category: dict[str, str]) -> float:
    predicted = card_map.set_index("card_id").loc[card_ids, "category_id"].fillna(EMERGENT)
    return float(np.mean(predicted.to_numpy() == np.array([gold_category[c] for c in card_ids])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=Path("/tmp/devset"))
    parser.add_argument("--gold", type=Path, default=ROOT.parent / "shared" / "data" / "devset" / "cards.csv")
    parser.add_argument("--seeds", type=int, default=5, help="random orders per workshop")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--map", action="append", default=[], metavar="KEY=VALUE",
                        help="override a map param for this run, e.g. --map label_weight=1.2 (repeatable)")
    args = parser.parse_args()

    params = load_params(ROOT / "configs" / "params.yaml")
    overrides = {key: float(value) if "." in value else int(value)
                 for key, value in (item.split("=", 1) for item in args.map)}
    params = params.model_copy(update={"map": params.map.model_copy(update=overrides)})
    taxonomy = load_taxonomy(ROOT / "configs" / "taxonomy.yaml")
    codebook = load_codebook(ROOT / "configs" / "codebook.yaml", taxonomy)
    cards = read_table(args.run_dir / "normalise" / "cards.parquet", NORMALISED)
    embeddings = read_table(args.run_dir / "embed" / "embeddings.parquet", EMBEDDINGS)
    inputs = dict(cards=cards, card_embeddings=embeddings,
                  assignments=read_table(args.run_dir / "cluster" / "assignments.parquet", CLUSTER_ASSIGNMENTS),
                  topics=read_table(args.run_dir / "cluster" / "topics.parquet", CLUSTER_TOPICS),
                  prototypes=embed_prototypes(prototype_texts(taxonomy, codebook),
                                              make_backend(params.embed.backend, cache_dir=args.cache_dir),
                                              args.cache_dir),
                  taxonomy=taxonomy, codebook=codebook, params=params.map)
    gold = load_gold(args.gold).set_index("card_id")
    gold_category, gold_theme = gold["category_id"].to_dict(), gold["theme_id"].to_dict()
    _, zero_shot = map_to_taxonomy(**inputs)
    live = zero_shot[(zero_shot["status"] != STATUS_REJECTED)
                     & zero_shot["card_id"].map(lambda c: gold_category.get(c, JUNK) != JUNK)]
    vectors = centred_unit_vectors(embeddings, live["card_id"].tolist())
    workshop_of = dict(zip(cards["card_id"], cards["workshop_id"]))
    rows = []
    for workshop in sorted(set(workshop_of[c] for c in live["card_id"])):
        own = live[live["card_id"].map(workshop_of) == workshop]
        ids = sorted(own["card_id"])
        queue = [e["card_id"] for e in review_queue(
            own, vectors, max(KS), texts={c: "" for c in ids}, workshop_of=workshop_of, group_of={},
            theme_label={}, taxonomy_theme_name={})]
        orders = {("queue", 0): queue}
        orders.update({("random", seed): list(np.random.default_rng(seed).permutation(ids))
                       for seed in range(args.seeds)})
        for (strategy, seed), order in orders.items():
            for k in KS:
                chosen = order[:k]
                labels = pd.DataFrame({"card_id": chosen, "theme_id": [gold_theme[c] for c in chosen]},
                                      columns=["card_id", "theme_id"])
                _, card_map = map_to_taxonomy(**inputs, labels=labels)
                rest = [c for c in ids if c not in set(chosen)]
                rows.append({"workshop": workshop, "strategy": strategy, "seed": seed, "k": k, "cards": len(ids),
                             "rest": accuracy(card_map, rest, gold_category),
                             "rest_zero_shot": accuracy(zero_shot, rest, gold_category),
                             "whole": accuracy(card_map, ids, gold_category)})
    frame = pd.DataFrame(rows)
    print(f"map overrides: {overrides or 'none'}; {frame['workshop'].nunique()} workshops ({', '.join(str(n) for n in frame.groupby('workshop')['cards'].first())}"
          f" non-junk cards), random: {args.seeds} seeds\n")
    # Mean over seeds within a workshop first, then over workshops: each workshop counts once.
    per_workshop = frame.groupby(["strategy", "workshop", "k"])[["rest", "rest_zero_shot", "whole"]].mean()
    table = per_workshop.groupby(["strategy", "k"]).mean().round(3)
    header = "| labels from the new workshop | " + " | ".join(str(k) for k in KS) + " |"
    print(header)
    print("| --- |" + " --- |" * len(KS))
    for measure, title in (("rest", "accuracy on the other cards"), ("rest_zero_shot", "  same cards, zero-shot"),
                           ("whole", "whole workshop, labels counted")):
        for strategy in ("queue", "random"):
            values = [table.loc[(strategy, k), measure] for k in KS]
            print(f"| {title}: {strategy} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    gain = table.loc[("queue", 20), "rest"] - table.loc[("queue", 0), "rest"]
    print(f"\nqueue, 20 labels: {gain:+.3f} over zero-shot on the other cards; random 20: "
          f"{table.loc[('random', 20), 'rest'] - table.loc[('random', 0), 'rest']:+.3f}")


if __name__ == "__main__":
    main()
