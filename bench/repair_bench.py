"""Benchmark for `pipeline.repair.repair_text`: how well it restores lost or misread æ/ø/å.

    python bench/repair_bench.py [--seed 0] [--word-rate R] [--limit N] [--data PATH]

What it measures
----------------
Real Norwegian sentences are damaged the way a real OCR transcription of a workshop report
damaged them (issue 16), then repaired, and compared word by word with the original:

* damaged bokmål and damaged nynorsk: word accuracy before repair (damaged vs. original) and
  after (repair_text(damaged) vs. original), over all words, over the words that contain æ/ø/å
  in the original, over the damaged words only, and over damaged compounds (words wordfreq
  lacks: "søknadsløsning"); sentences fully restored; results per confusion class;
* clean bokmål and clean nynorsk: the share of undamaged sentences that repair_text changes at
  all (must be 0 -- a repair that rewrites correct text does harm), with examples;
* text that is not Norwegian or not prose: the 2,811 German Polis statements and the 614
  Storting case titles ("§ 120 a", "NOU 2020: 6") -- words changed (must be 0);
* sentences per second of repair_text;
* the most frequent residual errors after repair on damaged bokmål.

Word accuracy is 1 - (word-level Levenshtein distance / number of reference words), summed over the
corpus. Both sides are tokenised the same way: split on whitespace, strip surrounding punctuation,
drop tokens that were punctuation only; comparison is case-sensitive (repair must keep case). A word
broken across a line ("innbygger- involvering") is one reference word, so an unjoined break costs a
substitution plus an insertion.

Damage model
------------
The confusion table measured on real OCR lines of a workshop report (96 of 535 words damaged):
share of damaged words by damage (true -> read)

    å -> a 54%   ø -> g 14%   ø -> e 12.5%   ø -> o 9%   æ -> ee 6%   ø -> a 3%
    ø -> err 2%  å -> d 1%    æ -> ae 1%

and about 3% of damaged words carry two damaged letters. A word with æ/ø/å is damaged with
probability --word-rate; by default the rate that gives the measured share of damaged words
(96/535 = 17.9% of all words), capped at 1: SIB-200 has fewer words with æ/ø/å (12%) than the
workshop lines, so by default every such word is damaged. A damaged word gets one damage drawn
from the table restricted to the letters it has (at one occurrence of that letter, chosen
uniformly); a word with two or more æ/ø/å gets a second damage with the probability that makes
3% of damaged words doubly damaged. Compounds are damaged like any word. Case is kept.

With probability 0.02 per sentence one long word (>= 10 letters) is broken across a line with a
hyphen, split at least 4 letters from each end: "innbyggerinvolvering" -> "innbygger- involvering".
Each sentence gets its own random.Random seeded from "<seed>:<sentence id>", so the damage to a
sentence does not depend on --limit or on which other sentences are loaded: same seed, same numbers.

Data
----
../shared/data/external/sib200_no/sib200_no.csv (columns id,text,label,source; ids nob_Latn-* are
bokmål, nno_Latn-* nynorsk): the Norwegian part of SIB-200 (Adelani et al., 2023,
https://github.com/dadelani/sib-200, Apache-2.0), whose sentences come from FLORES-200 (NLLB Team,
Meta AI, CC BY-SA 4.0). ../shared/data/external/polis_klimarat_de (Polis open data, CC BY 4.0) and
stortinget_cases_2019_2020 (data.stortinget.no, NLOD). Nothing of these is trained on: the
repair's word evidence is wordfreq, the bokmål full-form lexicon and the nynorsk hunspell list.
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

from wordfreq import zipf_frequency

from pipeline.repair import repair_text

ROOT = Path(__file__).resolve().parents[1]
EXTERNAL = ROOT / ".." / "shared" / "data" / "external"
DEFAULT_DATA = EXTERNAL / "sib200_no" / "sib200_no.csv"
POLIS = EXTERNAL / "polis_klimarat_de" / "polis_klimarat_de.csv"
STORTING = EXTERNAL / "stortinget_cases_2019_2020" / "stortinget_cases_2019_2020.csv"

# Real OCR damage (issue 16): (true letter, read as) -> share of damaged words, in percent.
REAL_DAMAGE: dict[tuple[str, str], float] = {
    ("å", "a"): 54, ("ø", "g"): 14, ("ø", "e"): 12.5, ("ø", "o"): 9, ("æ", "ee"): 6, ("ø", "a"): 3,
    ("ø", "err"): 2, ("å", "d"): 1, ("æ", "ae"): 1,
}
TWO_DAMAGED_SHARE = 0.03  # of damaged words
MEASURED_DAMAGED_WORDS = 96 / 535  # of all words, on the real OCR lines
SPECIAL = "æøå"
HYPHEN_BREAK_RATE = 0.02
HYPHEN_MIN_WORD = 10
HYPHEN_MIN_SIDE = 4
HYPHEN_CLASS = "hyphen break"

PUNCTUATION = "".join(chr(c) for c in range(0x21, 0x7F) if not chr(c).isalnum()) + "«»“”„‘’‚…–—·•‹›¡¿\u200b\u00ad"
TARGET_WORD_ACCURACY = 0.99
TARGET_NYNORSK_ACCURACY = 0.98
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


@dataclass(frozen=True)
class DamageModel:
    word_rate: float  # probability that a word with æ/ø/å is damaged
    second_rate: float  # probability that a damaged word with two or more æ/ø/å gets a second damage


def damage_model(sentences: list[Sentence], word_rate: float | None) -> DamageModel:
    """The rates that reproduce the measured shares on these sentences."""
    words = [core for s in sentences for _, core in tokens(s.text)]
    special = [w for w in words if any(c in w.lower() for c in SPECIAL)]
    multi = [w for w in special if sum(c in SPECIAL for c in w.lower()) >= 2]
    if word_rate is None:
        word_rate = min(1.0, MEASURED_DAMAGED_WORDS * len(words) / max(1, len(special)))
    second = min(1.0, TWO_DAMAGED_SHARE * len(special) / max(1, len(multi)))
    return DamageModel(word_rate, second)


def _damage_once(chars: list[str], rng: random.Random, all_caps: bool) -> str | None:
    """Damage one æ/ø/å of `chars` in place (a position may become several letters); its class name."""
    positions = [i for i, c in enumerate(chars) if c.lower() in SPECIAL]
    present = {chars[i].lower() for i in positions}
    kinds = [(k, w) for k, w in REAL_DAMAGE.items() if k[0] in present]
    if not kinds:
        return None
    (letter, form), = rng.choices([k for k, _ in kinds], [w for _, w in kinds])
    position = rng.choice([i for i in positions if chars[i].lower() == letter])
    if chars[position].isupper():
        form = form.upper() if all_caps else form[:1].upper() + form[1:]
    chars[position] = form
    return f"{letter}->{form.lower()}"


def _damage_token(token: str, rng: random.Random, model: DamageModel) -> tuple[str, list[str]]:
    chars = list(token)
    if not any(c.lower() in SPECIAL for c in chars) or rng.random() >= model.word_rate:
        return token, []
    letters = [c for c in token if c.isalpha()]
    all_caps = len(letters) > 1 and all(c.isupper() for c in letters)
    classes = [_damage_once(chars, rng, all_caps)]
    if sum(c.lower() in SPECIAL for c in chars) >= 1 and rng.random() < model.second_rate:
        classes.append(_damage_once(chars, rng, all_caps))
    return "".join(chars), [c for c in classes if c]


def _hyphen_break(token: str, rng: random.Random) -> str | None:
    """'innbyggerinvolvering,' -> 'innbygger- involvering,'; None if the core is not one long word."""
    core = token.strip(PUNCTUATION)
    if len(core) < HYPHEN_MIN_WORD or not core.isalpha():
        return None
    start = token.index(core)
    cut = rng.randint(HYPHEN_MIN_SIDE, len(core) - HYPHEN_MIN_SIDE)
    return token[:start] + core[:cut] + "- " + core[cut:] + token[start + len(core):]


def damage(sentence: Sentence, seed: int, model: DamageModel) -> DamagedSentence:
    rng = random.Random(f"{seed}:{sentence.id}")
    # keep the original separators; tokens are the non-whitespace runs, as str.split() sees them
    originals = sentence.text.split()
    damaged_tokens: list[str] = []
    words: dict[int, DamagedWord] = {}
    for index, token in enumerate(originals):
        damaged, classes = _damage_token(token, rng, model)
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
    compound_words: int = 0  # damaged reference words that wordfreq lacks: mostly compounds
    compound_correct: int = 0
    sentences: int = 0
    exact: int = 0

    def add(self, comparison: Comparison, special: list[bool], damaged: list[bool], compound: list[bool]) -> None:
        self.ref_words += comparison.ref_words
        self.edits += comparison.edits
        self.sentences += 1
        self.exact += comparison.edits == 0
        for ok, is_special, is_damaged in zip(comparison.correct, special, damaged):
            self.special_words += is_special
            self.special_correct += ok and is_special
            self.damaged_words += is_damaged
            self.damaged_correct += ok and is_damaged
        for ok, is_damaged, is_compound in zip(comparison.correct, damaged, compound):
            self.compound_words += is_damaged and is_compound
            self.compound_correct += ok and is_damaged and is_compound

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


def run_damaged(language: str, sentences: list[Sentence], seed: int, model: DamageModel) -> DamagedResult:
    result = DamagedResult(language)
    for sentence in sentences:
        damaged = damage(sentence, seed, model)
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
        compound = [zipf_frequency(core.lower(), "nb") == 0 for _, core in ref_tokens]
        before = compare(damaged.original, damaged.damaged)
        after = compare(damaged.original, repaired)
        result.before.add(before, special, is_damaged, compound)
        result.after.add(after, special, is_damaged, compound)
        if damaged.is_damaged:
            result.before_damaged.add(before, special, is_damaged, compound)
            result.after_damaged.add(after, special, is_damaged, compound)
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


@dataclass
class OtherResult:
    name: str
    texts: int = 0
    words: int = 0
    changes: Counter = field(default_factory=Counter)  # "jeder -> jøder" -> count
    seconds: float = 0.0


def load_texts(path: Path) -> list[str]:
    if not path.is_file():
        sys.exit(f"repair_bench: data file not found: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def run_other(name: str, texts: list[str]) -> OtherResult:
    """Texts repair must leave alone: every changed word counts."""
    result = OtherResult(name)
    for text in texts:
        repaired, seconds = timed_repair(text)
        result.seconds += seconds
        result.texts += 1
        result.words += len(text.split())
        if repaired != text:
            result.changes.update(word_changes(text, repaired))
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
        (f"damaged compounds, not in wordfreq ({b.compound_words})", share(b.compound_correct, b.compound_words),
         share(a.compound_correct, a.compound_words)),
        ("damaged sentences fully restored", f"{bd.exact}/{bd.sentences}", f"{ad.exact}/{ad.sentences}"),
        ("all sentences exactly right", f"{b.exact}/{b.sentences}", f"{a.exact}/{a.sentences}"),
    ]
    for label, before, after in rows:
        print(f"  {label:<44}{before:>10}{after:>10}")


def print_classes(result: DamagedResult) -> None:
    print("\nPer confusion class, damaged bokmål (a word with two damages counts in each class)")
    print(f"  {'class':<16}{'words':>7}{'restored':>10}{'share':>8}")
    for name in sorted(result.per_class, key=lambda n: (n == HYPHEN_CLASS, n[0], -result.per_class[n][0])):
        words, restored = result.per_class[name]
        print(f"  {name:<16}{words:>7}{restored:>10}{share(restored, words):>8}")


def print_residual(result: DamagedResult, name: str) -> None:
    print(f"\nTop {TOP_ERRORS} residual errors after repair, damaged {name}: expected -> got (count)  [damaged input]")
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


def print_other(result: OtherResult) -> None:
    changed = sum(result.changes.values())
    print(f"\n{result.name}: {result.texts} texts, {result.words} words, words changed by repair_text: {changed}")
    if changed:
        print("  " + ", ".join(f"{change} ({count})" for change, count in result.changes.most_common(TOP_ERRORS)))


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
    parser.add_argument("--word-rate", type=float, default=None,
                        help="probability that a word with æ/ø/å is damaged (default: the measured share)")
    parser.add_argument("--limit", type=int, default=None, help="first N texts of each set (by id)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--polis", type=Path, default=POLIS)
    parser.add_argument("--storting", type=Path, default=STORTING)
    args = parser.parse_args(argv)
    if args.word_rate is not None and not 0 <= args.word_rate <= 1:
        parser.error("--word-rate must be in [0, 1]")

    data = load_sentences(args.data, args.limit)
    bokmal, nynorsk = data["nob_Latn"], data["nno_Latn"]
    polis, storting = load_texts(args.polis)[:args.limit], load_texts(args.storting)[:args.limit]
    model_nob, model_nno = damage_model(bokmal, args.word_rate), damage_model(nynorsk, args.word_rate)
    print(f"repair_bench  seed={args.seed} limit={args.limit or '-'}  data={args.data.resolve()}")
    print(f"sentences: bokmål {len(bokmal)}, nynorsk {len(nynorsk)}; damage: word rate {model_nob.word_rate:.3f} "
          f"(nb) {model_nno.word_rate:.3f} (nn), second damage {model_nob.second_rate:.3f} (nb) "
          f"{model_nno.second_rate:.3f} (nn)")

    damaged_nob = run_damaged("nob_Latn", bokmal, args.seed, model_nob)
    clean_nob = run_clean("nob_Latn", bokmal)
    clean_nno = run_clean("nno_Latn", nynorsk)
    damaged_nno = run_damaged("nno_Latn", nynorsk, args.seed, model_nno)
    german = run_other("German Polis statements", polis)
    titles = run_other("Storting case titles", storting)

    print_damaged(damaged_nob, "bokmål")
    print_damaged(damaged_nno, "nynorsk")
    print_classes(damaged_nob)
    print_timing([("damaged bokmål", damaged_nob.sentences, damaged_nob.seconds),
                  ("clean bokmål", clean_nob.sentences, clean_nob.seconds),
                  ("clean nynorsk", clean_nno.sentences, clean_nno.seconds),
                  ("damaged nynorsk", damaged_nno.sentences, damaged_nno.seconds),
                  ("German Polis", german.texts, german.seconds),
                  ("Storting titles", titles.texts, titles.seconds)])
    print_residual(damaged_nob, "bokmål")
    print_residual(damaged_nno, "nynorsk")
    print_changed(clean_nob, "bokmål")
    print_changed(clean_nno, "nynorsk")
    print_other(german)
    print_other(titles)

    accuracy, accuracy_nn = damaged_nob.after.word_accuracy, damaged_nno.after.word_accuracy
    german_changed, titles_changed = sum(german.changes.values()), sum(titles.changes.values())
    targets = [
        (f"word_accuracy_after={accuracy:.4f} (>={TARGET_WORD_ACCURACY})", accuracy >= TARGET_WORD_ACCURACY),
        (f"nynorsk_word_accuracy_after={accuracy_nn:.4f} (>={TARGET_NYNORSK_ACCURACY})",
         accuracy_nn >= TARGET_NYNORSK_ACCURACY),
        (f"clean_changed={len(clean_nob.changed)}/{clean_nob.sentences} (=0)", not clean_nob.changed),
        (f"nynorsk_clean_changed={len(clean_nno.changed)}/{clean_nno.sentences} (=0)", not clean_nno.changed),
        (f"german_words_changed={german_changed} (=0)", not german_changed),
        (f"storting_words_changed={titles_changed} (=0)", not titles_changed),
    ]
    print("\nTARGETS: " + " ".join(f"{text} {'PASS' if ok else 'FAIL'}" for text, ok in targets)
          + f"  => {'PASS' if all(ok for _, ok in targets) else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
