"""Norwegian word lists shared by the stages (stop words for topic labels)."""
from __future__ import annotations

from functools import lru_cache

# Stop-word lists carry some content words that name themes in this domain ("leder", "tid").
CONTENT_WORDS = frozenset(
    {"arbeid", "kontakt", "kroner", "land", "landet", "leder", "makt", "mennesker", "mål", "personer",
     "plass", "tid", "verdi", "folk", "kamp", "saken"}
)
# Written on the cards by participants of every workshop, so they say nothing about a theme.
EXTRA_STOP_WORDS = frozenset(
    {"ting", "masse", "får", "fått", "trenger", "trengs", "bør", "ønsker", "vil", "ønske", "gjerne", "aldri",
     "ingenting", "alltid", "egentlig"}
    # nynorsk function words the lists miss
    | {"ønskjer", "vert", "tek", "meir", "berre", "ikkje", "eg", "ein", "eit", "korleis", "kva", "vere", "frå",
       "dei", "noko", "mykje", "treng", "kan", "sjølv", "òg"}
)
# scikit-learn's default pattern keeps numbers and one-letter tokens; labels want words.
TOKEN_PATTERN = r"(?u)\b[^\W\d_]{2,}\b"


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """Union of spaCy's nb list, stopwordsiso 'no' and stop-words 'norwegian' (bokmål and nynorsk)."""
    import stopwordsiso
    from spacy.lang.nb.stop_words import STOP_WORDS
    from stop_words import get_stop_words

    words = set(STOP_WORDS) | set(stopwordsiso.stopwords("no")) | set(get_stop_words("norwegian"))
    return frozenset((words | EXTRA_STOP_WORDS) - CONTENT_WORDS)
