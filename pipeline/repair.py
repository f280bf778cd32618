"""Repair of lost or misread æ/ø/å in Norwegian text.

Candidates come from the confusions measured on real OCR (issue 16), each costing -log10 of its
share of damaged words. Word evidence: wordfreq (nb), the bokmål full-form lexicon and compounds
of its nouns, and for nynorsk the nynorsk hunspell dictionary. Context (the neighbours' word
classes in the lexicon and a few collocations) decides the words that are words either way
("sa"/"så", "ber"/"bør", "var"/"vår"). Only bokmål and nynorsk cards are repaired; German and
English words, names, codes and list letters stay. A clean sentence has no unknown words and no
telltale function words, so it is left exactly as it is.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import ftfy
from wordfreq import zipf_frequency

from pipeline import norwegian
from pipeline.params import NormaliseParams

# Real OCR of a workshop report (issue 16): (letter, read as) -> percent of damaged words.
OCR_DAMAGE: dict[tuple[str, str], float] = {
    ("å", "a"): 54, ("ø", "g"): 14, ("ø", "e"): 12.5, ("ø", "o"): 9, ("æ", "ee"): 6, ("ø", "a"): 3,
    ("ø", "err"): 2, ("å", "d"): 1, ("æ", "ae"): 1,
}
# Seen in other transcriptions and on keyboards without æ/ø/å, but not in those lines: each gets
# the share of one damaged word in two hundred (add-one smoothing of the measured table).
OTHER_DAMAGE = (("å", "aa"), ("ø", "oe"), ("ø", "0"), ("å", "&"), ("æ", "e"), ("æ", "z"))
UNSEEN_SHARE = 0.5
TWO_DAMAGED_SHARE = 3.0  # percent of damaged words carry two damaged letters
LOST_LETTER_SHARE = UNSEEN_SHARE  # a letter lost altogether ("lsninger")
_TOTAL = sum(OCR_DAMAGE.values()) + UNSEEN_SHARE * (len(OTHER_DAMAGE) + 1)
# Cost of a confusion: -log10 of its share of damaged words, learnt from the table above.
CONFUSION_COST: dict[tuple[str, str], float] = {
    (read, letter): -math.log10(share / _TOTAL)
    for (letter, read), share in [*OCR_DAMAGE.items(), *((d, UNSEEN_SHARE) for d in OTHER_DAMAGE)]
}
SECOND_DAMAGE_COST = -math.log10(TWO_DAMAGED_SHARE / 100)
LOST_LETTER_COST = -math.log10(LOST_LETTER_SHARE / _TOTAL)
CONFUSIONS: tuple[tuple[str, str], ...] = tuple(CONFUSION_COST)  # (damaged form, Norwegian letter)
MAX_EDITS = 2
LOST_LETTERS = "æøå"
LEXICON_ZIPF = 2.5  # evidence of a form the full-form lexicon (or nynorsk dictionary) lists but wordfreq lacks
COMPOUND_RANK = 0.5  # a compound of known parts that no list has is itself a rare event: it ranks low
MIN_PART = 3  # letters; shorter parts of a compound match by chance
MIN_HEAD = 3  # letters of a compound's last part ("miljø|lov")
UNKNOWN_ZIPF = 1.5  # below this, wordfreq's count of a word no list has is noise
NAME_REPAIR_ZIPF = 3.5  # a capitalised word inside a sentence is a name unless its repair is this common
FOREIGN_ZIPF = 3.0  # an English or German word this common is not repaired into a rarer Norwegian one

# Damaged function words: not Norwegian words, however often web text ("pa", "ma") has them.
FUNCTION_WORD_REPAIRS = {
    "pa": "på", "pd": "på", "paa": "på", "ma": "må", "maa": "må", "na": "nå", "naa": "nå",
    "fa": "få", "fd": "få", "faa": "få", "nar": "når", "naar": "når", "gar": "går", "ar": "år",
    "aa": "å", "ogs": "også", "ogsa": "også", "sma": "små",
}
# Bokmål spellings that nynorsk never has: in a nynorsk card, damaged nynorsk words.
NYNORSK_FUNCTION_WORD_REPAIRS = {"fra": "frå", "da": "då"}
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
# Damaged modal verbs: "ber"/"bor" (asks, lives) for "bør", "tor" for "tør" before an infinitive.
MODAL_REPAIRS = {"ber": "bør", "bor": "bør", "tor": "tør", "ter": "tør"}
SEASONS = {"varen": "våren", "hasten": "høsten", "hosten": "høsten", "host": "høst"}
SEASON_BEFORE = frozenset("i til om neste forrige hele denne sist siden fra utover gjennom etter".split())
# After "får" (gets, may), not after "far" (father): "far mer", "far lov".
GET_AFTER = frozenset("en et ei mer mye flere det dem seg meg deg oss ikke lov også bedre".split())
WAY_BEFORE = frozenset("den samme denne hvilken annen annet riktige beste enkleste eneste ny god fin".split())
# "å" follows these even when the verb after it is damaged or English-looking ("måte a sake").
AA_BEFORE = frozenset("til for om uten enn ved måte måten tid lyst muligheten mulighet evne behov vanskelig "
                      "lett viktig mulig".split())
SENTENCE_ADVERBS = frozenset("ikke imidlertid også alltid aldri kanskje heller derfor nok egentlig gjerne "
                             "virkelig absolutt engang selv".split())
MODALS = frozenset("kan vil skal må bør kunne ville skulle måtte burde tør".split())
NUMERALS = frozenset("to tre fire fem seks sju syv åtte ni ti elleve tolv flere mange".split())
FATHER_BEFORE = frozenset("min din hans hennes sin vår deres en og til som hvis".split())
MORE_PREPOSITIONS = frozenset("innenfor utenfor gjennom rundt mot langs ifølge".split())
BE_FORMS = frozenset("er var ble blir blitt være vært".split())
SOLUTIONS = {"lesning": "løsning", "lesninger": "løsninger", "lesningen": "løsningen", "lesningene": "løsningene"}
SOLUTION_BEFORE = frozenset("nye ny gode bedre beste digital digitale felles konkret konkrete teknisk tekniske "
                            "enkel enkle smart smarte praktisk praktiske".split())
# Before these, "for" is "før": "enn før", "aldri før", "dagen før".
BEFORE_TIME = frozenset("enn aldri lenge allerede dagen kvelden natten uken uka året tiden dager uker "
                        "måneder".split())
NOUN_BEFORE = frozenset("et en på i til neste første eget hvert felles nytt".split())
PREPOSITIONS = frozenset("i på for til med av fra om hos mellom blant under over etter".split())
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
    if len(word) >= 5 and word.endswith("ar") and candidate.endswith("år") \
            and not candidate.endswith(SHARED_AAR_VERBS):
        return True
    return any(nn in word and nb in candidate for nn, nb in NYNORSK_ALTERNATIONS)

_TRANSLITERATION = re.compile(r"aa|oe|ae")
_WORD = re.compile(r"(?:[^\W\d_]|(?<=[^\W\d_])[&0]|[&0](?=[^\W\d_]))+")
_AMPERSAND = re.compile(r"(\b([^\W\d_]+)\s+)&(?=\s+[^\W\d_])")
_HYPHEN_BREAK = re.compile(r"([^\W\d_]{2,})-\s+([a-zæøå][^\W\d_]+)")
SUSPENSIVE_TAILS = frozenset({"og", "eller", "samt", "til", "som"})


@lru_cache(maxsize=300_000)
def zipf(word: str) -> float:
    if not word.isalpha():
        return 0.0  # "p&", "l0sning": wordfreq would score the letters and drop the rest
    return zipf_frequency(word, "nb")


@lru_cache(maxsize=100_000)
def english_zipf(word: str) -> float:
    return zipf_frequency(word, "en")


@lru_cache(maxsize=100_000)
def foreign_zipf(word: str) -> float:
    """How common a word is in English or German, the other languages cards come in."""
    return max(zipf_frequency(word, "en"), zipf_frequency(word, "de")) if word.isalpha() else 0.0


@lru_cache(maxsize=200_000)
def candidates(word: str) -> dict[str, tuple[float, bool]]:
    """Forms reachable by up to MAX_EDITS confusions, or one lost letter restored: the cost of the
    cheapest way to reach each (-log10 of the share of damaged words with that damage), and whether
    that way uses only confusions measured on real OCR (OCR_DAMAGE)."""
    found: dict[str, tuple[float, bool]] = {}
    frontier = {word: (0.0, True)}
    for edit in range(MAX_EDITS):
        next_frontier: dict[str, tuple[float, bool]] = {}
        for form, (cost, measured) in frontier.items():
            for (damaged, letter), step in CONFUSION_COST.items():
                start = form.find(damaged)
                while start != -1:
                    new = form[:start] + letter + form[start + len(damaged):]
                    total = (cost + step + (SECOND_DAMAGE_COST if edit else 0.0),
                             measured and (letter, damaged) in OCR_DAMAGE)
                    if total[0] < next_frontier.get(new, (math.inf, False))[0]:
                        next_frontier[new] = total
                    start = form.find(damaged, start + 1)
        for form, cost in next_frontier.items():
            if cost[0] < found.get(form, (math.inf, False))[0]:
                found[form] = cost
        frontier = next_frontier
    for position, letter in itertools.product(range(1, len(word) + 1), LOST_LETTERS):
        form = word[:position] + letter + word[position:]
        if form not in found:
            found[form] = (LOST_LETTER_COST, False)
    found.pop(word, None)
    return found


@lru_cache(maxsize=300_000)
def compound_zipf(word: str) -> float:
    """Evidence for a bokmål compound noun the word lists lack: the zipf of its rarer part, for a
    split into a noun (maybe with a linking -s- or -e-) and a noun form: "kvalitets|øvelsen". 0 if none."""
    best = 0.0
    nouns = norwegian.lexicon()["noun"]
    for cut in range(MIN_PART, len(word) - MIN_HEAD + 1):
        head = word[cut:]
        if head not in nouns:
            continue
        modifier = word[:cut]
        for stem in {modifier, modifier.removesuffix("s"), modifier.removesuffix("e")}:
            if len(stem) >= MIN_PART and stem in nouns.get(stem, ()):
                best = max(best, min(_part_zipf(head), _part_zipf(stem)))
    return best


def _part_zipf(part: str) -> float:
    return max(zipf(part), LEXICON_ZIPF)


@lru_cache(maxsize=300_000)
def evidence(word: str, nynorsk: bool) -> tuple[float, float, str]:
    """(rank, strength, source) of the evidence that a lower-case form is a word of the standard.

    Strength is compared with `min_repair_zipf`: the wordfreq zipf, LEXICON_ZIPF for a form only
    the lexicon (or nynorsk dictionary) has, the rarer part's zipf for a compound. Rank orders
    candidates: a compound ranks below every listed word (COMPOUND_RANK). Source: "wordfreq",
    "lexicon", "compound" or "" (no evidence).
    """
    if not word.isalpha():
        return 0.0, 0.0, ""
    if nynorsk:
        # The nynorsk dictionary decides what is a word (compounds too); wordfreq (bokmål and
        # nynorsk web text) how common it is.
        if not norwegian.nynorsk_word(word):
            return 0.0, 0.0, ""
        if zipf(word) >= LEXICON_ZIPF:
            return zipf(word), zipf(word), "wordfreq"
        return LEXICON_ZIPF, LEXICON_ZIPF, "lexicon"
    if zipf(word) >= LEXICON_ZIPF:
        return zipf(word), zipf(word), "wordfreq"
    if word in norwegian.bokmal_forms():
        return LEXICON_ZIPF, LEXICON_ZIPF, "lexicon"
    compound = compound_zipf(word)
    return (min(compound, COMPOUND_RANK), compound, "compound") if compound else (0.0, 0.0, "")


@lru_cache(maxsize=200_000)
def best_candidate(word: str, nynorsk: bool = False, listed_only: bool = False) -> tuple[str, float, float, str]:
    """The candidate with the best rank minus cost: (form, strength, rank - cost, evidence source).

    Only wordfreq vouches for a candidate reached by a lost letter or a confusion not measured on
    real OCR: the lexicon and compounds have too many near neighbours of correct words."""
    best, best_strength, best_score, best_source = word, 0.0, -math.inf, ""
    for form, (cost, measured) in candidates(word).items():
        rank, strength, source = evidence(form, nynorsk)
        if not strength or (listed_only and source == "compound") or (not measured and source != "wordfreq"):
            continue
        if (rank - cost, form) > (best_score, best):
            best, best_strength, best_score, best_source = form, strength, rank - cost, source
    return best, best_strength, best_score, best_source


def _foreign(word: str, repair: str, ctx: Context) -> bool:
    """An English or German word more common there than it or its repair is here ("jeder": not
    "jøder"), standing alone or beside another such word ("jeder für sich"): in a Norwegian
    sentence, German "mal" is a damaged "mål"."""
    if not (foreign_zipf(word) >= FOREIGN_ZIPF and foreign_zipf(word) > max(zipf(word), zipf(repair))):
        return False
    return (ctx.prev is None and ctx.next is None) or any(_foreign_looking(n) for n in (ctx.prev, ctx.next) if n)


def _foreign_looking(word: str) -> bool:
    return foreign_zipf(word) >= FOREIGN_ZIPF and foreign_zipf(word) > zipf(word) + 0.5


def weak_evidence(word: str, nynorsk: bool) -> bool:
    """Some list vouches for the word."""
    return bool(evidence(word, nynorsk)[2])


def strong_evidence(word: str, nynorsk: bool) -> bool:
    """wordfreq knows the word: a repair to it needs no other damage in the card."""
    return evidence(word, nynorsk)[2] == "wordfreq"


def standard_balance(words: tuple[str, ...]) -> int:
    """Words only the nynorsk dictionary knows minus words only the bokmål lexicon knows ("fra",
    "da" count for neither: they may be damaged "frå", "då")."""
    balance = 0
    for word in words:
        if len(word) < 2 or not word.isalpha() or word in NYNORSK_FUNCTION_WORD_REPAIRS:
            continue
        in_nn, in_nb = norwegian.nynorsk_word(word), word in norwegian.bokmal_forms() or zipf(word) >= 5
        balance += (in_nn and not in_nb) - (in_nb and not in_nn)
    return balance


def _unknown_everywhere(word: str) -> bool:
    """Rare in wordfreq (web text has noise such as "sgr") and in neither standard's lists."""
    return zipf(word) < UNKNOWN_ZIPF and word not in norwegian.bokmal_forms() and not norwegian.nynorsk_word(word)


