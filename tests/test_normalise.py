"""Tests for pipeline.normalise: æ/ø/å repair, cleaning, and exact-duplicate marking."""
from __future__ import annotations

import unicodedata
from pathlib import Path

import pandas as pd
import pytest

from pipeline.near_duplicates import duplicate_key
from pipeline.normalise import clean_text, join_hyphen_breaks, normalise_cards, repair_text, run
from pipeline.params import NormaliseParams
from pipeline.records import CARDS, NORMALISED, STATUS_OK, STATUS_REJECTED, read_table, write_table

PARAMS = NormaliseParams()


def cards_frame(*rows: tuple[str, str] | tuple[str, str, str]) -> pd.DataFrame:
    """Cards with the CARDS columns from (card_id, text[, status]) tuples."""
    records = []
    for number, row in enumerate(rows, start=2):
        card_id, text, status = (*row, STATUS_OK) if len(row) == 2 else row
        records.append(
            {
                "card_id": card_id,
                "workshop_id": "ws-1",
                "group_id": "g1",
                "card_type": "postit",
                "text": text,
                "source_file": "ws-1.csv",
                "source_row": number,
                "metadata": "{}",
                "status": status,
                "reason": None if status == STATUS_OK else "empty card",
            }
        )
    return pd.DataFrame(records, columns=CARDS.names)


def duplicate_of(frame: pd.DataFrame) -> list[str | None]:
    """The duplicate_of column with missing values as None (pandas may hold them as NaN)."""
    return [None if pd.isna(value) else value for value in frame["duplicate_of"]]


# --- repair_text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "damaged, repaired",
    [
        ("Sektorene jobber ikke pa tvers", "Sektorene jobber ikke på tvers"),
        ("lgsninger", "løsninger"),
        ("gnske", "ønske"),
        ("neeringslivet", "næringslivet"),
        ("dreftet", "drøftet"),
        ("hgre", "høre"),
        ("maa faa", "må få"),
        ("stoerre", "større"),
    ],
)
def test_repair_text_restores_lost_or_misread_norwegian_letters(damaged, repaired):
    assert repair_text(damaged) == repaired


@pytest.mark.parametrize(
    "damaged, repaired",
    [
        ("Lgsninger", "Løsninger"),
        ("LGSNINGER", "LØSNINGER"),
        ("Pa tvers", "På tvers"),
        ("SAMARBEID PA TVERS", "SAMARBEID PÅ TVERS"),
    ],
)
def test_repair_text_preserves_case(damaged, repaired):
    assert repair_text(damaged) == repaired


def test_repair_text_preserves_punctuation_and_spacing():
    assert repair_text("«Lgsninger», ikke flere mgter!  (Pa tvers?)") == "«Løsninger», ikke flere møter!  (På tvers?)"


@pytest.mark.parametrize(
    "clean",
    [
        "han sa ja",
        "Tor kom sist, og det var last på bilen.",
        "Vi trenger bedre samarbeid mellom kommunene og staten.",
        "Ledere må tørre å gi medarbeidere ansvar for å prøve nye løsninger.",
        "Det er lett å si, men vanskelig å gjøre.",
        "Kommunen vår har ikkje tid til å prøve ut nye ting",
        "",
        "123 456",
    ],
    ids=["sa-ja", "tor-last", "bokmal-1", "bokmal-2", "bokmal-3", "nynorsk", "empty", "digits"],
)
def test_repair_text_leaves_clean_text_unchanged(clean):
    assert repair_text(clean) == clean


@pytest.mark.parametrize("word", ["Tor", "last"])
def test_repair_text_leaves_common_words_that_resemble_damage_unchanged(word):
    assert repair_text(f"Vi så at {word} var viktig.") == f"Vi så at {word} var viktig."


def test_hyphen_line_break_is_joined_when_the_joined_word_exists():
    assert repair_text("Mer innbygger- involvering i kommunen") == "Mer innbyggerinvolvering i kommunen"


@pytest.mark.parametrize("text", ["helse- og omsorg", "helse- og omsorgstjenester", "skole- eller barnehage"])
def test_suspensive_hyphen_before_a_conjunction_is_kept(text):
    assert join_hyphen_breaks(text) == text
    assert repair_text(text) == text


def test_mojibake_from_utf8_read_as_cp1252_is_fixed():
    assert repair_text("Ã¸nsker") == "ønsker"
    assert repair_text("Vi Ã¸nsker mer samarbeid pÃ¥ tvers") == "Vi ønsker mer samarbeid på tvers"


