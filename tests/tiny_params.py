"""The tiny project params the end-to-end tests share (16 synthetic identities at 32 px, timm's test_resnet,
2 epochs, 3 losses x 2 seeds): a whole study in about a minute."""

from __future__ import annotations

from pathlib import Path

import yaml


def tiny_params(path: Path) -> None:
    params = yaml.safe_load(path.read_text())
    params["synthetic"].update(identities=16, images_per_id=6, image_size=32)
    params["data"].update(image_size=32, val_ids=0.25, test_ids=0.25)
    params["model"].update(backbone="timm:test_resnet", pretrained=None, freeze=False, embed_dim=16, hidden=32)
    params["train"].update(epochs=2, ids_per_batch=4, images_per_id=2, feature_views=2, patience=2)
    params["evaluate"].update(examples=2)
    params["stats"].update(resamples=200)
    params["seeds"] = [0, 1]
    params["threads"] = 1  # the other pytest-xdist worker has the other core
    params["tune"].update(trials=1, epochs=1)  # every loss tuned (one trial of one epoch): tuned values drive the runs
    losses = params["losses"]
    params["losses"] = {
        "baseline": losses["baseline"],
        "arcface": {**losses["arcface"], "scale": 16.0},
        "triplet": {**losses["triplet"], "model": {"freeze": True}},
    }
    params["loss"] = "arcface"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