def known(word: str, nynorsk: bool, settings: NormaliseParams, maybe_nynorsk: bool = False) -> bool:
    """A word of the written standard: common enough in wordfreq, or listed in the lexicon."""
    if nynorsk:
        return norwegian.nynorsk_word(word)
    if zipf(word) >= settings.max_source_zipf or word in norwegian.bokmal_forms():
        return True
    return maybe_nynorsk and norwegian.nynorsk_word(word)


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


def repair_unknown(word: str, nynorsk: bool, settings: NormaliseParams, maybe_nynorsk: bool = False) -> str | None:
    """A word for an unknown one ("lgsninger" -> "løsninger", "kvalitetsgvelsen" ->
    "kvalitetsøvelsen"), else None. A compound of known parts ("jernbaneloven") stays unless the
    lexicon lists a repair of it ("malstyringen" -> "målstyringen")."""
    if len(word) < 2 or known(word, nynorsk, settings, maybe_nynorsk):
        return None
    source_compound = 0.0 if nynorsk else compound_zipf(word)
    best, strength, score, source = best_candidate(word, nynorsk, listed_only=bool(source_compound))
    if strength < settings.min_repair_zipf:
        return None
    if source_compound and score <= min(source_compound, COMPOUND_RANK):
        return None
    return best


@dataclass(frozen=True)
class Context:
    prev: str | None  # neighbours in the same clause, lower case, already repaired on the left
    next: str | None
    sentence_start: bool
    abbreviation: bool  # a short word right before a full stop: "Dr.", "f.eks."
    said: bool = False  # a name before or after, or a quote after: "sa" is the verb
    number_next: bool = False  # "p 64 år"
    in_compound: bool = False  # right after a hyphen: "TV-ar"
    number_before: bool = False  # "24 mal"
    code: bool = False  # a letter after a number or section sign, or before ")": "§ 120 a", "a)"
    hyphenated: bool = False  # joined to another word by a hyphen: "boda-boda", "sommar-OL"
    name_next: bool = False  # "Ma Ying-jeou": a capitalised word and a capitalised word after it
    later: tuple[str, ...] = ()  # the next words of the clause, lower case


