"""Are the theme names readable? An automatic check with stated rules, printed with the result.

    python bench/label_check.py --run-dir RUN_DIR [--sets sib200_nb storting] [--cache-dir .cache]

RUN_DIR is an `innsikt run --out` folder (its report/insights.json is read); the sets are themed as in
bench/theme_bench.py (SIB-200 bokmål without a taxonomy, the Storting titles with the committee
taxonomy). For each, the 10 largest top-level themes and the 10 largest generated names (sub-themes
and emergent topics, named from their keywords) are checked.
"""
from __future__ import annotations

import argparse
import json
import re
import warnings
from pathlib import Path

from spacy.lang.nb.stop_words import STOP_WORDS

from pipeline.norwegian import CONTENT_WORDS, LIGHT_VERBS, compound_reading, readings

RULES = """A name is readable when:
  1. it is a taxonomy theme's official name (the taxonomy names it), or
  2. it has 2 to 5 words ("og" and commas join them), and
  3. no word is a function word: a spaCy nb stop word (less the content words of
     pipeline.norwegian.CONTENT_WORDS), a form the bokmål lexicon knows only as an adverb, or a
     form of a light verb (gjøre, burde, ...), and
  4. every word is in the bokmål full-form lexicon (spacy-lookups-data), is a compound whose
     last part is a noun of that lexicon and whose first part is a word of it
     (pipeline.norwegian.compound_reading: "brukerreise", "utlendingslov"), or is written in at
     least two of the theme's cards (its own wording: nynorsk); a word none of these knows is a
     stray name, an abbreviation or a misreading, and
  5. no word is repeated."""
_WORDS = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


def problems(label: str, official: bool, texts: list[str]) -> list[str]:
    """Why a name is not readable (empty: readable)."""
    if official:
        return []
    words = [w.lower() for w in _WORDS.findall(label)]
    content = [w for w in words if w != "og"]
    found = []
    if not 2 <= len(words) <= 5:
        found.append(f"{len(words)} words")
    for word in content:
        read = readings(word)
        if (word in STOP_WORDS and word not in CONTENT_WORDS) or (read and all(c == "adv" for c, _ in read)) or any(
                c == "verb" and lemma in LIGHT_VERBS for c, lemma in read):
            found.append(f"function word {word!r}")
        elif not read and compound_reading(word) is None and sum(word in text.lower() for text in texts) < 2:
            found.append(f"unknown word {word!r}")
    if len(set(content)) < len(content):
        found.append("repeated word")
    return found


def check(name: str, themes: list[dict]) -> None:
    """themes: dicts with label, size, official (bool), generated (bool), texts (the theme's cards)."""
    for title, pool in (("10 largest top-level themes", [t for t in themes if t["top"]]),
                        ("10 largest generated names (sub-themes, emergent topics)",
                         [t for t in themes if t["generated"]])):
        largest = sorted(pool, key=lambda t: (-t["size"], t["label"]))[:10]
        readable = 0
        print(f"\n{name}: {title}")
        for theme in largest:
            found = problems(theme["label"], theme["official"], theme["texts"])
            readable += not found
            print(f"  {'ok ' if not found else 'NO '} {theme['label']!r} ({theme['size']} cards)"
                  + (f": {'; '.join(found)}" if found else ""))
        print(f"  readable: {readable} of {len(largest)}")


def from_insights(path: Path) -> list[dict]:
    insights = json.loads(path.read_text(encoding="utf-8"))
    official = {t["name"] for c in insights["taxonomy"]["categories"] for t in c["themes"]}
    cards = insights["cards"]
    themes = []
    for theme in insights["themes"]:
        is_official = theme["taxonomy_theme_id"] is not None and theme["label"] in official
        texts = [c["text"] for c in cards if c["theme_id"] == theme["theme_id"]]
        themes.append({"label": theme["label"], "size": theme["size"], "official": is_official, "top": True,
                       "generated": not is_official and not theme["subthemes"], "texts": texts})
        for sub in theme["subthemes"]:
            texts = [c["text"] for c in cards if c["subtheme_id"] == sub["theme_id"]]
            themes.append({"label": sub["label"], "size": sub["size"], "official": False, "top": False,
                           "generated": True, "texts": texts})
    return themes


def from_bench(names: list[str], cache_dir: Path) -> list[tuple[str, list[dict]]]:
    import theme_bench
    from pipeline.embed import make_backend
    from pipeline.params import load_params
    from pipeline.taxonomy import load_taxonomy

    params = load_params(theme_bench.REPO / "configs" / "params.yaml")
    backend = make_backend(params.embed.backend, cache_dir=cache_dir)
    found = []
    for bench in theme_bench.load_sets(names):
        vectors = theme_bench.embed(bench.texts, backend, cache_dir)
        _, table, card_map = theme_bench.innsikt_themes(bench, vectors, params, backend, cache_dir,
                                                        with_taxonomy=bench.taxonomy is not None)
        official = {t.name for t in load_taxonomy(bench.taxonomy).themes} if bench.taxonomy else set()
        text_of = dict(zip(bench.ids, bench.texts))
        themes = []
        for row in table.itertuples(index=False):
            column = "theme_id" if row.parent_id is None or row.parent_id != row.parent_id else "subtheme_id"
            texts = [text_of[c] for c in card_map.loc[card_map[column] == row.theme_id, "card_id"]]
            is_official = row.label in official and row.cluster < 0
            has_children = (table["parent_id"] == row.theme_id).any()
            themes.append({"label": row.label, "size": int(row.size), "official": is_official,
                           "top": column == "theme_id", "generated": not is_official and not has_children,
                           "texts": texts})
        found.append((bench.name, themes))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, action="append", default=[])
    parser.add_argument("--sets", nargs="*", default=["sib200_nb", "storting"])
    parser.add_argument("--cache-dir", type=Path, default=Path(__file__).resolve().parents[1] / ".cache")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(RULES)
    for run_dir in args.run_dir:
        check(str(run_dir), from_insights(run_dir / "report" / "insights.json"))
    for name, themes in from_bench(args.sets, args.cache_dir) if args.sets else []:
        check(name, themes)


if __name__ == "__main__":
    main()
