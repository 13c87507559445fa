"""The real stage under torchrun: ``torchrun --nproc_per_node=2 -m stages.train arcface 0`` (gloo, CPU) exits 0,
writes byte for byte what ``python -m stages.train arcface 0`` writes, and only rank 0 writes.

tests/test_distributed.py checks the trainer in one Python process; this drives the stage entry point (arguments,
``distributed.session``, training, rank 0's checkpoint, embeddings, index and evaluation, the barrier) in a tiny
project: the end-to-end tests' tiny params (tests/tiny_params.py) with a frozen backbone (the head trains on cached features, as in the
default study: an MLP head with BatchNorm and dropout) and one torch thread per process.

No tolerance, because the agreement is exact: each rank computes the head and the loss on the same global batch of
the same cached features, with the same dropout draws, bitwise as one process does; DDP's average of the 2
identical gradients (halved, then summed) is exact, so the weights, embeddings and metrics are the same bits. (The
AdamW amplification tests/test_distributed.py avoids needs float noise to amplify; a trained backbone would bring
it.) A tolerance would not help the metrics anyway: they are rank-based, so a perturbation moves them by a whole
query or pair or not at all. The project's outputs are byte-reproducible, so every file is compared.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed
import yaml
from tiny_params import tiny_params  # tests/tiny_params.py

LOSS, SEED, EPOCHS = "arcface", 0, 2
METRICS = f"metrics/train/{LOSS}/seed{SEED}/summary.json"
TIMEOUT = 300  # seconds per command; guards against a hang only (a rank waiting forever for a dead peer)
AUDIT_HOOK = Path(__file__).resolve().parent / "write_audit"  # sitecustomize.py: records each rank's writes


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run a command in its own process group (a timeout kills torchrun's workers too); its stdout, or fail."""
    with subprocess.Popen(
        args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            out, err = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"{' '.join(args)} did not finish within {TIMEOUT} s")
    assert process.returncode == 0, f"{' '.join(args)} exited with {process.returncode}:\n{out}\n{err}"
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()}


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_torchrun_stage_writes_what_one_process_writes_and_rank_1_writes_nothing(
    tmp_path, copy_project, subprocess_env
):
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    copy_project(prepared)
    tiny_params(prepared / "params.yaml")
    params = yaml.safe_load((prepared / "params.yaml").read_text())
    params["model"]["freeze"] = True
    params["train"].update(epochs=EPOCHS)
    params["tune"]["trials"] = 0  # hand-set values: the stage trains without a tuning record
    params["threads"] = 1  # the same torch threads in every process: the same kernels
    (prepared / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {key: value for key, value in subprocess_env.items() if key not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    # no GPU: gloo and the CPU in every process; no bytecode caches written into the project's lossbench/
    env |= {"CUDA_VISIBLE_DEVICES": "", "PYTHONDONTWRITEBYTECODE": "1"}
    for stage in ("synthesize", "preprocess", "weights", "featurize"):
        run([sys.executable, "-m", f"stages.{stage}"], prepared, env)
    one = shutil.copytree(prepared, tmp_path / "one")
    two = shutil.copytree(prepared, tmp_path / "two")

    run([sys.executable, "-m", "stages.train", LOSS, str(SEED)], one, env)
    record = tmp_path / "writes"
    record.mkdir()
    audited = env | {"PYTHONPATH": os.pathsep.join(filter(None, [str(AUDIT_HOOK), env.get("PYTHONPATH")]))}
    out = run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1"]
        + [f"--master_port={free_port()}", "-m", "stages.train", LOSS, str(SEED)],
        two,
        audited | {"WRITE_AUDIT": str(record)},
    )

    assert "(rank 1: rank 0 writes)" in out  # 2 ranks trained
    summary = json.loads((one / f"metrics/train/{LOSS}/seed{SEED}/summary.json").read_text())
    assert summary["epochs_trained"] == EPOCHS  # the compared runs trained
    assert json.loads((two / METRICS).read_text()) == json.loads((one / METRICS).read_text())
    written, expected = files(two), files(one)
    assert written.keys() == expected.keys()
    assert [name for name in sorted(expected) if written[name] != expected[name]] == []
    rank0, rank1 = (json.loads((record / f"rank{rank}.json").read_text()) for rank in (0, 1))
    assert ["os.rename", METRICS] in rank0  # the hook sees rank 0's writes
    assert rank1 == []
