"""FAISS index layer: exact Flat search vs numpy, approximate recall, persistence and errors."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from lossbench.errors import LossbenchError
from lossbench.faiss_index import build_index, describe, load_index, save_index, search


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered():
    """2000 gallery / 100 query unit vectors in dim 32 around 40 cluster centres."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 32))
    gallery = _normalise(centres[rng.integers(0, 40, 2000)] + 0.5 * rng.normal(size=(2000, 32)))
    queries = _normalise(centres[rng.integers(0, 40, 100)] + 0.5 * rng.normal(size=(100, 32)))
    return gallery, queries


def _recall_at_10(index, gallery, queries) -> float:
    _, exact = search(build_index(gallery, "Flat"), queries, 10)
    _, approx = search(index, queries, 10)
    return float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)]))


def test_flat_equals_brute_force(clustered):
    gallery, queries = clustered
    scores, ids = search(build_index(gallery, "Flat", threads=1), queries, 10)
    sims = queries.astype(np.float64) @ gallery.T.astype(np.float64)
    expected = np.argsort(-sims, axis=1)[:, :10]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(sims, expected, axis=1), atol=1e-5)
    assert scores.dtype == np.float32 and ids.dtype == np.int64


def test_converts_float64_and_non_contiguous_input(clustered):
    gallery, queries = clustered
    index = build_index(np.asfortranarray(gallery.astype(np.float64)), "Flat")
    _, ids = search(index, queries.astype(np.float64)[:, ::-1][:, ::-1], 5)
    _, expected = search(build_index(gallery), queries, 5)
    np.testing.assert_array_equal(ids, expected)


@pytest.mark.parametrize("factory, params", [("HNSW32", {"ef_search": 64}), ("IVF16,Flat", {"nprobe": 4})])
def test_approximate_recall_vs_flat(clustered, factory, params):
    gallery, queries = clustered
    index = build_index(gallery, factory, seed=0, **params)
    recall = _recall_at_10(index, gallery, queries)
    print(f"\n{factory} {params}: recall@10 vs Flat = {recall:.3f}")
    assert recall > 0.5
    info = describe(index)
    assert info["ntotal"] == 2000 and info["dim"] == 32 and info["metric"] == "inner_product"
    assert info.get("ef_search", info.get("nprobe")) == next(iter(params.values()))


def test_ivf_nprobe_all_lists_is_exact(clustered):
    gallery, queries = clustered
    index = build_index(gallery, "IVF16,Flat", nprobe=16)
    assert _recall_at_10(index, gallery, queries) == 1.0


def test_ivf_build_is_seeded(clustered):
    gallery, queries = clustered
    a = search(build_index(gallery, "IVF16,Flat", seed=3, nprobe=2), queries, 10)[1]
    b = search(build_index(gallery, "IVF16,Flat", seed=3, nprobe=2), queries, 10)[1]
    np.testing.assert_array_equal(a, b)

    def centroids(seed: int) -> np.ndarray:
        index = build_index(gallery, "IVF16,Flat", seed=seed)
        return faiss.extract_index_ivf(index).quantizer.reconstruct_n(0, 16)

    assert not np.allclose(centroids(3), centroids(4))  # the seed reaches the k-means


def test_save_load_round_trip(tmp_path, clustered):
    gallery, queries = clustered
    index = build_index(gallery, "IVF16,Flat", nprobe=3)
    path = tmp_path / "sub" / "gallery.faiss"
    save_index(index, path)
    assert [p.name for p in path.parent.iterdir()] == ["gallery.faiss"]  # no temporary left behind
    loaded = load_index(path)
    for a, b in zip(search(index, queries, 7), search(loaded, queries, 7)):
        np.testing.assert_array_equal(a, b)
    assert describe(loaded) == describe(index)
    assert describe(loaded)["nprobe"] == 3


def test_load_errors(tmp_path):
    with pytest.raises(LossbenchError, match=r"not found: build it with `dvc repro run@<loss>-<seed>`"):
        load_index(tmp_path / "missing.faiss")
    bad = tmp_path / "bad.faiss"
    bad.write_bytes(b"not an index")
    with pytest.raises(LossbenchError, match="not a readable FAISS index"):
        load_index(bad)


def test_k_larger_than_index_is_clipped():
    gallery = _normalise(np.random.default_rng(1).normal(size=(5, 8)))
    scores, ids = search(build_index(gallery), gallery[:2], 50)
    assert ids.shape == scores.shape == (2, 5)
    assert sorted(ids[0]) == list(range(5)) and ids[0, 0] == 0 and ids[1, 0] == 1


def test_idmap_factory_uses_gallery_rows_as_ids(clustered):
    gallery, queries = clustered
    _, ids = search(build_index(gallery, "IDMap,Flat"), queries, 5)
    np.testing.assert_array_equal(ids, search(build_index(gallery), queries, 5)[1])


def test_bad_inputs_give_clear_errors(clustered):
    gallery, queries = clustered
    with pytest.raises(LossbenchError, match="invalid index factory 'IVFbogus'.*index.factory"):
        build_index(gallery, "IVFbogus")
    with pytest.raises(LossbenchError, match="64 IVF lists but the gallery has only 20 vectors.*IVF1"):
        build_index(gallery[:20], "IVF64,Flat")
    with pytest.raises(LossbenchError, match="cannot train index factory 'IVF2,PQ4'.*fewer PQ bits"):
        build_index(gallery[:100], "IVF2,PQ4")
    with pytest.raises(LossbenchError, match="nprobe=4 applies only to IVF"):
        build_index(gallery, "Flat", nprobe=4)
    with pytest.raises(LossbenchError, match="dimension 16 but the index has 32"):
        search(build_index(gallery), queries[:, :16], 5)
    with pytest.raises(LossbenchError, match="k must be at least 1"):
        search(build_index(gallery), queries, 0)
    with pytest.warns(UserWarning, match="not L2-normalised"):
        build_index(gallery * 3)
