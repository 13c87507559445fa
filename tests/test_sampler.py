"""P×K sampler: batch composition, determinism, epoch coverage, DataLoader use and error cases."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lossbench.core.errors import LossbenchError
from lossbench.data.sampler import PKSampler

# 10 identities (labels 100..109, not contiguous) with 2..7 images each, shuffled order
_COUNTS = [5, 2, 7, 3, 4, 6, 2, 5, 3, 4]
LABELS = np.random.default_rng(0).permutation(np.repeat(np.arange(100, 110), _COUNTS))
P, K = 3, 4


def batches(sampler: PKSampler, epoch: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_each_batch_has_p_identities_with_k_images():
    sampler = PKSampler(LABELS, P, K, seed=1)
    for epoch in range(3):
        for batch in batches(sampler, epoch):
            assert len(batch) == P * K
            ids = Counter(LABELS[batch].tolist())
            assert len(ids) == P and set(ids.values()) == {K}
            for start in range(0, P * K, K):  # identity-major: K consecutive indices per identity
                block = batch[start : start + K]
                assert len(set(LABELS[block].tolist())) == 1
                label = LABELS[block[0]]
                members = np.flatnonzero(label == LABELS)
                if len(members) >= K:
                    assert len(set(block)) == K  # no repeats when the identity has enough images
                else:
                    assert set(block) == set(members.tolist())  # all its images, then repeats


def test_length_and_epoch_coverage():
    sampler = PKSampler(LABELS, P, K, seed=0)
    assert len(sampler) == 10 // P
    seen_per_epoch = []
    for epoch in range(4):
        result = batches(sampler, epoch)
        assert len(result) == len(sampler)
        ids = [label for batch in result for label in set(LABELS[batch].tolist())]
        assert len(ids) == len(set(ids)) == len(sampler) * P  # every identity at most once per epoch
        seen_per_epoch.append(set(ids))
    assert set.union(*seen_per_epoch) == set(range(100, 110))  # the dropped identity rotates


def test_every_identity_once_when_p_divides_the_identities():
    sampler = PKSampler(LABELS, 5, 4, seed=3)  # 41 images / (10 ids x K=4) -> 1 pass over the identities
    assert sampler.passes == 1 and len(sampler) == 2
    ids = [label for batch in batches(sampler) for label in set(LABELS[batch].tolist())]
    assert sorted(ids) == list(range(100, 110))


def test_default_passes_show_every_image_about_once_per_epoch():
    sampler = PKSampler(LABELS, 5, 2, seed=3)  # 41 images / (10 ids x K=2) -> 2 passes over the identities
    assert sampler.passes == 2 and len(sampler) == 4
    ids = Counter(label for batch in batches(sampler) for label in set(LABELS[batch].tolist()))
    assert set(ids.values()) == {2} and set(ids) == set(range(100, 110))


def test_same_seed_and_epoch_give_same_batches():
    a, b = PKSampler(LABELS, P, K, seed=7), PKSampler(LABELS, P, K, seed=7)
    assert batches(a, 2) == batches(b, 2)
    assert batches(a, 0) != batches(a, 1)
    assert batches(a, 0) == batches(a, 0)
    assert batches(a, 0) != batches(PKSampler(LABELS, P, K, seed=8), 0)


def test_works_as_a_dataloader_batch_sampler():
    dataset = TensorDataset(torch.arange(len(LABELS)), torch.as_tensor(LABELS))
    sampler = PKSampler(LABELS.tolist(), P, K, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler)
    sampler.set_epoch(5)
    loaded = [(idx.tolist(), lab) for idx, lab in loader]
    assert [idx for idx, _ in loaded] == batches(sampler, 5)
    assert all(lab.shape == (P * K,) for _, lab in loaded)


def test_too_few_identities_is_a_clear_error():
    with pytest.raises(
        LossbenchError, match=r"ids_per_batch=11 .*only 10 identities.*lower ids_per_batch to at most 10"
    ):
        PKSampler(LABELS, 11, K, seed=0)


@pytest.mark.parametrize(("p", "k", "pattern"), [(P, 1, "images_per_id=1"), (1, K, "ids_per_batch=1")])
def test_degenerate_batches_are_clear_errors(p, k, pattern):
    with pytest.raises(LossbenchError, match=pattern):
        PKSampler(LABELS, p, k, seed=0)


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_ranks_share_each_batch_as_disjoint_whole_identities(world_size):
    sampler = PKSampler(LABELS, 4, 2, seed=0)
    shares = [sampler.share(rank, world_size) for rank in range(world_size)]
    for batch in batches(sampler):
        parts = [batch[share] for share in shares]
        assert [i for part in parts for i in part] == batch  # rank order puts the global batch back together
        ids = [set(LABELS[part].tolist()) for part in parts]
        assert all(len(part_ids) == 4 // world_size for part_ids in ids)
        assert len(set.union(*ids)) == 4  # no identity on two ranks
        assert all(Counter(LABELS[part].tolist()) == dict.fromkeys(part_ids, 2) for part, part_ids in zip(parts, ids))


def test_batches_that_do_not_split_over_the_ranks_are_a_clear_error():
    with pytest.raises(LossbenchError, match=r"ids_per_batch=3 .* 2 processes.*multiple of 2"):
        PKSampler(LABELS, 3, K, seed=0).share(0, 2)