def test_repair_can_be_tightened_through_params():
    strict = NormaliseParams(min_repair_zipf=8.0)

    assert repair_text("lgsninger", strict) == "lgsninger"


@pytest.mark.parametrize(
    "damaged, repaired",
    [
        ("sa at de fantes", "så at de fantes"),
        ("Vi sa at de fantes", "Vi sa at de fantes"),  # a subject before it: the verb "said"
        ("Det er sa viktig", "Det er så viktig"),
        ("Politiet sa at de kom", "Politiet sa at de kom"),
        ("Vi far ikke lov", "Vi får ikke lov"),
        ("Min far var bonde", "Min far var bonde"),
        ("We need a sandbox", "We need a sandbox"),
        ("fra A til B", "fra A til B"),
        ("A1GP-bilen", "A1GP-bilen"),
        ("Vi trenger tid til & prøve", "Vi trenger tid til å prøve"),
        ("forskning & utvikling", "forskning & utvikling"),
        ("kom p& andreplass", "kom på andreplass"),
        ("Vi hadde et mote om lgsninger", "Vi hadde et møte om løsninger"),
        ("a prøve", "å prøve"),
        ("Vi trenger tid til a prøve", "Vi trenger tid til å prøve"),
        ("Vi ma samarbeide", "Vi må samarbeide"),
    ],
)
def test_repair_text_uses_context_for_short_ambiguous_words(damaged, repaired):
    # "sa", "a" and "ma" are words (or too short) on their own; only the sentence shows the damage.
    assert repair_text(damaged) == repaired


# --- clean_text -------------------------------------------------------------------------------


def test_clean_text_composes_to_nfc_and_collapses_whitespace():
    decomposed = unicodedata.normalize("NFD", "  Må\u00a0 få\tmer\n\n  tid på tvers \r\n")

    cleaned = clean_text(decomposed)

    assert cleaned == "Må få mer tid på tvers"
    assert unicodedata.is_normalized("NFC", cleaned)


def test_duplicate_key_ignores_case_and_punctuation():
    assert duplicate_key("Mer tid!") == duplicate_key("  mer, TID ") == "mer tid"


# --- normalise_cards() ---------------------------------------------------------------------------


def test_normalise_keeps_text_verbatim_and_adds_cleaned_repaired_text_norm():
    raw = unicodedata.normalize("NFD", "  Vi trenger  lgsninger\npå tvers ")
    cards = cards_frame(("k1", raw))

    out = normalise_cards(cards, PARAMS)[0]

    assert out.loc[0, "text"] == raw
    assert out.loc[0, "text_norm"] == "Vi trenger løsninger på tvers"
    assert unicodedata.is_normalized("NFC", out.loc[0, "text_norm"])


def test_normalise_without_letter_repair_only_cleans():
    cards = cards_frame(("k1", "  Vi trenger  lgsninger "))

    out = normalise_cards(cards, NormaliseParams(repair_letters=False))[0]

    assert out.loc[0, "text_norm"] == "Vi trenger lgsninger"


def test_normalise_does_not_modify_its_input_and_keeps_every_card():
    cards = cards_frame(("k1", "Mer tid"), ("k2", "mer tid!"), ("k3", "", STATUS_REJECTED))
    before = cards.copy()

    out = normalise_cards(cards, PARAMS)[0]

    pd.testing.assert_frame_equal(cards, before)
    assert out["card_id"].tolist() == ["k1", "k2", "k3"]
    assert set(NORMALISED.names) <= set(out.columns)


def test_exact_duplicates_point_to_the_first_card():
    cards = cards_frame(
        ("k1", "Mer tid til å teste."),
        ("k2", "Tillit"),
        ("k3", "mer  TID til å teste!"),
        ("k4", "Mer tid til aa teste"),  # same after repair ("aa" -> "å")
        ("k5", "Helt andre ord her"),
    )

    out = normalise_cards(cards, PARAMS)[0]

    assert duplicate_of(out) == [None, None, "k1", "k1", None]
    assert out["duplicate_kind"].tolist()[2:4] == ["exact", "exact"]


def test_near_duplicates_are_grouped_with_the_first_card():
    cards = cards_frame(
        ("k1", "Tør å delegere"),
        ("k2", "Budsjettet er ettårig"),
        ("k3", "Tørre å delegere!"),
    )

    out = normalise_cards(cards, PARAMS)[0]

    assert duplicate_of(out) == [None, None, "k1"]
    assert out["duplicate_kind"].tolist()[2] == "near"


