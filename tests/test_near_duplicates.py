import numpy as np

from pipeline import near_duplicates
from pipeline.near_duplicates import candidate_pairs, char_vectors, near_pairs, signatures

TEXTS = ["vi trenger mer tid til innovasjon", "vi trenger mer tid til innovasjon i kommunen",
         "budsjettet er ettårig og hindrer langsiktighet", "budsjettet er ettårig og hindrer langsiktig arbeid",
         "innbyggerne må spørres tidlig", "ledere må tørre å prøve nytt", "ledere må tørre å prøve noe nytt",
         "kunstig intelligens i saksbehandlingen", ""]


def brute_force(texts, threshold):
    vectors = char_vectors(texts)
    similarity = (vectors @ vectors.T).toarray()
    return {(i, j) for i in range(len(texts)) for j in range(i + 1, len(texts)) if similarity[i, j] >= threshold}


def test_near_pairs_equal_the_all_pairs_comparison():
    first, second = near_pairs(TEXTS, 0.7)
    assert set(zip(first.tolist(), second.tolist())) == brute_force(TEXTS, 0.7) != set()


def test_signatures_depend_only_on_the_text():
    alone = signatures(TEXTS[:1])
    among = signatures(TEXTS)
    assert (alone[0] == among[0]).all() and among.shape == (len(TEXTS), near_duplicates.SIGNATURE_SIZE)


def test_a_huge_bucket_gives_linear_candidates_and_stays_connected(monkeypatch):
    monkeypatch.setattr(near_duplicates, "MAX_BUCKET_PAIRS_SIZE", 10)
    texts = [f"samme kort om budsjettet som alle skrev nummer {'x' * (i % 3)}" for i in range(60)]
    first, second = candidate_pairs(signatures(texts))
    assert len(first) < 60 * 59 / 2
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    pairs_first, pairs_second = near_pairs(texts, 0.7)
    graph = coo_matrix((np.ones(len(pairs_first)), (pairs_first, pairs_second)), shape=(60, 60))
    assert connected_components(graph, directed=False)[0] == 1
