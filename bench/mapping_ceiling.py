"""How far do the card embeddings alone carry category mapping? A supervised ceiling check.

    python bench/mapping_ceiling.py --run-dir /tmp/devset [--gold ../shared/data/devset/cards.csv]

Reads a run's embeddings (`embed/embeddings.parquet`, mean-centred and unit length as the map
stage uses them) and trains plain linear classifiers on the gold categories (emergent is one more
class; junk cards are left out), scored leave-one-workshop-out and leave-one-card-out. If these
stay far below the mapping's own cross-validated accuracy (taxonomy prototypes, cue words and
labelled cards), more labels of the same kind will not lift the mapping much: the text
representation is the limit.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import LeaveOneGroupOut, LeaveOneOut, cross_val_predict
from sklearn.svm import LinearSVC

from pipeline.vectors import centred_unit
from pipeline.records import EMBEDDINGS, embedding_matrix, read_table

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--gold", type=Path, default=REPO.parent / "shared" / "data" / "devset" / "cards.csv")
    args = parser.parse_args()
    embeddings = read_table(args.run_dir / "embed" / "embeddings.parquet", EMBEDDINGS)
    gold = pd.read_csv(args.gold).set_index("card_id").reindex(embeddings["card_id"])
    keep = (gold["category_id"] != "junk").to_numpy()
    X, = centred_unit(embedding_matrix(embeddings).astype(np.float64))
    X, y, workshops = X[keep], gold["category_id"].to_numpy()[keep], gold["workshop_id"].to_numpy()[keep]
    print(f"{len(y)} cards, {len(set(y))} classes, {len(set(workshops))} workshops")
    for name, model in [("logistic regression C=1", LogisticRegression(C=1, max_iter=3000)),
                        ("logistic regression C=10", LogisticRegression(C=10, max_iter=3000)),
                        ("linear SVM C=1", LinearSVC(C=1))]:
        by_workshop = (cross_val_predict(model, X, y, groups=workshops, cv=LeaveOneGroupOut()) == y).mean()
        by_card = (cross_val_predict(model, X, y, cv=LeaveOneOut()) == y).mean()
        print(f"{name:26s} leave one workshop out {by_workshop:.3f}   leave one card out {by_card:.3f}")


if __name__ == "__main__":
    main()
