"""Identity prompts for image–text training: one prompt per identity, encoded once by an open_clip text tower."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lossbench.core.errors import LossbenchError
from lossbench.models.backbones import load_open_clip


def identity_prompt(template: str, identity: str) -> str:
    """``template`` with ``{}`` replaced by the identity's folder name read as words (``Ada_Lovelace`` → ``Ada Lovelace``)."""
    return template.replace("{}", identity.replace("_", " ").strip())


def open_clip_model_name(backbone: str) -> str:
    """The open_clip model name of an ``open_clip:<name>`` backbone spec; any other spec is an error."""
    family, _, name = backbone.partition(":")
    if family != "open_clip" or not name:
        raise LossbenchError(f"text prompts need an open_clip backbone ('open_clip:<name>'), got {backbone!r}")
    return name


def _tokenizer(name: str):
    import open_clip

    try:
        return open_clip.get_tokenizer(name)
    except Exception as exc:  # Hugging Face tokenizers need files that lossbench never downloads
        raise LossbenchError(
            f"cannot load the tokenizer of open_clip model {name!r} offline ({str(exc).splitlines()[0][:200]}); "
            "copy its Hugging Face cache here (see the README section on pretrained weights) or use pairs: image"
        ) from exc


@torch.no_grad()
def encode_prompts(backbone: str, pretrained: str | None, prompts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """L2-normalised text-tower features (``len(prompts) × text_dim``) of the open_clip model behind ``backbone``.

    The text tower comes from the same weights as the image tower (``pretrained``) and is used frozen.
    """
    name = open_clip_model_name(backbone)
    model = load_open_clip(name, pretrained).eval()
    model.visual = None  # only the text tower is needed; free the image tower's memory
    tokenize = _tokenizer(name)
    chunks = [
        model.encode_text(tokenize(list(prompts[i : i + batch_size])), normalize=True)
        for i in range(0, len(prompts), batch_size)
    ]
    return torch.cat(chunks).float()