def repair_by_rule(word: str, ctx: Context, surely_nynorsk: bool = False) -> str | None:
    """Known words that are damaged ones when their neighbours say so; safe in clean text."""
    norwegian_next = ctx.next is not None and not _is_english(ctx.next)
    if ctx.in_compound or ctx.code:
        return None
    if surely_nynorsk and word in NYNORSK_FUNCTION_WORD_REPAIRS:
        return NYNORSK_FUNCTION_WORD_REPAIRS[word]
    if ctx.name_next:
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
    if word == "bade" and ctx.prev not in INFINITIVE_BEFORE and ctx.next not in ("og", "i", "seg", "eller", None) \
            and any(w in ("og", "eller") for w in ctx.later[2:]):
        return "både"  # "bade Island og Pakistan"; "å bade og sole seg" is the verb
    if word == "mal" and (ctx.prev in NUMERALS or ctx.number_before):
        return "mål"  # "to mal", "24 mal"
    if ctx.prev in MODALS and zipf(word) < LEXICON_ZIPF and not _infinitive(word) \
            and not _lexicon_class(word, ("adv", "adj")) and not norwegian.nynorsk_word(word):
        best, strength, _, _ = best_candidate(word, listed_only=True)
        if strength and _infinitive(best):
            return best  # "vil forega" -> "vil foregå": a modal wants an infinitive
    if word in ("hasten", "hosten") and (ctx.prev in SEASON_BEFORE or ctx.number_next):
        return "høsten"  # "til hasten": no hurry is meant
    if word in MODAL_REPAIRS and ctx.next and _only_infinitive(ctx.next):
        return MODAL_REPAIRS[word]  # "vi ber gjøre" is no sentence; "vi bør gjøre" is
    return None


