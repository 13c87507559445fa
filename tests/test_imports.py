"""Stages that only read arrays (and reading params, which every stage does) never import torch or the model
libraries: each of them would add seconds of start-up to every run of the stage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "open_clip", "pytorch_metric_learning")


@pytest.mark.parametrize(
    "stage", ["synthesize", "preprocess", "weights", "index", "evaluate", "compare", "headline", "submit"]
)
def test_light_stages_import_no_torch(stage):
    code = (
        f"import sys, stages.{stage}; from lossbench.config.params import load_params; load_params(); "
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


@pytest.mark.parametrize("stage", ["train", "embed"])
def test_model_stages_do_import_torch(stage):  # the check above can fail: the heavy stages really load it
    code = f"import sys, stages.{stage}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"


@pytest.mark.parametrize("stage", ["train", "embed"])
def test_model_stages_load_no_image_libraries(stage):
    """A frozen run trains and embeds on cached features: torchvision (seconds of start-up) and timm stay out."""
    code = f"import sys, stages.{stage}; print(sorted(m for m in ('torchvision', 'timm') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_create_loss_from_the_registry_module_alone():  # without the package's lazy loader having run
    code = (
        "import torch; from lossbench.losses.registry import create_loss; "
        "print(type(create_loss('triplet', 3, 4, margin=0.2, mining='semihard')).__name__)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "TripletLoss"


def test_every_module_of_the_package_and_the_stages_imports():
    """An import of a moved or renamed module fails here, before a stage meets it."""
    modules = sorted(
        ".".join(path.with_suffix("").parts).removesuffix(".__init__")
        for folder in ("lossbench", "stages")
        for path in (ROOT / folder).rglob("*.py")
        for path in [path.relative_to(ROOT)]
    )
    code = (
        "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\nprint(len(sys.argv) - 1)"
    )
    result = subprocess.run([sys.executable, "-c", code, *modules], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(modules) > 50
