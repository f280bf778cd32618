"""Scale a seed corpus of cards to N cards for timing runs (1k, 10k, 100k).

    python bench/make_corpus.py --cards 10000 --out /tmp/corpus-10k [--seed-corpus corpora/demo]
    python bench/make_corpus.py --cards 100 --out /tmp/corpus-10k --workshop-prefix ws-extra   # one more workshop

Every generated card is a seed card with a framing, a context and small edits (a dropped word, a lost æ/ø/å), so no two texts are the same: the embedding cache and duplicate detection cannot
make the work vanish. Topics are the seed corpus's topics only, so an added workshop brings no
new topic. Workshops hold `--workshop-size` cards each; output is one CSV per workshop.
Written for benchmarks: the texts are recombinations, not real cards.
"""
from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

FRAMINGS = [
    "", "", "", "Vi mener at", "Fra gruppa:", "Et ønske:", "Viktigst for oss:", "Erfaringen vår er at",
    "Kort sagt:", "Det vi ser er at", "Fra kommunen:", "Hos oss:", "Spørsmål til 2040:", "Ærlig talt:",
    "Flere sa at", "Vår påstand:", "Det handler om at", "Realiteten er at", "Vi tror at", "Som leder ser jeg at",
]
CONTEXTS = [
    "", "", "", "særlig for eldre", "i helse og omsorg", "i skolen", "for små kommuner", "i fylkeskommunen",
    "på tvers av etater", "i distriktene", "i byene", "for barn og unge", "i NAV-kontorene", "i sykehusene",
    "i staten", "i regionen vår", "for frivilligheten", "i næringslivet", "i kulturlivet", "i barnehagene",
    "i byggesaker", "i samferdsel", "i planarbeidet", "i innkjøp", "i tannhelsetjenesten", "i barnevernet",
    "i flyktningtjenesten", "i hjemmetjenesten", "for innvandrere", "i kommunehelsetjenesten", "i vannforsyningen",
    "i brannvesenet", "i bibliotekene", "for næringsdrivende", "i landbruket", "i havbruket", "i reiselivet",
    "for studentene", "i forskningen", "på sykehjemmene", "i legevakta", "for pårørende", "i rusomsorgen",
]
# Lost letters, as a hand or OCR transcription loses them.
OCR = {"ø": "o", "å": "a", "æ": "e"}


def seed_texts(corpus: Path) -> list[tuple[str, str]]:
    """(card_type, text) of every card in the seed corpus (all CSVs with a `text` column)."""
    seeds = []
    for path in sorted(corpus.glob("*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if row.get("text", "").strip():
                    seeds.append((row.get("card_type") or "postit", row["text"].strip()))
    if not seeds:
        raise SystemExit(f"{corpus}: no CSV with a `text` column")
    return seeds


def vary(text: str, rng: random.Random) -> str:
    """One framing or one context (not both), maybe a dropped word or lost letters: about as
    long as the seed card, since embedding time grows with length."""
    words = text.split()
    if len(words) > 4 and rng.random() < 0.7:
        del words[rng.randrange(1, len(words) - 1)]
    text = " ".join(words)
    if rng.random() < 0.3:
        pass  # the seed with a dropped word only
    elif rng.random() < 0.5:
        framing = rng.choice(FRAMINGS[3:])
        text = f"{framing} {text[0].lower()}{text[1:]}" if not text[:2].isupper() else f"{framing} {text}"
    else:
        text = f"{text.rstrip('.!?')} {rng.choice(CONTEXTS[3:])}"
    if rng.random() < 0.15:
        text = "".join(OCR.get(c, c) for c in text)
    return text


def generate(seeds: list[tuple[str, str]], n_cards: int, workshop_size: int, prefix: str, seed: int):
    """Rows (workshop file name, row dict), with unique texts."""
    rng = random.Random(seed)
    seen: set[str] = set()
    rows = []
    for i in range(n_cards):
        workshop = f"{prefix}-{i // workshop_size + 1:04d}"
        card_type, base = seeds[i % len(seeds)]
        for _ in range(100):
            text = vary(base, rng)
            if text not in seen:
                break
        else:  # the combinations are exhausted for this seed: a counter keeps the text unique
            text = f"{vary(base, rng)} ({i})"
        seen.add(text)
        rows.append((workshop, {
            "card_id": f"{workshop}-{i % workshop_size + 1:04d}",
            "workshop_id": workshop,
            "group_id": f"g{(i % workshop_size) % 6 + 1}" if card_type == "postit" else "",
            "card_type": card_type,
            "text": text,
        }))
    return rows


def write(rows, out: Path) -> None:
    """One CSV per workshop under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[dict]] = {}
    for workshop, row in rows:
        by_file.setdefault(workshop, []).append(row)
    for workshop, file_rows in by_file.items():
        with (out / f"{workshop}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(file_rows[0]))
            writer.writeheader()
            writer.writerows(file_rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed-corpus", type=Path, default=Path("corpora/demo"))
    parser.add_argument("--workshop-size", type=int, default=100)
    parser.add_argument("--workshop-prefix", default="ws-bench")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = generate(seed_texts(args.seed_corpus), args.cards, args.workshop_size, args.workshop_prefix, args.seed)
    write(rows, args.out)
    print(f"{len(rows)} cards in {len({w for w, _ in rows})} workshop files under {args.out}")


if __name__ == "__main__":
    main()