def repair_in_damaged_card(word: str, ctx: Context, settings: NormaliseParams, nynorsk: bool = False) -> str | None:
    """Weaker evidence, used only where other words of the card were damaged."""
    if ctx.code or ctx.in_compound:
        return None
    if word == "sa":
        # In damaged text "så" is the likelier word, unless a subject or "at" marks the verb.
        return None if ctx.said or ctx.prev in SUBJECTS or ctx.next in SUBJECTS | {"at", "ja", "nei"} else "så"
    if word == "far" and (ctx.prev in SUBJECTS | {"ikke", "også"} or ctx.next in GET_AFTER | SUBJECTS
                          or (ctx.next and _noun(ctx.next) and ctx.prev not in FATHER_BEFORE)):
        return "får"
    if word == "matte" and (ctx.prev in SUBJECTS or _infinitive_follows(ctx.later[1:])):
        return "måtte"
    if word in MODAL_REPAIRS and _infinitive_follows(ctx.later[1:]):
        return MODAL_REPAIRS[word]  # "ber imidlertid ikke være", "ber du ikke gjøre"
    if word == "a" and ctx.next and (ctx.prev in AA_BEFORE or _infinitive(ctx.next)):
        return "å"  # "en fin måte a sake om": the verb after it may be damaged too
    if word in ("maten", "mate") and (ctx.prev in WAY_BEFORE or ctx.next == "å"):
        return "måten" if word == "maten" else "måte"  # "på den maten", "en annen mate"
    if word == "vare":
        if ctx.prev in INFINITIVE_BEFORE:
            return "være"
        return "våre" if ctx.prev in PREPOSITIONS and ctx.next and zipf(ctx.next) >= 3 else None
    if word == "mote":
        return "møte" if ctx.prev in NOUN_BEFORE or ctx.prev in INFINITIVE_BEFORE else None
    if word in SEASONS and (ctx.prev in SEASON_BEFORE or ctx.number_next):
        return SEASONS[word]  # "til varen", "varen 2020": the season
    if word == "var" and ctx.prev in PREPOSITIONS | MORE_PREPOSITIONS and (ctx.next is None or _noun(ctx.next)):
        return "vår"  # a verb never follows a preposition: "for var kommune", "i var"
    if word == "last" and ctx.prev in BE_FORMS and ctx.next in {None, "inne", "ute", "fast", "og"}:
        return "låst"  # "døra var last." ("det var last på bilen" keeps its load)
    if word in SOLUTIONS and (ctx.next in {"på", "for"} or ctx.prev in SOLUTION_BEFORE):
        return SOLUTIONS[word]  # "en lesning på", "nye lesninger": the solution
    if word == "for" and ctx.prev in BEFORE_TIME and ctx.next != "å":
        return "før"  # "enn for", "aldri for", "dagen for"
    if word == "bade" and any(w in ("og", "eller") for w in ctx.later[1:]):
        return "både"  # "bade A og B"
    if word in RULE_WORDS or ctx.abbreviation or ctx.hyphenated or (nynorsk and word in NYNORSK_WORDS):
        return None
    best, strength, _, source = best_candidate(word, nynorsk, listed_only=True)
    if nynorsk and (source != "wordfreq" or zipf(word) < settings.max_source_zipf):
        return None  # wordfreq's frequencies are bokmål ones: compare only words it has
    if strength >= settings.min_repair_zipf and strength - zipf(word) >= settings.context_margin \
            and not _foreign(word, best, ctx):
        return best
    return None