def test_language_is_tagged_and_nynorsk_is_not_turned_into_bokmal():
    cards = cards_frame(
        ("k1", "Eg ønskjer at staten lyttar meir til kommunane"),
        ("k2", "Vi må spørre innbyggerne før vi lager løsningen"),
        ("k3", "We need more co-creation with citizens"),
        ("k4", "Dei vil vere med og gjere noko"),
    )

    out = normalise_cards(cards, PARAMS)[0]

    assert out["language"].tolist() == ["nn", "nb", "en", "nn"]
    assert out.loc[3, "text_norm"] == "Dei vil vere med og gjere noko"
    assert out["language_confidence"].between(0, 1).all()


def test_rejected_cards_never_count_as_duplicates():
    cards = cards_frame(
        ("k1", "se baksiden", STATUS_REJECTED),
        ("k2", "se baksiden", STATUS_REJECTED),
        ("k3", "Se baksiden"),
        ("k4", "se baksiden"),
    )

    out = normalise_cards(cards, PARAMS)[0]

    assert duplicate_of(out) == [None, None, None, "k3"]


def test_run_reads_cards_and_writes_normalised_parquet(tmp_path):
    write_table(cards_frame(("k1", "Vi trenger lgsninger"), ("k2", "vi trenger løsninger")), CARDS, tmp_path / "in.parquet")

    run(cards_path=tmp_path / "in.parquet", out_dir=tmp_path / "out", params=PARAMS)

    written = read_table(tmp_path / "out" / "cards.parquet", NORMALISED)
    assert written["text_norm"].tolist() == ["Vi trenger løsninger", "vi trenger løsninger"]
    assert pd.isna(written.loc[0, "duplicate_of"])
    assert written.loc[1, "duplicate_of"] == "k1"


# --- per-text memo between runs ---------------------------------------------------------------


def test_a_rerun_normalises_only_new_texts_and_gives_the_same_cards(tmp_path, caplog):
    first = cards_frame(("k1", "Vi trenger lgsninger pa tvers"), ("k2", "Mer tid til a prove"))
    write_table(first, CARDS, tmp_path / "in1.parquet")
    cold = run(cards_path=tmp_path / "in1.parquet", out_dir=tmp_path / "cold", params=PARAMS, cache_dir=tmp_path / "c")
    grown = cards_frame(("k1", "Vi trenger lgsninger pa tvers"), ("k2", "Mer tid til a prove"),
                        ("k3", "Ledere ma torre a prove nytt"))
    write_table(grown, CARDS, tmp_path / "in2.parquet")
    with caplog.at_level("INFO"):
        warm = run(cards_path=tmp_path / "in2.parquet", out_dir=tmp_path / "warm", params=PARAMS,
                   cache_dir=tmp_path / "c")
    assert "3 cards, 1 texts normalised, 2 reused from cache" in caplog.text
    fresh = run(cards_path=tmp_path / "in2.parquet", out_dir=tmp_path / "fresh", params=PARAMS, cache_dir=None)
    pd.testing.assert_frame_equal(warm, fresh)
    assert (tmp_path / "warm" / "cards.parquet").read_bytes() == (tmp_path / "fresh" / "cards.parquet").read_bytes()
    assert warm["text_norm"].tolist()[:2] == cold["text_norm"].tolist()


def test_other_params_do_not_reuse_the_memo(tmp_path, caplog):
    write_table(cards_frame(("k1", "Vi trenger lgsninger")), CARDS, tmp_path / "in.parquet")
    run(cards_path=tmp_path / "in.parquet", out_dir=tmp_path / "a", params=PARAMS, cache_dir=tmp_path / "c")
    with caplog.at_level("INFO"):
        out = run(cards_path=tmp_path / "in.parquet", out_dir=tmp_path / "b",
                  params=NormaliseParams(repair_letters=False), cache_dir=tmp_path / "c")
    assert "1 texts normalised, 0 reused" in caplog.text
    assert out.loc[0, "text_norm"] == "Vi trenger lgsninger"


