"""P×K batch sampler: each batch holds P distinct identities with K images each."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from lossbench.core.errors import LossbenchError


class PKSampler:
    """Batch sampler (for `DataLoader(batch_sampler=...)`) yielding lists of dataset indices.

    A pass shuffles the identities and walks through them P at a time, so every identity appears in
    at most one batch per pass (`num_ids // P` full batches; the `num_ids % P` identities shuffled
    last sit that pass out). An epoch is enough passes to show every image about once (mean images
    per identity / K, at least 1). For each identity K of its images are drawn without
    replacement; an identity with fewer than K images contributes all of them plus draws *with
    replacement* to reach K (so it may repeat images). Batches are identity-major: K consecutive
    indices per identity. The order depends only on (seed, epoch): call `set_epoch` before each epoch.

    Data-parallel training draws the same global batches on every rank; `share` says which rows of each batch a
    rank embeds (a disjoint group of whole identities).
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        ids_per_batch: int,
        images_per_id: int,
        seed: int,
    ) -> None:
        labels = np.asarray(labels)
        identities, inverse = np.unique(labels, return_inverse=True)
        if images_per_id < 2:
            raise LossbenchError(
                f"images_per_id={images_per_id}: a P×K batch needs at least 2 images per identity "
                "(positive pairs); set images_per_id >= 2"
            )
        if ids_per_batch < 2:
            raise LossbenchError(
                f"ids_per_batch={ids_per_batch}: a P×K batch needs at least 2 identities (negatives); "
                "set ids_per_batch >= 2"
            )
        if ids_per_batch > len(identities):
            raise LossbenchError(
                f"ids_per_batch={ids_per_batch} but the training labels hold only {len(identities)} identities; "
                f"lower ids_per_batch to at most {len(identities)}"
            )
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))[:-1]
        self.indices_per_id: list[np.ndarray] = np.split(order, bounds)
        self.ids_per_batch = ids_per_batch
        self.images_per_id = images_per_id
        self.seed = seed
        # an epoch sees every image about once: mean images per identity / K passes over the identities
        self.passes = max(1, round(len(labels) / (len(identities) * images_per_id)))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose (deterministic) batches `__iter__` yields."""
        self.epoch = epoch

    def share(self, rank: int, world_size: int) -> slice:
        """The rows of every batch that rank ``rank`` of ``world_size`` embeds: P / world_size whole identities
        (consecutive blocks in rank order, so the ranks' shares put back in order are the batch)."""
        if self.ids_per_batch % world_size:
            raise LossbenchError(
                f"ids_per_batch={self.ids_per_batch} cannot be split evenly over {world_size} processes; "
                f"set train.ids_per_batch to a multiple of {world_size}"
            )
        rows = self.ids_per_batch // world_size * self.images_per_id
        return slice(rank * rows, (rank + 1) * rows)

    def _batches_per_pass(self) -> int:
        return len(self.indices_per_id) // self.ids_per_batch

    def __len__(self) -> int:
        return self._batches_per_pass() * self.passes

    def _draw(self, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
        k = self.images_per_id
        if len(pool) >= k:
            return rng.choice(pool, size=k, replace=False)
        extra = rng.choice(pool, size=k - len(pool), replace=True)
        return np.concatenate([rng.permutation(pool), extra])

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        for _ in range(self.passes):
            id_order = rng.permutation(len(self.indices_per_id))
            for start in range(0, self._batches_per_pass() * self.ids_per_batch, self.ids_per_batch):
                batch_ids = id_order[start : start + self.ids_per_batch]
                yield [int(i) for ident in batch_ids for i in self._draw(rng, self.indices_per_id[ident])]
