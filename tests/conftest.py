"""Test-wide settings: quiet progress bars, the cores shared out among pytest-xdist workers."""

import os

os.environ.setdefault("TQDM_DISABLE", "1")
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
THREADS = max(1, (os.cpu_count() or 1) // WORKERS)
"""Threads per worker: two workers on two cores get one each, so OpenMP never spins against the other worker."""
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy and torch load
    if "PYTEST_XDIST_WORKER" in os.environ:  # a worker inherits the controller's values: overwrite them
        os.environ[variable] = str(THREADS)
    else:
        os.environ.setdefault(variable, str(THREADS))

import torch  # noqa: E402

torch.set_num_threads(THREADS)

import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = [
    "lossbench",
    "stages",
    "presets",
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    ".dvcignore",
    ".gitignore",
]


def pytest_collection_modifyitems(items):
    """The slow end-to-end modules first: under pytest-xdist one worker runs them while the others take the rest."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)


@pytest.fixture(scope="session")
def copy_project():
    """Copy the project's code, pipeline and params into a folder (for DVC runs in temporary repositories)."""

    def copy(dest: Path) -> Path:
        for name in PROJECT_FILES:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(source, dest / name)
        return dest

    return copy


@pytest.fixture(scope="session")
def subprocess_env() -> dict[str, str]:
    """Environment for `python -m dvc …` subprocesses: this interpreter's bin first, quiet progress bars."""
    return {
        **os.environ,
        "TQDM_DISABLE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": "lossbench",
        "GIT_AUTHOR_EMAIL": "test@lossbench",
        "GIT_COMMITTER_NAME": "lossbench",
        "GIT_COMMITTER_EMAIL": "test@lossbench",
    }


TINY_TEXT_CLIP = {  # a real open_clip architecture, small enough for a unit test; the default BPE tokenizer
    "embed_dim": 12,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


@pytest.fixture
def tiny_clip_weights(tmp_path, monkeypatch):
    """A registered tiny open_clip model (as ``open_clip:lossbench-tiny-text``) and a weights file for it."""
    import open_clip
    import open_clip.factory

    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "lossbench-tiny-text", TINY_TEXT_CLIP)
    torch.manual_seed(11)
    model = open_clip.create_model("lossbench-tiny-text", pretrained_text=False)
    path = tmp_path / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    return str(path)