def test_parallel_workers_give_the_same_cards_as_one_process(monkeypatch):
    import pipeline.normalise as normalise_module

    cards = cards_frame(*[(f"k{i}", text) for i, text in enumerate(
        ["Vi trenger lgsninger pa tvers", "Mer tid til a prove", "Me treng meir tid", "Ledere ma torre",
         "Budsjettet er ettarig", "Innbyggerne ma bli hort"] * 3)])
    serial = normalise_cards(cards, PARAMS)[0]
    monkeypatch.setattr(normalise_module, "PARALLEL_MIN_TEXTS", 4)  # 18 texts: 2 workers
    parallel = normalise_cards(cards, PARAMS)[0]
    pd.testing.assert_frame_equal(serial, parallel)


# --- near duplicates kept between runs -----------------------------------------------------------


def run_warm_and_fresh(tmp_path, name: str, cards: pd.DataFrame) -> pd.DataFrame:
    """run() with the shared cache and without any: both must give the same cards, byte for byte."""
    write_table(cards, CARDS, tmp_path / f"{name}.parquet")
    warm = run(cards_path=tmp_path / f"{name}.parquet", out_dir=tmp_path / name / "warm", params=PARAMS,
               cache_dir=tmp_path / "cache")
    fresh = run(cards_path=tmp_path / f"{name}.parquet", out_dir=tmp_path / name / "fresh", params=PARAMS)
    pd.testing.assert_frame_equal(warm, fresh)
    assert ((tmp_path / name / "warm" / "cards.parquet").read_bytes()
            == (tmp_path / name / "fresh" / "cards.parquet").read_bytes())
    return warm


def test_near_duplicates_from_the_memo_equal_a_run_from_scratch_as_texts_come_and_go(tmp_path, caplog):
    first = [("k1", "Hindrer langsiktighet"), ("k2", "Budsjettet er ettårig"),
             ("k3", "Vi trenger mer tid til innovasjon"), ("k4", "vi trenger mer tid til innovasjon!"),
             ("k5", "Tid til innovasjon i kommunen"), ("k6", "Ledere må tørre å prøve nytt"),
             ("k7", "se baksiden", STATUS_REJECTED)]
    out = run_warm_and_fresh(tmp_path, "first", cards_frame(*first))
    assert duplicate_of(out) == [None, None, None, "k3", None, None, None]

    # k3 goes (its exact copy k4 leads now); k9 bridges k2 and k8 (near k1); k10 joins k4 and k5;
    # k11 is a near copy of the text that went.
    second = [row for row in first if row[0] != "k3"] + [
        ("k8", "Budsjettet er ettårig og hindrer langsiktighet"), ("k9", "Budsjettet er ettårig og hindrer"),
        ("k10", "vi trenger mer tid til innovasjon i kommunen"), ("k11", "Vi trenger mer tid til innovasjon nå")]
    with caplog.at_level("INFO"):
        out = run_warm_and_fresh(tmp_path, "second", cards_frame(*second))
    assert "near duplicates: 4 new texts compared with 5 known" in caplog.text
    assert dict(zip(out["card_id"], duplicate_of(out))) == {
        "k1": None, "k2": "k1", "k4": None, "k5": "k4", "k6": None, "k7": None, "k8": "k1", "k9": "k1",
        "k10": "k4", "k11": "k4"}

    # The bridge goes, k3 comes back (compared before, though absent last time) and leads its group
    # again (cards are in canonical order, by id), k6 is copied.
    third = [row for row in second if row[0] != "k9"] + [first[2], ("k12", "Ledere må tørre å prøve nytt.")]
    caplog.clear()
    with caplog.at_level("INFO"):
        out = run_warm_and_fresh(tmp_path, "third", cards_frame(*third))
    assert "near duplicates: 0 new texts compared with 9 known" in caplog.text
    assert dict(zip(out["card_id"], duplicate_of(out))) == {
        "k1": None, "k2": None, "k3": None, "k4": "k3", "k5": "k3", "k6": None, "k7": None, "k8": "k1",
        "k10": "k3", "k11": "k3", "k12": "k6"}
    assert dict(zip(out["card_id"], out["duplicate_kind"])) == {
        "k1": None, "k2": None, "k3": None, "k4": "exact", "k5": "near", "k6": None, "k7": None, "k8": "near",
        "k10": "near", "k11": "near", "k12": "exact"}


