"""Save a trained model (weights only + the resolved config) and load it back for embedding and search.

torch and the model code load only inside the functions that need them: `compare` reads configs without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from lossbench.core.errors import LossbenchError
from lossbench.core.io import atomic_torch_save, atomic_write_json

if TYPE_CHECKING:
    import torch

    from lossbench.models import EmbeddingModel, HeadModel

WEIGHTS = "model.pt"
CONFIG = "config.json"
HEAD_ONLY, FULL = "head", "full"
"""``config["checkpoint"]``: a frozen backbone's run saves its head only; a fine-tuned one saves every weight."""


def save_model(directory: str | Path, state_dict: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
    """Write ``model.pt`` (a plain state dict, loadable with ``weights_only=True``) and ``config.json``."""
    directory = Path(directory)
    atomic_torch_save({k: v.detach().cpu() for k, v in state_dict.items()}, directory / WEIGHTS)
    atomic_write_json(directory / CONFIG, config)


def load_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    if not path.is_file():
        run = Path(directory)
        raise LossbenchError(
            f"{path} not found: the model of loss '{run.parent.name}' ({run.name}) is not trained yet; "
            f"run `dvc repro train@{run.parent.name}-{run.name.removeprefix('seed')}`."
        )
    return json.loads(path.read_text(encoding="utf-8"))


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[EmbeddingModel, dict[str, Any]]:
    """The run's whole model, rebuilt from ``config.json`` with its weights, ready to embed images.

    A full checkpoint holds every weight (no pretrained weights are read). A head-only checkpoint (a frozen
    backbone) gets its backbone from the weights or seed its config names, exactly as training saw it.
    """
    import torch

    from lossbench.models.builder import build_model

    config = load_config(directory)
    head_only = config["checkpoint"] == HEAD_ONLY
    model = build_model(
        SimpleNamespace(**config["model"]),
        config["image_size"],
        config["backbone_seed"],
        config["head_seed"],
        config["head"],
        load_pretrained=head_only,
    )
    state = torch.load(Path(directory) / WEIGHTS, map_location="cpu", weights_only=True)
    if head_only:
        state = {**{k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}, **state}
    model.load_state_dict(state)
    return model.to(device).eval(), config


def load_head(directory: str | Path, device: str | torch.device = "cpu") -> tuple[HeadModel, dict[str, Any]]:
    """The run's head alone (from a head-only or a full checkpoint), to embed cached backbone features."""
    import torch

    from lossbench.models.builder import build_head_model

    config = load_config(directory)
    model = build_head_model(
        SimpleNamespace(**config["model"]), config["num_features"], config["head_seed"], config["head"]
    )
    state = torch.load(Path(directory) / WEIGHTS, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v for k, v in state.items() if k.startswith("head.")})
    return model.to(device).eval(), config
