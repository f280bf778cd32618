"""Benchmark for `pipeline.normalise.repair_text`: how well it restores lost or misread æ/ø/å.

    python bench/repair_bench.py [--seed 0] [--rate 0.5] [--limit N] [--data PATH]

What it measures
----------------
Real Norwegian sentences are damaged the way workshop-card transcriptions are damaged, then
repaired, and compared word by word with the original:

* damaged bokmål: word accuracy before repair (damaged vs. original) and after
  (repair_text(damaged) vs. original), over all words, over the words that contain æ/ø/å in the
  original, and over the damaged words only; sentences fully restored; results per confusion class;
* clean bokmål and clean nynorsk: the share of undamaged sentences that repair_text changes at all
  (must be 0 -- a repair that rewrites correct text does harm), with examples;
* damaged nynorsk: word accuracy before/after (informative; the repair targets bokmål);
* sentences per second of repair_text;
* the most frequent residual errors after repair on damaged bokmål.

Word accuracy is 1 - (word-level Levenshtein distance / number of reference words), summed over the
corpus. Both sides are tokenised the same way: split on whitespace, strip surrounding punctuation,
drop tokens that were punctuation only; comparison is case-sensitive (repair must keep case). A word
broken across a line ("innbygger- involvering") is one reference word, so an unjoined break costs a
substitution plus an insertion.

Damage model
------------
Every occurrence of æ, ø, å (and Æ, Ø, Å, case kept) is damaged independently with probability
--rate, the replacement drawn from confusion weights taken from what real OCR and keyboards do to
Norwegian text: OCR of a Norwegian report gave "lgsninger", "gnske"/"onske", "pa", "a"/"&" for "å",
"neeringslivet", "dreftet", "hgre"; people on keyboards without Norwegian letters type aa/oe/ae
("maa", "stoerre", "vaere"); handwriting loses letters altogether.

    ø -> o .45  oe .15  g .15  e .15  0 .05  (dropped) .05
    å -> a .55  aa .20  d .10  & .05  (dropped) .10
    æ -> e .35  ae .30  ee .20  z .05  (dropped) .10

With probability 0.02 per sentence one long word (>= 10 letters) is broken across a line with a
hyphen, split at least 4 letters from each end: "innbyggerinvolvering" -> "innbygger- involvering".
Each sentence gets its own random.Random seeded from "<seed>:<sentence id>", so the damage to a
sentence does not depend on --limit or on which other sentences are loaded: same seed, same numbers.

Data
----
../shared/data/external/sib200_no/sib200_no.csv (columns id,text,label,source; ids nob_Latn-* are
bokmål, nno_Latn-* nynorsk): the Norwegian part of SIB-200 (Adelani et al., 2023,
https://github.com/dadelani/sib-200, Apache-2.0), whose sentences come from FLORES-200 (NLLB Team,
Meta AI, CC BY-SA 4.0).
"""
from __future__ import annotations

import argparse
import csv
import difflib
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.normalise import repair_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "external" / "sib200_no" / "sib200_no.csv"

DROPPED = ""
CONFUSION_WEIGHTS: dict[str, tuple[tuple[str, float], ...]] = {
    "ø": (("o", 0.45), ("oe", 0.15), ("g", 0.15), ("e", 0.15), ("0", 0.05), (DROPPED, 0.05)),
    "å": (("a", 0.55), ("aa", 0.20), ("&", 0.05), ("d", 0.10), (DROPPED, 0.10)),
    "æ": (("e", 0.35), ("ae", 0.30), ("ee", 0.20), ("z", 0.05), (DROPPED, 0.10)),
}
HYPHEN_BREAK_RATE = 0.02
HYPHEN_MIN_WORD = 10
HYPHEN_MIN_SIDE = 4
HYPHEN_CLASS = "hyphen break"

PUNCTUATION = "".join(chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum()) + "«»“”„‘’‚…–—·•‹›¡¿\u200b\u00ad"
TARGET_WORD_ACCURACY = 0.99
TOP_ERRORS = 15
MAX_EXAMPLES = 10


# ---------------------------------------------------------------------------------------- data

@dataclass(frozen=True)
class Sentence:
    id: str
    text: str

    @property
    def language(self) -> str:
        return self.id.split("-", 1)[0]