def test_an_unreadable_near_duplicate_memo_only_costs_time(tmp_path, caplog):
    cards = cards_frame(("k1", "Vi trenger mer tid til innovasjon"), ("k2", "Vi trenger mer tid til innovasjon nå"),
                        ("k3", "Ledere må tørre å prøve nytt"))
    run_warm_and_fresh(tmp_path, "first", cards)
    segments = list((tmp_path / "cache" / "near_duplicates").rglob("segment-*.parquet"))
    assert len(segments) == 1
    segments[0].write_bytes(b"not parquet")

    with caplog.at_level("INFO"):
        out = run_warm_and_fresh(tmp_path, "second", cards)

    assert "unreadable memo segment skipped" in caplog.text
    assert "near duplicates: 3 new texts compared with 0 known" in caplog.text
    assert duplicate_of(out) == [None, "k1", None]


def test_a_huge_band_bucket_compares_from_scratch_and_keeps_only_signatures(tmp_path, caplog, monkeypatch):
    from pipeline import near_duplicates

    monkeypatch.setattr(near_duplicates, "MAX_BUCKET_PAIRS_SIZE", 2)
    cards = cards_frame(*[(f"k{i}", f"Vi trenger mer tid til innovasjon {'nå ' * i}") for i in range(5)])

    with caplog.at_level("INFO"):
        out = run_warm_and_fresh(tmp_path, "first", cards)

    assert "share one MinHash band (over 2): near duplicates compared from scratch" in caplog.text
    assert duplicate_of(out)[1:] == ["k0"] * 4
    caplog.clear()
    monkeypatch.setattr(near_duplicates, "MAX_BUCKET_PAIRS_SIZE", 256)
    with caplog.at_level("INFO"):
        again = run_warm_and_fresh(tmp_path, "second", cards)
    assert "near duplicates: 5 new texts compared with 0 known" in caplog.text  # seen before, not compared
    pd.testing.assert_frame_equal(again, out)


# --- line breaks and the personal-data safety net ---------------------------------------------


def test_next_line_character_is_a_line_break_not_an_ellipsis():
    assert clean_text("Mer tid\u0085til samarbeid") == "Mer tid til samarbeid"
    assert clean_text("\u00c3\u0085pen dialog") == "\u00c5pen dialog"  # a mangled "Å" is still repaired


def test_the_safety_net_counts_what_it_redacts_and_clears_the_verbatim_text(tmp_path):
    import json

    # Cards as an ingest that missed the number would have written them.
    write_table(cards_frame(("k1", "Ring meg på 41\u00a023\u00a045\u00a067 i dag"), ("k2", "Mer tid til samarbeid")),
                CARDS, tmp_path / "in.parquet")
    out = run(cards_path=tmp_path / "in.parquet", out_dir=tmp_path / "out", params=PARAMS, cache_dir=tmp_path / "c")
    assert out["text_norm"].tolist()[0] == "Ring meg på [telefon] i dag"
    assert out["text"].tolist() == ["Ring meg på [telefon] i dag", "Mer tid til samarbeid"]
    written = json.loads((tmp_path / "out" / "redactions.json").read_text(encoding="utf-8"))
    assert written == {"redactions": {"telefon": 1, "e-post": 0, "fødselsnummer": 0}}
    again = run(cards_path=tmp_path / "in.parquet", out_dir=tmp_path / "again", params=PARAMS, cache_dir=tmp_path / "c")
    assert (tmp_path / "again" / "redactions.json").read_text(encoding="utf-8") == \
        (tmp_path / "out" / "redactions.json").read_text(encoding="utf-8")  # counted from the memo too
    pd.testing.assert_frame_equal(again, out)


@pytest.mark.parametrize("text", [
    "Ring 41\u00c2\u00a023\u00c2\u00a045\u00c2\u00a067 i dag",  # UTF-8 no-break spaces read as cp1252
    "Ring 41\u00e2\u20ac\u201c23\u00e2\u20ac\u201c45\u00e2\u20ac\u201c67 i dag",  # UTF-8 en dashes read as cp1252
    "Skriv til kari&#64;kommune.no",
    "Ring 412\u201234\u2012567",
])
def test_ingest_catches_what_normalise_would_join_so_the_safety_net_never_fires(tmp_path, text):
    import json

    from pipeline.ingest import Source, ingest
    from pipeline.params import IngestParams

    result = ingest([Source("ws.csv", f"text\n{text}\n".encode("utf-8"))], IngestParams(min_workshop_cards=0))
    assert sum(result.redactions.values()) == 1
    write_table(result.cards, CARDS, tmp_path / "in.parquet")
    run(cards_path=tmp_path / "in.parquet", out_dir=tmp_path / "out", params=PARAMS)
    assert json.loads((tmp_path / "out" / "redactions.json").read_text(encoding="utf-8"))["redactions"] == {
        "telefon": 0, "e-post": 0, "fødselsnummer": 0}


