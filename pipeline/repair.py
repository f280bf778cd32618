"""Repair of lost or misread æ/ø/å in Norwegian text.

Candidates come from the confusions seen in real OCR and ASCII typing; word frequencies
(`wordfreq`, nb) say which candidate is a word; context decides the words that are words
either way ("sa"/"så", "a"/"å", "far"/"får"). A clean sentence has no unknown words and no
telltale function words, so it is left exactly as it is.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

import ftfy
from wordfreq import zipf_frequency

# (damaged form, Norwegian letter), from OCR of Norwegian reports and keyboards without æøå.
CONFUSIONS: tuple[tuple[str, str], ...] = (
    ("aa", "å"), ("oe", "ø"), ("ae", "æ"), ("ee", "æ"),
    ("o", "ø"), ("g", "ø"), ("e", "ø"), ("0", "ø"),
    ("a", "å"), ("&", "å"), ("d", "å"),
    ("e", "æ"), ("z", "æ"),
)
MAX_EDITS = 2
LOST_LETTERS = "æøå"

# Damaged function words: not Norwegian words, however often web text ("pa", "ma") has them.
FUNCTION_WORD_REPAIRS = {
    "pa": "på", "pd": "på", "paa": "på", "ma": "må", "maa": "må", "na": "nå", "naa": "nå",
    "fa": "få", "fd": "få", "faa": "få", "nar": "når", "naar": "når", "gar": "går", "ar": "år",
    "aa": "å", "ogs": "også", "ogsa": "også",
}
# A lone letter where a short word lost its æ/ø/å; only before a Norwegian word.
LOST_LETTER_WORDS = {"p": "på", "s": "så", "d": "å", "m": "må", "g": "gå"}
# Words the rules below decide; frequency alone must not ("sa" is as often "said" as "so").
RULE_WORDS = frozenset({"a", "sa", "far", "ga", "for", "var", "vare", "mote", "matte"}) | set(LOST_LETTER_WORDS)
SUBJECTS = frozenset("jeg du han hun vi dere de man den det dette som eg ho dei me noen ingen alle hvem kven".split())
# Words after which an infinitive follows.
INFINITIVE_BEFORE = frozenset("å kan vil skal må bør kunne ville skulle måtte burde får lar la tør".split())
# "&" for "å" follows these ("tid til & prøve"); elsewhere "&" means "og".
AMPERSAND_AA_AFTER = frozenset("til for om med av uten enn ved".split())
# After these, "sa" can only be the adverb "så" ("det er så viktig").
SO_BEFORE = frozenset("er var blir ble bli vært være ikke helt like ganske altså veldig da nå enn".split())
SO_AFTER = frozenset("mye mange lenge langt godt bra lite stor store viktig viktige snart fort raskt enkelt "
                     "vanskelig dårlig liten små".split())
NOUN_BEFORE = frozenset("et en på i til neste første eget hvert felles nytt".split())
PREPOSITIONS = frozenset("i på for til med av fra om hos mellom blant under over etter".split())
# Nynorsk spells with e, a and o where bokmål has ø, å and æ ("avgjere", "handtering"); in
# nynorsk text only confusions that are never spellings are undone.
NYNORSK_SAFE_CONFUSIONS = frozenset({"aa", "oe", "ae", "ee", "g", "0", "&", "d", "z"})
# Systematic nynorsk/bokmål alternations (nn -> nb): "gjere"/"gjøre", "hand"/"hånd",
# "-ar"/"-år" ("nyttar" is a verb, not "nyttår"); plus single words.
NYNORSK_ALTERNATIONS = (("gjer", "gjør"), ("hand", "hånd"))
NYNORSK_WORDS = frozenset("bere vakne vere vore vart utbrot".split())
# Verbs in "-år" that nynorsk spells the same way: "bestar" is no nynorsk "-ar" form.
SHARED_AAR_VERBS = ("står", "går", "får", "slår", "når", "rår", "forstår")


def nynorsk_spelling(word: str, candidate: str) -> bool:
    """Whether `word` may be a correct nynorsk spelling of what `candidate` spells in bokmål."""
    if word in NYNORSK_WORDS:
        return True
    if word.endswith("ar") and candidate.endswith("år") and not candidate.endswith(SHARED_AAR_VERBS):
        return True
    return any(nn in word and nb in candidate for nn, nb in NYNORSK_ALTERNATIONS)

_TRANSLITERATION = re.compile(r"aa|oe|ae")
_WORD = re.compile(r"(?:[^\W\d_]|(?<=[^\W\d_])[&0]|[&0](?=[^\W\d_]))+")
_AMPERSAND = re.compile(r"(\b([^\W\d_]+)\s+)&(?=\s+[^\W\d_])")
_HYPHEN_BREAK = re.compile(r"([^\W\d_]{2,})-\s+([a-zæøå][^\W\d_]+)")
SUSPENSIVE_TAILS = frozenset({"og", "eller", "samt", "til", "som"})


@dataclass(frozen=True)
class RepairSettings:
    min_repair_zipf: float = 2.5  # a repair must be at least this common
    max_source_zipf: float = 1.5  # only words rarer than this count as unknown
    ambiguity_margin: float = 2.5  # a known word is replaced when the repair is this much more common
    context_margin: float = 1.0  # ... or this much, in a card that shows damage elsewhere


@lru_cache(maxsize=300_000)
def zipf(word: str) -> float:
    if not word.isalpha():
        return 0.0  # "p&", "l0sning": wordfreq would score the letters and drop the rest
    return zipf_frequency(word, "nb")


@lru_cache(maxsize=100_000)
def english_zipf(word: str) -> float:
    return zipf_frequency(word, "en")


def candidates(word: str, nynorsk: bool = False) -> set[str]:
    """Forms reachable by up to MAX_EDITS confusion substitutions, or one lost letter restored."""
    confusions = [(d, l) for d, l in CONFUSIONS if not nynorsk or d in NYNORSK_SAFE_CONFUSIONS]
    found: set[str] = set()
    frontier = {word}
    for _ in range(MAX_EDITS):
        next_frontier = set()
        for form in frontier:
            for damaged, letter in confusions:
                start = form.find(damaged)
                while start != -1:
                    next_frontier.add(form[:start] + letter + form[start + len(damaged):])
                    start = form.find(damaged, start + 1)
        found |= next_frontier
        frontier = next_frontier
    if not nynorsk:
        for position, letter in itertools.product(range(1, len(word) + 1), LOST_LETTERS):
            found.add(word[:position] + letter + word[position:])
    found.discard(word)
    return found


@lru_cache(maxsize=200_000)
def best_candidate(word: str, nynorsk: bool = False) -> tuple[str, float]:
    best = max(candidates(word, nynorsk), key=lambda c: (zipf(c), c), default=word)
    return best, zipf(best)


def match_case(template: str, word: str) -> str:
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[0].isupper():
        return word[0].upper() + word[1:]
    return word


def join_hyphen_breaks(text: str) -> str:
    """'innbygger- involvering' -> 'innbyggerinvolvering' when the joined word is a word."""

    def join(match: re.Match) -> str:
        head, tail = match.group(1), match.group(2)
        joined = head + tail
        # A compound is often rarer than its parts; "helse- og omsorg" keeps its hyphen.
        is_compound = (head[0].islower() and zipf(head) >= 2.5 and zipf(tail) >= 2.5
                       and tail not in SUSPENSIVE_TAILS)
        return joined if zipf(joined.lower()) > 0 or is_compound else match.group(0)

    return _HYPHEN_BREAK.sub(join, text)


def _is_english(word: str | None) -> bool:
    return bool(word) and english_zipf(word) >= 3.0 and english_zipf(word) > zipf(word) + 0.5


def repair_unknown(word: str, nynorsk: bool, settings: RepairSettings) -> str | None:
    """A common word for an unknown one ("lgsninger" -> "løsninger"), else None."""
    if len(word) < 2 or zipf(word) >= settings.max_source_zipf:
        return None
    best, best_zipf = best_candidate(word, nynorsk)
    return best if best_zipf >= settings.min_repair_zipf else None


@dataclass(frozen=True)
class Context:
    prev: str | None  # neighbours in the same clause, lower case, already repaired on the left
    next: str | None
    sentence_start: bool
    abbreviation: bool  # a short word right before a full stop: "Dr.", "f.eks."
    said: bool = False  # a name before or after, or a quote after: "sa" is the verb
    number_next: bool = False  # "p 64 år"
    in_compound: bool = False  # right after a hyphen: "TV-ar"


def repair_by_rule(word: str, ctx: Context) -> str | None:
    """Known words that are damaged ones when their neighbours say so; safe in clean text."""
    norwegian_next = ctx.next is not None and not _is_english(ctx.next)
    if ctx.in_compound:
        return None
    if word in FUNCTION_WORD_REPAIRS:
        return None if _is_english(ctx.next) or _is_english(ctx.prev) else FUNCTION_WORD_REPAIRS[word]
    if word == "p" and ctx.number_next:
        return "på"
    if word in LOST_LETTER_WORDS or word == "a":
        # "a" is no Norwegian word; "å" stands before an infinitive. English "a" is left alone;
        # so are "m" and "g" after a number ("5 m høy"), where they are units.
        if word in ("m", "g") and ctx.prev is None:
            return None
        return (LOST_LETTER_WORDS.get(word) or "å") if norwegian_next and not _is_english(ctx.prev) else None
    if word == "sa":
        if ctx.said:
            return None  # "han sa ja", "sa han", "Politiet sa", "sa: «...»": the verb
        if ctx.prev in SO_BEFORE or ctx.next in SO_AFTER or (ctx.sentence_start and ctx.next not in SUBJECTS):
            return "så"
        return None
    if word == "far" and (ctx.next in {"ikke", "lov"} or (ctx.sentence_start and ctx.next in SUBJECTS)):
        return "får"
    if word == "ga" and ctx.prev in INFINITIVE_BEFORE:
        return "gå"  # "ga" is past tense: never after "å" or a modal
    return None


def repair_in_damaged_card(word: str, ctx: Context, settings: RepairSettings) -> str | None:
    """Weaker evidence, used only where other words of the card were damaged."""
    if word == "sa":
        # In damaged text "så" is the likelier word, unless a subject or "at" marks the verb.
        return None if ctx.said or ctx.prev in SUBJECTS or ctx.next in SUBJECTS | {"at", "ja", "nei"} else "så"
    if word == "far" and ctx.prev in SUBJECTS | {"ikke", "også"}:
        return "får"
    if word == "matte" and ctx.prev in SUBJECTS:
        return "måtte"
    if word == "vare":
        if ctx.prev in INFINITIVE_BEFORE:
            return "være"
        return "våre" if ctx.prev in PREPOSITIONS and ctx.next and zipf(ctx.next) >= 3 else None
    if word == "mote":
        return "møte" if ctx.prev in NOUN_BEFORE or ctx.prev in INFINITIVE_BEFORE else None
    if word in RULE_WORDS or ctx.abbreviation:
        return None
    best, best_zipf = best_candidate(word)
    if best_zipf >= settings.min_repair_zipf and best_zipf - zipf(word) >= settings.context_margin:
        return best
    return None


def repair_transliteration(word: str, settings: RepairSettings) -> str | None:
    """ASCII spellings "aa", "oe", "ae" ("vaere", "foer", "aar") for å, ø, æ."""
    if not _TRANSLITERATION.search(word):
        return None
    for form in {_TRANSLITERATION.sub(lambda m: {"aa": "å", "oe": "ø", "ae": "æ"}[m.group(0)], word),
                 word.replace("aa", "å")}:
        if zipf(form) >= settings.min_repair_zipf and zipf(form) - zipf(word) >= settings.context_margin:
            return form
    return None


def repair_common_word(word: str, ctx: Context, settings: RepairSettings) -> str | None:
    """A known word whose repair is far more common ("hore" -> "høre")."""
    if word in RULE_WORDS or ctx.abbreviation:
        return None
    best, best_zipf = best_candidate(word)
    if best_zipf >= settings.min_repair_zipf and best_zipf - zipf(word) >= settings.ambiguity_margin:
        return best
    return None


def repair_text(text: str, settings: RepairSettings | None = None, language: str | None = None) -> str:
    """Repair lost or misread æ/ø/å, keeping case and punctuation.

    `language` is "nb" or "nn" when known; otherwise it is detected. Nynorsk words are never
    turned into bokmål ones.
    """
    from pipeline.language import detect_language

    settings = settings or RepairSettings()
    text = ftfy.fix_encoding(text)  # UTF-8 read as cp1252: "Ã¸" -> "ø"
    text = join_hyphen_breaks(text)
    text = _AMPERSAND.sub(lambda m: m.group(1) + "å" if m.group(2).lower() in AMPERSAND_AA_AFTER else m.group(0), text)
    matches = [m for m in _WORD.finditer(text) if not _touches_digit(text, m)]
    if not matches:
        return text
    if language is None:
        # Detect on a first repair, so that text typed without æ/ø/å still reads as Norwegian.
        rough = [repair_unknown(m.group(0).lower(), False, settings) or m.group(0) for m in matches]
        detected = detect_language(" ".join(rough))
        nynorsk, surely_bokmal = detected.maybe_nynorsk, detected.marker_balance < 0
    else:
        nynorsk, surely_bokmal = language == "nn", language == "nb"
    shouting = sum(c.isupper() for c in text) > sum(c.islower() for c in text)
    words = [m.group(0).lower() for m in matches]

    def allowed(word: str, repair: str | None) -> str | None:
        return None if repair and not surely_bokmal and nynorsk_spelling(word, repair) else repair

    fixed: list[str | None] = [allowed(w, repair_unknown(w, nynorsk, settings)) for w in words]
    contexts = [_context(text, matches, fixed, i) for i in range(len(matches))]
    # A capitalised word inside a sentence is a name ("Ma", "Tor"); an all-caps one an acronym.
    open_words = [
        fixed[i] is None
        and not (m.group(0)[0].isupper() and not contexts[i].sentence_start and not shouting)
        and not (m.group(0).isupper() and len(m.group(0)) > 1 and not shouting)
        for i, m in enumerate(matches)
    ]
    for i, word in enumerate(words):
        if open_words[i]:
            fixed[i] = repair_by_rule(word, _context(text, matches, fixed, i)) or repair_transliteration(word, settings)
            if fixed[i] is None and not nynorsk:
                fixed[i] = allowed(word, repair_common_word(word, contexts[i], settings))
    # Evidence of damage: a repaired word, or "&"/"0" inside a word ("noe" has "oe" and is fine).
    damaged = any(fixed) or any(not w.isalpha() for w in words)
    if damaged and not nynorsk:
        for i, word in enumerate(words):
            if open_words[i] and fixed[i] is None:
                fixed[i] = allowed(word, repair_in_damaged_card(word, _context(text, matches, fixed, i), settings))
    pieces, last = [], 0
    for match, repair in zip(matches, fixed):
        pieces.append(text[last:match.start()])
        pieces.append(match_case(match.group(0), repair) if repair else match.group(0))
        last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)


def _context(text: str, matches: list[re.Match], fixed: list[str | None], i: int) -> Context:
    prev = next_ = None
    if i > 0 and _adjacent(text, matches[i - 1], matches[i]):
        prev = fixed[i - 1] or matches[i - 1].group(0).lower()
    if i + 1 < len(matches) and _adjacent(text, matches[i], matches[i + 1]):
        next_ = matches[i + 1].group(0).lower()
    gap = text[matches[i - 1].end():matches[i].start()] if i > 0 else ""
    word, end = matches[i].group(0), matches[i].end()
    after = text[end:end + 3]
    abbreviation = len(word) <= 3 and after[:1] == "."
    sentence_start = i == 0 or bool(re.search(r"[.!?:(«\"]\s*$", gap))
    name_before = i > 0 and matches[i - 1].group(0)[0].isupper() and not gap.strip()
    name_after = i + 1 < len(matches) and matches[i + 1].group(0)[0].isupper() and next_ is not None
    said = name_before or name_after or bool(re.match(r"\s*[:«\"»]", after))
    return Context(prev, next_, sentence_start, abbreviation or len(word) < 2, said=said,
                   number_next=bool(re.match(r"\s+\d", after)), in_compound=gap.endswith("-") and not gap.strip("-"))


def _touches_digit(text: str, match: re.Match) -> bool:
    """Part of a code like "A1GP" or "3a": not a word to repair."""
    before = text[match.start() - 1] if match.start() > 0 else ""
    after = text[match.end()] if match.end() < len(text) else ""
    return before.isdigit() or after.isdigit()


def _adjacent(text: str, left: re.Match, right: re.Match) -> bool:
    """Neighbours in the same clause: only spaces (or a quote) between them."""
    return not re.search(r"[.,;:!?()\[\]\n–\d-]", text[left.end():right.start()])