def repair_transliteration(word: str, settings: NormaliseParams) -> str | None:
    """ASCII spellings "aa", "oe", "ae" ("vaere", "foer", "aar") for å, ø, æ."""
    if not _TRANSLITERATION.search(word):
        return None
    for form in {_TRANSLITERATION.sub(lambda m: {"aa": "å", "oe": "ø", "ae": "æ"}[m.group(0)], word),
                 word.replace("aa", "å")}:
        if zipf(form) >= settings.min_repair_zipf and zipf(form) - zipf(word) >= settings.context_margin:
            return form
    return None


def repair_common_word(word: str, ctx: Context, settings: NormaliseParams) -> str | None:
    """A known word whose repair is far more common ("hasten" -> "høsten")."""
    if word in RULE_WORDS or ctx.abbreviation or ctx.code or ctx.hyphenated:
        return None
    best, strength, score, _ = best_candidate(word, listed_only=True)
    # The repair's zipf less the confusion's cost: "harer" stays, though "hører" is 2.6 zipf commoner.
    cost = strength - score if strength == evidence(best, False)[0] else 0.0
    if strength >= settings.min_repair_zipf and strength - cost - zipf(word) >= settings.ambiguity_margin:
        if _foreign(word, best, ctx):
            return None  # "jeder", "statt": a German word, not a damaged "jøder", "stått"
        return best
    return None