def load_sentences(path: Path, limit: int | None) -> dict[str, list[Sentence]]:
    """Bokmål and nynorsk sentences sorted by id; --limit keeps the first N of each."""
    if not path.is_file():
        sys.exit(f"repair_bench: data file not found: {path}\n"
                 f"  expected the SIB-200 Norwegian extract (id,text,label,source); pass --data PATH.")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"id", "text"} - set(reader.fieldnames or ())
        if missing:
            sys.exit(f"repair_bench: {path} lacks column(s) {sorted(missing)}")
        rows = [Sentence(row["id"], row["text"]) for row in reader]
    by_language = {
        language: sorted((s for s in rows if s.language == language), key=lambda s: s.id)
        for language in ("nob_Latn", "nno_Latn")
    }
    if not all(by_language.values()):
        sys.exit(f"repair_bench: {path} has no nob_Latn or no nno_Latn sentences")
    if limit is not None:
        by_language = {language: sentences[:limit] for language, sentences in by_language.items()}
    return by_language


# ------------------------------------------------------------------------------ damage model

@dataclass
class DamagedWord:
    index: int  # position among the original's whitespace tokens
    original: str
    damaged: str
    classes: list[str]  # e.g. ["ø->g", "å->aa"], plus HYPHEN_CLASS


@dataclass
class DamagedSentence:
    id: str
    original: str
    damaged: str
    words: list[DamagedWord] = field(default_factory=list)

    @property
    def is_damaged(self) -> bool:
        return self.damaged != self.original


def _replacement(letter: str, rng: random.Random, all_caps: bool) -> tuple[str, str]:
    """A damaged form of one æ/ø/å (any case) and its class name, e.g. ("Oe", "ø->oe")."""
    lower = letter.lower()
    forms, weights = zip(*CONFUSION_WEIGHTS[lower])
    form = rng.choices(forms, weights)[0]
    name = f"{lower}->{form or '(dropped)'}"
    if letter.isupper():
        form = form.upper() if all_caps else form[:1].upper() + form[1:]
    return form, name


def _damage_token(token: str, rng: random.Random, rate: float) -> tuple[str, list[str]]:
    letters = [c for c in token if c.isalpha()]
    all_caps = len(letters) > 1 and all(c.isupper() for c in letters)
    out, classes = [], []
    for char in token:
        if char.lower() in CONFUSION_WEIGHTS and rng.random() < rate:
            form, name = _replacement(char, rng, all_caps)
            out.append(form)
            classes.append(name)
        else:
            out.append(char)
    return "".join(out), classes


def _hyphen_break(token: str, rng: random.Random) -> str | None:
    """'innbyggerinvolvering,' -> 'innbygger- involvering,'; None if the core is not one long word."""
    core = token.strip(PUNCTUATION)
    if len(core) < HYPHEN_MIN_WORD or not core.isalpha():
        return None
    start = token.index(core)
    cut = rng.randint(HYPHEN_MIN_SIDE, len(core) - HYPHEN_MIN_SIDE)
    return token[:start] + core[:cut] + "- " + core[cut:] + token[start + len(core):]


def damage(sentence: Sentence, seed: int, rate: float) -> DamagedSentence:
    rng = random.Random(f"{seed}:{sentence.id}")
    # keep the original separators; tokens are the non-whitespace runs, as str.split() sees them
    originals = sentence.text.split()
    damaged_tokens: list[str] = []
    words: dict[int, DamagedWord] = {}
    for index, token in enumerate(originals):
        damaged, classes = _damage_token(token, rng, rate)
        damaged_tokens.append(damaged)
        if classes:
            words[index] = DamagedWord(index, token, damaged, classes)
    if rng.random() < HYPHEN_BREAK_RATE:
        eligible = [i for i, token in enumerate(originals)
                    if len(token.strip(PUNCTUATION)) >= HYPHEN_MIN_WORD and token.strip(PUNCTUATION).isalpha()]
        if eligible:
            index = rng.choice(eligible)
            broken = _hyphen_break(damaged_tokens[index], rng)
            if broken is not None:
                damaged_tokens[index] = broken
                word = words.setdefault(index, DamagedWord(index, originals[index], "", []))
                word.damaged = broken
                word.classes.append(HYPHEN_CLASS)
    return DamagedSentence(sentence.id, sentence.text, _rejoin(sentence.text, damaged_tokens),
                           sorted(words.values(), key=lambda w: w.index))


def _rejoin(template: str, tokens: list[str]) -> str:
    """Put new tokens back between the template's original whitespace."""
    out, position = [], 0
    for original, new in zip(template.split(), tokens):
        start = template.index(original, position)
        out.append(template[position:start])
        out.append(new)
        position = start + len(original)
    out.append(template[position:])
    return "".join(out)


# --------------------------------------------------------------------------------- metrics

