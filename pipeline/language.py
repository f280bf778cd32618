"""Language of a card: bokmål (`nb`), nynorsk (`nn`) or another language, with a confidence.

lingua tells the languages apart well on sentences but not on three-word post-its, where a
few words that exist in only one written standard ("ikkje", "ikke") are the better evidence.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Frequent words that belong to one written standard only. Not "vere", "vore" or "vart":
# bokmål "være", "våre" and "vårt" become those when OCR loses the letter.
NYNORSK_MARKERS = frozenset(
    "ikkje eg dykk dei deira ho hjå kva kvifor korleis kven kvar meir mykje berre heile frå "
    "vert noko nokon nokre sjølv gjere seie kjem òg ein eit eigen eige eigne tenester "
    "tenestene løysing løysingar løysinga verksemd verksemda verksemder kommunane innbyggjarar "
    "innbyggjarane ønskjer ynskjer treng difor utan saman sidan fekk gjekk heilt framleis elles "
    "bilete halde døme medan nokre".split()
)
# Word endings of one standard: nynorsk "-leg", "-ane", "-ingar"; bokmål "-lig", "-ene".
NYNORSK_SUFFIXES = ("leg", "lege", "ingar", "ingane", "ane")
BOKMAL_SUFFIXES = ("lig", "lige", "ninger", "ningene")
BOKMAL_MARKERS = frozenset(
    "ikke jeg hva hvorfor hvordan hvem hvor mer mye bare hele fra være vært blir ble noe "
    "noen selv gjøre si kommer egen eget egne tjenester tjenestene løsning løsninger "
    "løsningen virksomhet virksomheten virksomheter kommunene innbyggerne ønsker lytter "
    "trenger uten sammen hun dem deres sier hver hvert hvilke hvilken".split()
)
NYNORSK_WITHOUT_MARKERS = 0.75
NYNORSK_WITHOUT_MARKERS_LONG = 0.6
SHORT_TEXT_WORDS = 8
MAYBE_NYNORSK_SHARE = 1.01
_WORDS = re.compile(r"[^\W\d_]+")
CODES = {"BOKMAL": "nb", "NYNORSK": "nn", "ENGLISH": "en", "SWEDISH": "sv", "DANISH": "da", "GERMAN": "de"}


@dataclass(frozen=True)
class Detected:
    code: str  # nb, nn, en, sv, da, de, or "und" when there is nothing to go on
    confidence: float
    nynorsk_share: float = 0.0  # lingua's nn / (nb + nn): how nynorsk the spelling looks
    marker_balance: int = 0  # nynorsk marker words minus bokmål marker words

    @property
    def maybe_nynorsk(self) -> bool:
        """Nynorsk, or bokmål that looks enough like it that spelling changes are unsafe."""
        return self.code == "nn" or (self.marker_balance >= 0 and self.nynorsk_share >= MAYBE_NYNORSK_SHARE)


# Frequent words of written Norwegian that English and German do not have: two of them in a
# card make it Norwegian enough to skip the (slow) character model when only that is asked.
NORWEGIAN_FUNCTION_WORDS = frozenset(
    "og ikke ikkje det som på å vi jeg eg vår våre hvor kor hva kva skal må får blir vert være vere "
    "mer meir mye mykje også òg dette denne disse bare berre når hvordan korleis kommunen kommunene "
    "kommunane av fra frå til med har hos".split()
)


def obviously_norwegian(text: str) -> bool:
    """Cheap check: at least two Norwegian function words."""
    return sum(w.lower() in NORWEGIAN_FUNCTION_WORDS for w in _WORDS.findall(text)) >= 2


def load_detector() -> None:
    """Load the language models now (a few seconds), e.g. before forking workers."""
    _detector()


@lru_cache(maxsize=1)
def _detector():
    from lingua import Language, LanguageDetectorBuilder

    languages = [getattr(Language, name) for name in CODES]
    return LanguageDetectorBuilder.from_languages(*languages).with_preloaded_language_models().build()


def _marker_hits(words: list[str]) -> tuple[int, int]:
    nn_hits = sum(w in NYNORSK_MARKERS or (len(w) >= 5 and w.endswith(NYNORSK_SUFFIXES)) for w in words)
    nb_hits = sum(w in BOKMAL_MARKERS or (len(w) >= 5 and w.endswith(BOKMAL_SUFFIXES)) for w in words)
    return nn_hits, nb_hits


def marker_balance(text: str, endings: bool = True) -> int:
    """Nynorsk marker words minus bokmål marker words (and word endings, unless `endings` is False:
    a rare word may end in "-ane" by chance)."""
    words = [w.lower() for w in _WORDS.findall(text)]
    if not endings:
        return sum(w in NYNORSK_MARKERS for w in words) - sum(w in BOKMAL_MARKERS for w in words)
    nn_hits, nb_hits = _marker_hits(words)
    return nn_hits - nb_hits


@lru_cache(maxsize=50_000)
def detect_language(text: str) -> Detected:
    words = [w.lower() for w in _WORDS.findall(text)]
    if not words:
        return Detected("und", 0.0)
    values = {CODES[v.language.name]: v.value for v in _detector().compute_language_confidence_values(text)}
    nn_hits, nb_hits = _marker_hits(words)
    norwegian = values.get("nb", 0.0) + values.get("nn", 0.0)
    extra = {"nynorsk_share": round(values.get("nn", 0.0) / norwegian, 4) if norwegian else 0.0,
             "marker_balance": nn_hits - nb_hits}
    if nn_hits != nb_hits:
        # Marker words decide between the two standards; lingua says whether it is Norwegian at all.
        code = "nn" if nn_hits > nb_hits else "nb"
        share = max(nn_hits, nb_hits) / (nn_hits + nb_hits)
        other = max(((c, v) for c, v in values.items() if c not in ("nb", "nn")), key=lambda cv: cv[1])
        if other[1] > norwegian + 0.3:
            return Detected(other[0], round(other[1], 4), **extra)
        return Detected(code, round(min(1.0, 0.5 + 0.5 * share * max(norwegian, 0.5)), 4), **extra)
    best = max(values, key=lambda c: (values[c], c))
    needed = NYNORSK_WITHOUT_MARKERS if len(words) < SHORT_TEXT_WORDS else NYNORSK_WITHOUT_MARKERS_LONG
    if best == "nn" and values["nn"] < needed:
        best = "nb"  # most cards are bokmål; a character model alone says nynorsk only when sure
    if best in ("da", "sv") and norwegian >= 0.2:
        # Norwegian typed without æ/ø/å reads as Danish or Swedish to a character model.
        best = "nb" if values.get("nb", 0) >= values.get("nn", 0) else "nn"
    return Detected(best, round(values[best] if best in values else norwegian, 4), **extra)