# --- the near-duplicate search spilled to disk ----------------------------------------------------


def test_distinct_ids_number_keys_by_first_appearance():
    from pipeline.normalise import distinct_ids

    key_id, first_at = distinct_ids(["b", "a", "b", "c", "a", ""])

    assert key_id.tolist() == [0, 1, 0, 2, 1, 3] and first_at.tolist() == [0, 1, 3, 5]


def test_find_duplicates_spilled_equals_find_duplicates(tmp_path):
    from pipeline.normalise import find_duplicates, find_duplicates_spilled

    keys = [duplicate_key(text) for text in ["Vi trenger mer tid", "vi trenger mer tid!", "tillit tar tid",
                                             "vi trenger mer tid nå", "tillit tar tid", "noe helt annet", ""]]

    assert find_duplicates_spilled(keys, 0.7, tmp_path, part_size=2)[0] == find_duplicates(keys, 0.7)[0]


def test_a_streamed_run_writes_the_same_cards_as_the_run_in_memory(tmp_path, monkeypatch, caplog):
    import sys

    from pipeline import near_duplicates, records
    from pipeline import normalise as normalise_module
    from pipeline.params import EngineParams

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root / "bench"))
    import make_corpus

    rows = make_corpus.generate(make_corpus.seed_texts(root / "corpora" / "demo"), 2000, 100, "ws", seed=0)
    texts = [row["text"] for _, row in rows]
    texts += [text.upper() + "!" for text in texts[:50]] + ["", "...", "Ring meg på 912 34 567 om dette"]
    cards = cards_frame(*[(row["card_id"], text) if text.strip(".") else (row["card_id"], text, STATUS_REJECTED)
                          for row, text in zip([r for _, r in rows] + [{"card_id": f"x-{i}"} for i in range(53)],
                                               texts)])
    cards = cards.sample(frac=1, random_state=1)  # canonical order is not the input's
    write_table(cards, CARDS, tmp_path / "in.parquet")
    monkeypatch.setattr(near_duplicates, "SPILL_MIN_TEXTS", 100)
    monkeypatch.setattr(near_duplicates, "SPILL_BLOCK", 300)  # 7 blocks: 28 tiles
    monkeypatch.setattr(near_duplicates, "SPILL_BAND_RECORDS", 10_000)
    with monkeypatch.context() as batches:
        batches.setattr(records, "BATCH_ROWS", 500)  # 5 sorted runs to merge, 5 row groups
        batches.setattr(normalise_module, "BATCH_ROWS", 500)
        with caplog.at_level("INFO"):
            assert run(cards_path=tmp_path / "in.parquet", out_dir=tmp_path / "streamed", params=PARAMS,
                       cache_dir=tmp_path / "c", engine=EngineParams(partition_size=256)) is None

    assert "searched from scratch in partitions" in caplog.text
    assert f"{len(cards)} cards, {len(set(texts))} texts normalised" in caplog.text  # each text once, across batches
    with monkeypatch.context() as in_memory:
        in_memory.setattr(near_duplicates, "SPILL_MIN_TEXTS", 20_000)  # the texts from the memo
        assert run(cards_path=tmp_path / "in.parquet", out_dir=tmp_path / "memory", params=PARAMS,
                   cache_dir=tmp_path / "c") is not None
    streamed = read_table(tmp_path / "streamed" / "cards.parquet", NORMALISED)
    pd.testing.assert_frame_equal(streamed, read_table(tmp_path / "memory" / "cards.parquet", NORMALISED))
    assert {"exact", "near"} <= set(streamed["duplicate_kind"].dropna())
    assert (tmp_path / "memory" / "redactions.json").read_text() == (tmp_path / "streamed" / "redactions.json").read_text()
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith("normalise-")]  # the work folder removed

    caplog.clear()  # all rows in one batch: the bytes of the run in memory; every text from the memo
    with caplog.at_level("INFO"):
        run(cards_path=tmp_path / "in.parquet", out_dir=tmp_path / "again", params=PARAMS, cache_dir=tmp_path / "c")
    assert f"{len(cards)} cards, 0 texts normalised" in caplog.text
    assert (tmp_path / "memory" / "cards.parquet").read_bytes() == (tmp_path / "again" / "cards.parquet").read_bytes()