def tokens(text: str) -> list[tuple[int, str]]:
    """(whitespace-token index, token without surrounding punctuation), punctuation-only tokens dropped."""
    return [(i, core) for i, raw in enumerate(text.split()) if (core := raw.strip(PUNCTUATION))]


def align(ref: list[str], hyp: list[str]) -> tuple[int, list[tuple[int | None, int | None]]]:
    """Word-level Levenshtein distance and one optimal alignment as (ref index, hyp index) pairs."""
    rows, cols = len(ref) + 1, len(hyp) + 1
    dist = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        dist[i][0] = i
    for j in range(cols):
        dist[0][j] = j
    for i in range(1, rows):
        for j in range(1, cols):
            dist[i][j] = min(dist[i - 1][j] + 1, dist[i][j - 1] + 1,
                             dist[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs: list[tuple[int | None, int | None]] = []
    i, j = len(ref), len(hyp)
    # Walking back, prefer match, then insertion, then substitution: an extra hypothesis token then
    # lands after the reference word it came from ("innbygger- involvering" = sub + insertion).
    while i or j:
        if i and j and ref[i - 1] == hyp[j - 1] and dist[i][j] == dist[i - 1][j - 1]:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif j and dist[i][j] == dist[i][j - 1] + 1:
            pairs.append((None, j - 1))
            j -= 1
        elif i and j and dist[i][j] == dist[i - 1][j - 1] + 1:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i and dist[i][j] == dist[i - 1][j] + 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    pairs.reverse()
    return dist[-1][-1], pairs


@dataclass
class Comparison:
    """One hypothesis against its reference."""
    ref_words: int
    edits: int
    correct: list[bool]  # per reference token: aligned to an identical hypothesis token
    errors: list[tuple[int, str, str]]  # (reference position, expected, got) -- got "" when deleted


def compare(reference: str, hypothesis: str) -> Comparison:
    ref = [core for _, core in tokens(reference)]
    hyp_tokens = tokens(hypothesis)
    hyp = [core for _, core in hyp_tokens]
    hyp_raw = hypothesis.split()
    shown = [hyp_raw[i] if hyp_raw[i].endswith("-") else core for i, core in hyp_tokens]  # keep "innbygger-"
    edits, pairs = align(ref, hyp)
    correct = [False] * len(ref)
    got: dict[int, list[str]] = defaultdict(list)
    last_ref = None
    leading: list[str] = []  # insertions before the first reference token
    for r, h in pairs:
        if r is not None:
            last_ref = r
            if h is not None:
                got[r].append(shown[h])
                correct[r] = ref[r] == hyp[h]
            else:
                got[r]  # noqa: B018 -- a deletion: expected word, nothing got
        elif last_ref is None:
            leading.append(shown[h])
        else:  # an insertion belongs with the reference word before it ("innbygger- involvering")
            got[last_ref].append(shown[h])
            correct[last_ref] = False
    if leading and ref:
        got[0][:0] = leading
        correct[0] = False
    errors = [(r, ref[r], " ".join(got[r])) for r in range(len(ref)) if not correct[r]]
    return Comparison(len(ref), edits, correct, errors)


@dataclass
class Tally:
    """Counts summed over sentences; shares computed on print."""
    ref_words: int = 0
    edits: int = 0
    special_words: int = 0  # reference words containing æ/ø/å
    special_correct: int = 0
    damaged_words: int = 0
    damaged_correct: int = 0
    sentences: int = 0
    exact: int = 0

    def add(self, comparison: Comparison, special: list[bool], damaged: list[bool]) -> None:
        self.ref_words += comparison.ref_words
        self.edits += comparison.edits
        self.sentences += 1
        self.exact += comparison.edits == 0
        for ok, is_special, is_damaged in zip(comparison.correct, special, damaged):
            self.special_words += is_special
            self.special_correct += ok and is_special
            self.damaged_words += is_damaged
            self.damaged_correct += ok and is_damaged

    @property
    def word_accuracy(self) -> float:
        return 1 - self.edits / self.ref_words if self.ref_words else 1.0


@dataclass
class DamagedResult:
    language: str
    sentences: int = 0
    damaged_sentences: int = 0
    damaged_word_count: int = 0
    before: Tally = field(default_factory=Tally)  # all sentences
    after: Tally = field(default_factory=Tally)
    before_damaged: Tally = field(default_factory=Tally)  # only sentences the damage model changed
    after_damaged: Tally = field(default_factory=Tally)
    per_class: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # [words, restored]
    residual: Counter = field(default_factory=Counter)  # (expected, got) -> count
    residual_inputs: dict[tuple[str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))
    seconds: float = 0.0


@dataclass
class CleanResult:
    language: str
    sentences: int = 0
    changed: list[tuple[str, str, str]] = field(default_factory=list)  # (id, original, repaired)
    seconds: float = 0.0


def timed_repair(text: str) -> tuple[str, float]:
    start = time.perf_counter()
    repaired = repair_text(text)
    return repaired, time.perf_counter() - start


def run_damaged(language: str, sentences: list[Sentence], seed: int, rate: float) -> DamagedResult:
    result = DamagedResult(language)
    for sentence in sentences:
        damaged = damage(sentence, seed, rate)
        repaired, seconds = timed_repair(damaged.damaged)
        result.seconds += seconds
        result.sentences += 1
        result.damaged_sentences += damaged.is_damaged
        result.damaged_word_count += len(damaged.words)

        ref_tokens = tokens(damaged.original)
        special = [any(c in core.lower() for c in "æøå") for _, core in ref_tokens]
        classes_by_index = {w.index: w.classes for w in damaged.words}
        word_classes = [classes_by_index.get(index, []) for index, _ in ref_tokens]
        is_damaged = [bool(c) for c in word_classes]
        before = compare(damaged.original, damaged.damaged)
        after = compare(damaged.original, repaired)
        result.before.add(before, special, is_damaged)
        result.after.add(after, special, is_damaged)
        if damaged.is_damaged:
            result.before_damaged.add(before, special, is_damaged)
            result.after_damaged.add(after, special, is_damaged)
        for position, classes in enumerate(word_classes):
            for name in set(classes):
                result.per_class[name][0] += 1
                result.per_class[name][1] += after.correct[position]
        damaged_input = {w.index: w.damaged for w in damaged.words}
        for position, expected, got in after.errors:
            key = (expected, got)
            result.residual[key] += 1
            source = damaged_input.get(ref_tokens[position][0], expected)
            result.residual_inputs[key][source.strip(PUNCTUATION) or source or "(dropped)"] += 1
    return result


def run_clean(language: str, sentences: list[Sentence]) -> CleanResult:
    result = CleanResult(language)
    for sentence in sentences:
        repaired, seconds = timed_repair(sentence.text)
        result.seconds += seconds
        result.sentences += 1
        if repaired != sentence.text:
            result.changed.append((sentence.id, sentence.text, repaired))
    return result


# ---------------------------------------------------------------------------------- report

def word_changes(original: str, repaired: str) -> list[str]:
    """The changed word spans, e.g. ["vere -> være"]."""
    a, b = original.split(), repaired.split()
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op != "equal":
            parts.append(f"{' '.join(a[i1:i2]) or '∅'} -> {' '.join(b[j1:j2]) or '∅'}")
    if not parts:  # whitespace or invisible-character change only
        parts.append(f"{original!r} -> {repaired!r}")
    return parts


def share(numerator: int, denominator: int) -> str:
    return f"{numerator / denominator:.4f}" if denominator else "   -  "


def print_damaged(result: DamagedResult, name: str) -> None:
    b, a, bd, ad = result.before, result.after, result.before_damaged, result.after_damaged
    print(f"\nDamaged {name}: {result.sentences} sentences, {result.damaged_sentences} changed by the "
          f"damage model, {result.damaged_word_count} damaged words")
    print(f"  {'metric':<44}{'before':>10}{'after':>10}")
    rows = [
        ("word accuracy, all sentences", f"{b.word_accuracy:.4f}", f"{a.word_accuracy:.4f}"),
        ("word accuracy, damaged sentences only", f"{bd.word_accuracy:.4f}", f"{ad.word_accuracy:.4f}"),
        (f"words with æ/ø/å in original ({b.special_words})", share(b.special_correct, b.special_words),
         share(a.special_correct, a.special_words)),
        (f"damaged words only ({b.damaged_words})", share(b.damaged_correct, b.damaged_words),
         share(a.damaged_correct, a.damaged_words)),
        ("damaged sentences fully restored", f"{bd.exact}/{bd.sentences}", f"{ad.exact}/{ad.sentences}"),
        ("all sentences exactly right", f"{b.exact}/{b.sentences}", f"{a.exact}/{a.sentences}"),
    ]
    for label, before, after in rows:
        print(f"  {label:<44}{before:>10}{after:>10}")


def print_classes(result: DamagedResult) -> None:
    print("\nPer confusion class, damaged bokmål (a word with several damages counts in each class)")
    print(f"  {'class':<16}{'words':>7}{'restored':>10}{'share':>8}")
    for name in sorted(result.per_class, key=lambda n: (n == HYPHEN_CLASS, n[0], -result.per_class[n][0])):
        words, restored = result.per_class[name]
        print(f"  {name:<16}{words:>7}{restored:>10}{share(restored, words):>8}")


def print_residual(result: DamagedResult) -> None:
    print(f"\nTop {TOP_ERRORS} residual errors after repair, damaged bokmål: expected -> got (count)  [damaged input]")
    if not result.residual:
        print("  (none)")
    for (expected, got), count in result.residual.most_common(TOP_ERRORS):
        inputs = ", ".join(f"{form}×{n}" if n > 1 else form
                           for form, n in result.residual_inputs[(expected, got)].most_common(3))
        print(f"  {expected} -> {got or '∅'} ({count})  [{inputs}]")


def print_changed(result: CleanResult, name: str) -> None:
    print(f"\nClean {name} sentences changed by repair_text: {len(result.changed)}/{result.sentences}")
    for sentence_id, original, repaired in result.changed[:MAX_EXAMPLES]:
        print(f"  {sentence_id}: {'; '.join(word_changes(original, repaired))}")
    if len(result.changed) > MAX_EXAMPLES:
        print(f"  ... and {len(result.changed) - MAX_EXAMPLES} more")
        changes = Counter(change for _, original, repaired in result.changed
                          for change in word_changes(original, repaired))
        print(f"  most frequent word changes ({sum(changes.values())} in all): "
              + ", ".join(f"{change} ({count})" for change, count in changes.most_common(TOP_ERRORS)))


def print_timing(results: list[tuple[str, int, float]]) -> None:
    print("\nTiming of repair_text (in run order; the first pass starts with cold caches)")
    print(f"  {'pass':<22}{'sentences':>10}{'seconds':>10}{'sent/s':>10}")
    total_n = total_s = 0.0
    for name, n, seconds in results:
        print(f"  {name:<22}{n:>10}{seconds:>10.2f}{n / seconds if seconds else float('inf'):>10.0f}")
        total_n += n
        total_s += seconds
    print(f"  {'total':<22}{int(total_n):>10}{total_s:>10.2f}{total_n / total_s if total_s else float('inf'):>10.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.5, help="probability that each æ/ø/å is damaged")
    parser.add_argument("--limit", type=int, default=None, help="first N sentences of each language (by id)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if not 0 <= args.rate <= 1:
        parser.error("--rate must be in [0, 1]")

    data = load_sentences(args.data, args.limit)
    bokmal, nynorsk = data["nob_Latn"], data["nno_Latn"]
    print(f"repair_bench  seed={args.seed} rate={args.rate} limit={args.limit or '-'}  "
          f"data={args.data.resolve()}")
    print(f"sentences: bokmål {len(bokmal)}, nynorsk {len(nynorsk)}")

    damaged_nob = run_damaged("nob_Latn", bokmal, args.seed, args.rate)
    clean_nob = run_clean("nob_Latn", bokmal)
    clean_nno = run_clean("nno_Latn", nynorsk)
    damaged_nno = run_damaged("nno_Latn", nynorsk, args.seed, args.rate)

    print_damaged(damaged_nob, "bokmål")
    print_damaged(damaged_nno, "nynorsk (informative)")
    print_classes(damaged_nob)
    print_timing([("damaged bokmål", damaged_nob.sentences, damaged_nob.seconds),
                  ("clean bokmål", clean_nob.sentences, clean_nob.seconds),
                  ("clean nynorsk", clean_nno.sentences, clean_nno.seconds),
                  ("damaged nynorsk", damaged_nno.sentences, damaged_nno.seconds)])
    print_residual(damaged_nob)
    print_changed(clean_nob, "bokmål")
    print_changed(clean_nno, "nynorsk")

    accuracy = damaged_nob.after.word_accuracy
    targets = [
        (f"word_accuracy_after={accuracy:.4f} (>={TARGET_WORD_ACCURACY})", accuracy >= TARGET_WORD_ACCURACY),
        (f"clean_changed={len(clean_nob.changed)}/{clean_nob.sentences} (=0)", not clean_nob.changed),
        (f"nynorsk_clean_changed={len(clean_nno.changed)}/{clean_nno.sentences} (=0)", not clean_nno.changed),
    ]
    print("\nTARGETS: " + " ".join(f"{text} {'PASS' if ok else 'FAIL'}" for text, ok in targets)
          + f"  => {'PASS' if all(ok for _, ok in targets) else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