@lru_cache(maxsize=50_000)
def _only_infinitive(word: str) -> bool:
    """An infinitive verb that no other word class of the lexicon has as a form ("gjøre", not "møte")."""
    lexicon = norwegian.lexicon()
    return word in lexicon["verb"].get(word, ()) and not any(word in lexicon[c] for c in ("noun", "adj", "adv"))


def _infinitive_follows(words: tuple[str, ...]) -> bool:
    """An infinitive after at most a subject pronoun and sentence adverbs: "(du) (ikke) gjøre"."""
    rest = list(words)
    if rest and rest[0] in SUBJECTS:
        rest.pop(0)
    while rest and rest[0] in SENTENCE_ADVERBS:
        rest.pop(0)
    return bool(rest) and rest[0] not in SUBJECTS and _infinitive(rest[0])


@lru_cache(maxsize=50_000)
def _lexicon_class(word: str, classes: tuple[str, ...]) -> bool:
    return any(word in norwegian.lexicon()[c] for c in classes)


@lru_cache(maxsize=50_000)
def _infinitive(word: str) -> bool:
    return word in norwegian.lexicon()["verb"].get(word, ())


@lru_cache(maxsize=50_000)
def _noun(word: str) -> bool:
    return word in norwegian.lexicon()["noun"]


