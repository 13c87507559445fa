"""Deterministic synthetic face identities drawn in two styles: "photo" queries and "render" gallery.

Each identity has fixed traits (face shape, skin, hair, eyes, brows, nose, mouth, glasses, beard,
ears, marks); each image adds its own nuisance (pose, yaw, lighting, expression, background,
clothing, occlusion, noise). Every image is drawn from numpy streams seeded by
``(seed, identity index, image index)`` only, so images are independent of each other and of the
dataset size, and the same seed gives byte-identical PNG files. ``pixel_retrieval_top1`` measures how
hard the result is for raw pixels.

One job per module:

- :mod:`~lossbench.data.synthetic.traits` — an identity's traits and how they are sampled;
- :mod:`~lossbench.data.synthetic.nuisance` — an image's nuisance, how it is sampled, and the image
  operations for pose, background, lighting and sensor noise;
- :mod:`~lossbench.data.synthetic.face` — drawing the person (the registries of hair styles, noses,
  beards, glasses, eye shapes and occlusions);
- :mod:`~lossbench.data.synthetic.render` — the domain styles and :func:`render_face`;
- :mod:`~lossbench.data.synthetic.dataset` — the folder layout and :func:`generate_dataset`;
- :mod:`~lossbench.data.synthetic.probe` — the raw-pixel difficulty probe;
- :mod:`~lossbench.data.synthetic.common` — colour and point types shared by the others.
"""

from lossbench.data.synthetic.dataset import domain_counts, generate_dataset
from lossbench.data.synthetic.face import BEARD_STYLES, EYE_SHAPES, GLASSES_STYLES, HAIR_STYLES, NOSE_STYLES, OCCLUSIONS
from lossbench.data.synthetic.nuisance import Nuisance, image_nuisance, sample_nuisance
from lossbench.data.synthetic.probe import pixel_retrieval_top1
from lossbench.data.synthetic.render import DOMAIN_STYLES, render_face
from lossbench.data.synthetic.traits import identity_traits, sample_traits

__all__ = [
    "BEARD_STYLES",
    "DOMAIN_STYLES",
    "EYE_SHAPES",
    "GLASSES_STYLES",
    "HAIR_STYLES",
    "NOSE_STYLES",
    "OCCLUSIONS",
    "Nuisance",
    "domain_counts",
    "generate_dataset",
    "identity_traits",
    "image_nuisance",
    "pixel_retrieval_top1",
    "render_face",
    "sample_nuisance",
    "sample_traits",
]
