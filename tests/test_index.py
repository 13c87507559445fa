"""FAISS index layer: exact Flat search vs numpy, approximate recall, training sample, chunked filling,
persistence and errors."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from lossbench.core.errors import LossbenchError
from lossbench.index.faiss_index import build_index, chunk_rows, describe, load_index, save_index, search
from lossbench.index.training import min_train_size, training_sample


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


def _same_results(a, b, queries, k=10) -> None:
    for x, y in zip(search(a, queries, k), search(b, queries, k)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "factory, params", [("Flat", {}), ("IVF16,Flat", {"nprobe": 16}), ("IDMap,Flat", {}), ("IVF16,PQ8x4", {})]
)
def test_chunked_filling_from_a_memmap_equals_adding_at_once(tmp_path, clustered, factory, params):
    gallery, queries = clustered
    path = tmp_path / "gallery.npy"
    np.save(path, gallery)
    on_disk = np.load(path, mmap_mode="r")
    at_once = build_index(gallery, factory, **params)
    assert chunk_rows(gallery.shape[1]) >= len(gallery)  # one chunk: the whole test gallery
    chunked = build_index(on_disk, factory, rows_per_chunk=301, **params)  # 7 chunks, the last one short
    assert chunked.ntotal == len(gallery)
    _same_results(at_once, chunked, queries)
    if params.get("nprobe") == 16:  # every list searched: exact, like Flat
        _same_results(build_index(gallery, "Flat"), chunked, queries)


def test_training_sample_is_seeded_and_bounded(clustered):
    gallery, queries = clustered
    whole = training_sample(gallery, None, seed=0)
    np.testing.assert_array_equal(whole, gallery)
    np.testing.assert_array_equal(training_sample(gallery, 5000, seed=0), gallery)  # smaller gallery: all of it
    sample = training_sample(gallery, 700, seed=3)
    assert sample.shape == (700, 32)
    rows = [int(np.flatnonzero((gallery == row).all(axis=1))[0]) for row in sample]
    assert rows == sorted(set(rows))  # distinct gallery rows, in gallery order
    np.testing.assert_array_equal(training_sample(gallery, 700, seed=3), sample)
    assert not np.array_equal(training_sample(gallery, 700, seed=4), sample)

    def build(seed: int, train_size: int | None):
        return build_index(gallery, "IVF16,Flat", seed=seed, nprobe=2, train_size=train_size)

    def centroids(index) -> np.ndarray:
        return faiss.extract_index_ivf(index).quantizer.reconstruct_n(0, 16)

    _same_results(build(3, 700), build(3, 700), queries)  # same params, same index
    assert not np.allclose(centroids(build(3, 700)), centroids(build(4, 700)))
    assert not np.allclose(centroids(build(3, 700)), centroids(build(3, None)))  # trained on the sample only


@pytest.mark.parametrize(
    "factory, needed, why",
    [
        ("Flat", 0, ""),
        ("HNSW32", 0, ""),
        ("IVF16,Flat", 624, "39 per centroid × 16 IVF lists"),
        ("IVF4096,PQ32", 159744, "39 per centroid × 4096 IVF lists"),
        ("IVF16,PQ8", 9984, "39 per centroid × 256 PQ centroids per sub-vector"),
        ("PQ8x4", 624, "39 per centroid × 16 PQ centroids per sub-vector"),
    ],
)
def test_min_train_size(factory, needed, why):
    assert min_train_size(faiss.index_factory(32, factory, faiss.METRIC_INNER_PRODUCT)) == (needed, why)


def test_train_size_errors_name_the_parameter_and_the_minimum(clustered):
    gallery, _ = clustered
    with pytest.raises(
        LossbenchError,
        match=r"index.train_size = 623 is too small for index factory 'IVF16,Flat': it needs at least 624 "
        r"training vectors \(39 per centroid × 16 IVF lists\); raise index.train_size to 624 or more, or set it "
        r"to null",
    ):
        build_index(gallery, "IVF16,Flat", train_size=623)
    with pytest.raises(LossbenchError, match=r"index.train_size = 5000 .* 'IVF4,PQ8'.* at least 9984 .*PQ centroids"):
        build_index(gallery, "IVF4,PQ8", train_size=5000)
    with pytest.raises(LossbenchError, match=r"index.train_size must be a positive integer or null, got 0"):
        build_index(gallery, "Flat", train_size=0)
    flat = build_index(gallery, "Flat", train_size=1)  # nothing to train: any size will do
    _same_results(flat, build_index(gallery, "Flat"), gallery[:5])


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
    with pytest.raises(LossbenchError, match=r"not found: build it with `dvc repro index@<loss>`"):
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


def test_all_vs_all_neighbours_leave_each_item_out_and_match_the_exact_ranking():
    """The index step's all-vs-all search (each item against the others) gives what the exact ranking gives."""
    from lossbench.evaluation.evaluate import index_first_hits
    from lossbench.index.build import without_self
    from lossbench.metrics.streaming import evaluate_streaming, topk_values

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(30), 4)
    labels[-3:] = [100, 101, 102]  # singletons (and identity 29, left with one image): distractors only
    items = rng.normal(size=(len(labels), 16)).astype(np.float32) + 1.5 * rng.normal(size=(103, 16))[labels]
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    scores, ids = search(build_index(items, "Flat"), items, 11)
    scores, ids = without_self(scores, ids, 10)
    assert ids.shape == (len(items), 10) and not (ids == np.arange(len(items))[:, None]).any()
    assert np.all(np.diff(scores, axis=1) <= 0)  # still ranked
    exact = evaluate_streaming(items, labels, topk=(1, 5, 10), resamples=1)
    first_hit = index_first_hits(ids[exact.scored], labels[exact.scored], labels)
    assert exact.scored.sum() == len(labels) - 4
    for key, values in topk_values(first_hit, (1, 5, 10)).items():
        assert values.mean() == pytest.approx(exact.metrics[key], abs=1e-12), key