def repair_text(text: str, params: NormaliseParams | None = None, language: str | None = None) -> str:
    """Repair lost or misread æ/ø/å, keeping case and punctuation.

    `language` is "nb" or "nn" when known; otherwise it is detected. Only bokmål and nynorsk are
    repaired, each with its own word evidence; nynorsk words are never turned into bokmål ones,
    and a German or English word in a Norwegian card stays.
    """
    from pipeline.language import detect_language, marker_balance, obviously_norwegian

    settings = params or NormaliseParams()  # min_repair_zipf, max_source_zipf, ambiguity_margin, context_margin
    text = ftfy.fix_encoding(text)  # UTF-8 read as cp1252: "Ã¸" -> "ø"
    matches = [m for m in _WORD.finditer(text) if not _touches_digit(text, m)]
    if not matches:
        return text
    maybe_nynorsk = False
    if language is None:
        # Detect on a first repair, so that text typed without æ/ø/å still reads as Norwegian.
        # "fra" and "da" may be a damaged nynorsk "frå" and "då": no evidence for bokmål.
        rough = " ".join(FUNCTION_WORD_REPAIRS.get(m.group(0).lower())
                         or repair_unknown(m.group(0).lower(), False, settings) or m.group(0)
                         for m in matches if m.group(0).lower() not in NYNORSK_FUNCTION_WORD_REPAIRS)
        detected = detect_language(rough)
        if detected.code not in ("nb", "nn") and not obviously_norwegian(rough):
            return text  # German, English, ...: their words are not damaged Norwegian ones
        # Nynorsk evidence only where the card's own marker words do not say bokmål; with a "fra"
        # or "da" (bokmål, or a damaged "frå", "då"), only where they say nynorsk.
        # The two standards' word lists tell the card's standard by the words only one of them has.
        has_fra = any(m.group(0).lower() in NYNORSK_FUNCTION_WORD_REPAIRS for m in matches)
        balance = marker_balance(rough) + standard_balance(tuple(m.group(0).lower() for m in matches))
        nynorsk = detected.code == "nn" and (balance > 0 if has_fra else balance >= 0)
        surely_bokmal = detected.marker_balance < 0
        maybe_nynorsk, surely_nynorsk = detected.maybe_nynorsk, nynorsk and balance > 0
    elif language in ("nb", "nn"):
        nynorsk, surely_bokmal = language == "nn", language == "nb"
        surely_nynorsk = nynorsk
    else:
        return text
    text = join_hyphen_breaks(text)
    text = _AMPERSAND.sub(lambda m: m.group(1) + "å" if m.group(2).lower() in AMPERSAND_AA_AFTER else m.group(0), text)
    matches = [m for m in _WORD.finditer(text) if not _touches_digit(text, m)]
    shouting = sum(c.isupper() for c in text) > sum(c.islower() for c in text)
    words = [m.group(0).lower() for m in matches]

    def allowed(word: str, repair: str | None) -> str | None:
        if repair and not surely_bokmal and nynorsk_spelling(word, repair):
            return None
        return repair

    contexts = [_context(text, matches, [None] * len(matches), i) for i in range(len(matches))]
    # A capitalised word inside a sentence is a name ("Ma", "Tor"); an all-caps one an acronym.
    names = [
        (m.group(0)[0].isupper() and not contexts[i].sentence_start and not shouting)
        or (m.group(0).isupper() and len(m.group(0)) > 1 and not shouting)
        for i, m in enumerate(matches)
    ]
    # Parts of hyphenated words ("boda-boda") and names are repaired only when no list knows them
    # in either standard and the repair is a common word ("Sgr-Afrika" -> "Sør-Afrika").
    guarded = [contexts[i].hyphenated or names[i] or contexts[i].name_next for i in range(len(matches))]
    unknown = [
        None if (contexts[i].abbreviation and (matches[i].group(0)[0].isupper() or len(w) <= 2)) or contexts[i].code
        or (matches[i].group(0).isupper() and len(w) > 1 and not shouting)
        or (guarded[i] and not (contexts[i].hyphenated and len(w) >= 3 and _unknown_everywhere(w)))
        else allowed(w, repair_unknown(w, nynorsk, settings, maybe_nynorsk)) for i, w in enumerate(words)]
    unknown = [None if repair and _foreign(words[i], repair, contexts[i]) else repair
               for i, repair in enumerate(unknown)]
    # A repair that only the lexicon, a compound or the nynorsk dictionary vouches for is made
    # where the card shows damage elsewhere: those lists have close neighbours of correct words.
    fixed: list[str | None] = [
        repair if repair and strong_evidence(repair, nynorsk)
        and (not guarded[i] or zipf(repair) >= NAME_REPAIR_ZIPF) else None
        for i, repair in enumerate(unknown)]
    contexts = [_context(text, matches, fixed, i) for i in range(len(matches))]
    open_words = [fixed[i] is None and not names[i] for i in range(len(matches))]
    for i, word in enumerate(words):
        if open_words[i]:
            fixed[i] = (repair_by_rule(word, _context(text, matches, fixed, i), surely_nynorsk)
                        or repair_transliteration(word, settings))
            if fixed[i] is None and not nynorsk:
                fixed[i] = allowed(word, repair_common_word(word, contexts[i], settings))
    # Evidence of damage: a repaired word, or "&"/"0" inside a word ("noe" has "oe" and is fine).
    # ... or two words that no list knows in either standard and that a confusion turns into known ones.
    damaged = (any(fixed) or any(not w.isalpha() for w in words)
               or sum(bool(repair) and not names[i] and _unknown_everywhere(words[i])
                      and evidence(repair, nynorsk)[2] != "compound" for i, repair in enumerate(unknown)) >= 2)
    if damaged:
        for i, repair in enumerate(unknown):
            if repair and fixed[i] is None and not guarded[i] and weak_evidence(repair, nynorsk):
                fixed[i], open_words[i] = repair, False
        for i, word in enumerate(words):
            if open_words[i] and fixed[i] is None:
                context = _context(text, matches, fixed, i)
                fixed[i] = allowed(word, repair_in_damaged_card(word, context, settings, nynorsk))
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
        next_ = fixed[i + 1] or matches[i + 1].group(0).lower()
    gap = text[matches[i - 1].end():matches[i].start()] if i > 0 else ""
    word, end = matches[i].group(0), matches[i].end()
    after = text[end:end + 3]
    abbreviation = len(word) <= 3 and after[:1] == "."
    sentence_start = i == 0 or bool(re.search(r"[.!?:(«\"]\s*$", gap))
    name_before = i > 0 and matches[i - 1].group(0)[0].isupper() and not gap.strip()
    name_after = i + 1 < len(matches) and matches[i + 1].group(0)[0].isupper() and next_ is not None
    said = name_before or name_after or bool(re.match(r"\s*[:«\"»]", after))
    code = len(word) == 1 and (bool(re.search(r"[\d§]\s*$", text[:matches[i].start()]))
                               or bool(re.match(r"\s*\)", text[end:])))
    # "rv 13", "E 39": letters without a vowel before a number name a road or a form
    code = code or (len(word) > 1 and not re.search(r"[aeiouyæøå]", word.lower())
                    and bool(re.match(r"\s+\d", after)))
    later = []
    for j in range(i + 1, min(i + 12, len(matches))):
        if not _adjacent(text, matches[j - 1], matches[j]):
            break
        later.append(fixed[j] or matches[j].group(0).lower())
    return Context(prev, next_, sentence_start, abbreviation or len(word) < 2, said=said,
                   number_next=bool(re.match(r"\s+\d", after)), in_compound=gap.endswith("-") and not gap.strip("-"),
                   code=code, later=(word.lower(), *later),
                   hyphenated=gap.endswith("-") or bool(re.match(r"-[^\W\d_]", text[end:end + 2])),
                   name_next=word[0].isupper() and name_after,
                   number_before=bool(re.search(r"\d\s+$", text[:matches[i].start()])))


def _touches_digit(text: str, match: re.Match) -> bool:
    """Part of a code like "A1GP" or "3a": not a word to repair."""
    before = text[match.start() - 1] if match.start() > 0 else ""
    after = text[match.end()] if match.end() < len(text) else ""
    return before.isdigit() or after.isdigit()


def _adjacent(text: str, left: re.Match, right: re.Match) -> bool:
    """Neighbours in the same clause: only spaces (or a quote) between them."""
    return not re.search(r"[.,;:!?()\[\]\n–\d-]", text[left.end():right.start()])
