from pipeline.norwegian import compound_reading, reading
from pipeline.topic_labels import TermAnalyzer, analyzer_for, attested_words, make_label, rank_keywords, shown, usage_in


def test_words_become_their_dictionary_form():
    terms = TermAnalyzer()("Siloene og budsjettene stopper løsninger")
    assert {"silo", "budsjett", "løsning"} <= set(terms)
    assert reading("innbyggerne") == ("noun", "innbygger")


def test_stop_words_adverbs_and_light_verbs_are_no_terms():
    assert TermAnalyzer()("Vi burde ofte gjøre det, og det gir altfor lite") == []


def test_a_form_far_commoner_than_its_lemma_is_its_own_word():
    assert reading("data") == ("noun", "data")  # not the lexicon's "datum"


def test_compounds_the_lexicon_lacks_are_nouns_of_their_last_part():
    assert compound_reading("kompetanseflukt") == ("noun", "kompetanseflukt")
    assert compound_reading("helseforetakene") == ("noun", "helseforetak")
    assert "kompetanseflukt" in TermAnalyzer()("Kompetanseflukt fra distriktene")


def test_key_phrases_are_an_adjective_before_a_noun_within_a_clause():
    analyzer = TermAnalyzer()
    assert "ettårig budsjett" in analyzer("Ettårige budsjetter hindrer innovasjon")
    assert "ettårig budsjett" not in analyzer("Det er ettårige, budsjetter")  # a comma between
    assert not any(" " in term for term in analyzer("Setningen kommunen sier"))  # two nouns: no phrase
    assert not any(" " in term for term in TermAnalyzer(max_words=1)("Ettårige budsjetter"))


def test_unknown_words_need_norwegian_letters_and_a_second_card_or_common_use():
    docs = ["Lange avstandar i nord", "Avstandar er ei utfordring", "Det er smä ting", "smä saker"]
    analyzer = TermAnalyzer(attested_words(docs))
    assert "avstandar" in analyzer(docs[0])  # nynorsk, on two cards
    assert "avstandar" not in TermAnalyzer()(docs[0])  # one card: could be a misreading
    assert "smä" not in analyzer(docs[2])  # misread letters, however often
    assert "fail" not in TermAnalyzer(frozenset({"fail"}))("Fail fast")  # English on a mixed card


def test_attested_words_count_cards_not_occurrences():
    assert attested_words(["silo silo", "budsjett", "Silo!"]) == frozenset({"silo"})


def test_keywords_are_ranked_by_cards_and_phrases_across_cards_dropped():
    docs = ["Ettårige budsjetter", "Budsjettet er ettårig", "Budsjett og penger"]
    analyzer = TermAnalyzer()
    ranked = rank_keywords(["penger", "ettårig budsjett", "budsjett", "penger budsjett"], usage_in(docs, analyzer))
    assert ranked == ["budsjett", "penger", "ettårig budsjett"]  # 3 cards, then c-TF-IDF order; no card says
    # "penger budsjett"


def test_labels_are_short_phrases_of_nouns_lemmas_and_phrases_as_written_without_repeats():
    docs = ["Ettårige budsjetter dreper innovasjon", "Ettårige budsjetter igjen", "Budsjettposten mangler"]
    usage = usage_in(docs, TermAnalyzer(attested_words(docs)))
    keywords = ["drepe", "budsjett", "budsjettpost", "ettårig budsjett", "innovasjon"]
    # "budsjettpost": a repeat; "drepe", a verb, stays a keyword
    assert make_label(keywords, 3, usage) == "Budsjett og innovasjon"
    assert make_label(["ettårig budsjett", "innovasjon"], 2, usage) == "Ettårige budsjetter og innovasjon"
    assert make_label(["drepe"], 3, usage) == "Drepe"  # no noun at all: the first keyword
    assert [shown(term, usage) for term in ("ettårig budsjett", "budsjett")] == ["ettårige budsjetter", "budsjett"]
    assert usage["budsjett"].cards == 2 and usage["budsjettpost"].cards == 1


def test_a_corpus_without_norwegian_content_words_still_gets_terms():
    docs = ["the with which", "which the with"]
    analyzer = analyzer_for(docs, 2)
    assert analyzer.lenient and analyzer(docs[0]) == ["the", "with", "which"]
    assert not analyzer_for(["Budsjett"], 2).lenient


def test_short_words_the_lexicon_lacks_are_abbreviations_not_terms():
    docs = ["Endringer i utlendingsloven mv", "Lov om statsborgerskap mv"]
    assert "mv" not in TermAnalyzer(attested_words(docs))(docs[0])


def test_a_word_the_lexicon_lacks_names_a_theme_only_when_two_of_its_cards_write_it():
    docs = ["Rovvilt og beitedyr", "Bestand av ulv og bjørn", "Ulv i bygda"]
    analyzer = TermAnalyzer(frozenset({"rovvilt"}))  # attested elsewhere in the corpus
    usage = usage_in(docs, analyzer)
    assert usage["rovvilt"].word_class == "unknown" and usage["rovvilt"].cards == 1
    assert "rovvilt" not in make_label(["rovvilt", "ulv", "bestand"], 3, usage).lower()
