"""Threads shared among DVC queue workers; the model layout on every device."""

from __future__ import annotations

import os

import pytest
import torch

from lossbench.core.runtime import QUEUE_WORKER_PIDS, queue_workers, set_threads, to_device


def _project_with_workers(root, pids: list[int]) -> dict[str, str]:
    folder = root / QUEUE_WORKER_PIDS
    folder.mkdir(parents=True)
    for n, pid in enumerate(pids, start=1):
        (folder / f"dvc-exp-worker-{n}.pid").write_text(f"{pid}\n")
    (folder / "dvc-exp-worker-1.json").write_text("{}")  # other files of the queue are not workers
    return {"DVC_ROOT": str(root), "DVC_EXP_NAME": "tined-lame"}


def test_live_queue_workers_are_counted(tmp_path):
    dead = 2**22 + 12345  # above the kernel's pid_max default: no such process
    env = _project_with_workers(tmp_path, [os.getpid(), os.getppid(), dead])
    assert queue_workers(env) == 2


def test_outside_a_queued_experiment_there_is_one_worker(tmp_path):
    env = _project_with_workers(tmp_path, [os.getpid(), os.getppid()])
    assert queue_workers({"DVC_ROOT": env["DVC_ROOT"]}) == 1  # plain `dvc repro`: no experiment name
    assert queue_workers({}) == 1
    assert queue_workers({"DVC_ROOT": str(tmp_path / "elsewhere"), "DVC_EXP_NAME": "x"}) == 1


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_queue_workers_share_the_cores(tmp_path, monkeypatch, restore_threads):
    env = _project_with_workers(tmp_path, [os.getpid(), os.getppid()])
    monkeypatch.setattr(os, "environ", {**os.environ, **env})
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert set_threads(None) == 4 and torch.get_num_threads() == 4
    assert set_threads(3) == 3 and torch.get_num_threads() == 3  # an explicit `threads` wins


def test_without_a_queue_none_takes_every_core(monkeypatch, restore_threads):
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    torch.set_num_threads(1)
    assert set_threads(None) == 3 and torch.get_num_threads() == 3


def test_one_policy_covers_faiss_and_blas(restore_threads):
    import faiss
    from threadpoolctl import threadpool_info

    set_threads(1)
    assert faiss.omp_get_max_threads() == 1
    assert {pool["num_threads"] for pool in threadpool_info()} == {1}
    set_threads(2)
    assert faiss.omp_get_max_threads() == 2 and torch.get_num_threads() == 2


def test_conv_weights_move_to_channels_last():
    model = to_device(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(4, 2)), torch.device("cpu"))
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
