"""How readable are a run's theme labels? Dictionary forms and function words among label words.

    python bench/label_quality.py RUN_DIR [RUN_DIR ...]

RUN_DIR is an `innsikt run --out` folder (or `outputs`); its `cluster/topics.parquet` is read.
For every item of every label (items are separated by commas):
- key phrase: two words, shown as the cards write them ("ettårige budsjetter");
- dictionary form: the word is a lemma of the bokmål full-form lexicon (spacy-lookups-data),
  so "budsjett" counts and "budsjettene" does not;
- function word: a spaCy nb stop word (less the content words of `pipeline.norwegian.CONTENT_WORDS`), a form the lexicon knows only as an adverb, or a form
  of a light verb ("burde", "gjøres").
Words the lexicon lacks entirely (nynorsk, new compounds) are counted apart. A noun that is
also a form of a light verb ("bruker": user, uses) counts as a function word: the figure errs
on the strict side. Prints each label
and the shares per run, so two runs (say, before and after a change) can be compared.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from spacy.lang.nb.stop_words import STOP_WORDS

from pipeline.norwegian import CONTENT_WORDS, LIGHT_VERBS, lexicon, readings


def word_kind(word: str, lemmas: frozenset[str]) -> str:
    if " " in word:
        return "key phrase"
    found = readings(word)
    if (word in STOP_WORDS and word not in CONTENT_WORDS) or (found and all(c == "adv" for c, _ in found)) or any(
            c == "verb" and lemma in LIGHT_VERBS for c, lemma in found):
        return "function word"
    if word in lemmas:
        return "dictionary form"
    return "inflected form" if found else "not in lexicon"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args()
    lemmas = frozenset(lemma for table in lexicon().values() for forms in table.values() for lemma in forms)
    for run_dir in args.run_dirs:
        labels = pd.read_parquet(run_dir / "cluster" / "topics.parquet")["label"].tolist()
        kinds = pd.Series([word_kind(item, lemmas) for label in labels for item in label.split(", ")])
        print(f"\n{run_dir}: {len(labels)} labels, {len(kinds)} items")
        for label in labels:
            print(f"  {label}")
        for kind, share in kinds.value_counts(normalize=True).sort_index().items():
            print(f"  {kind:16s} {share:.2f}")


if __name__ == "__main__":
    main()
