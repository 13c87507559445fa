"""Every loss against an independent hand-written reference (value and gradient), plus the registry."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from loss_options import REFERENCE_OPTIONS, full_options  # tests/loss_options.py
from open_clip.loss import ClipLoss as OpenClipLoss

from lossbench.core.errors import LossbenchError
from lossbench.losses import LOSSES, MetricLoss, create_loss, loss_options, register_loss
from lossbench.losses.clip import identity_pairs

# 12 samples, 5 identities of sizes 3, 3, 2, 3, 1 (the singleton has no positive), interleaved.
LABELS = torch.tensor([0, 1, 2, 0, 3, 1, 4, 2, 3, 0, 1, 3])
NUM_CLASSES, DIM = 5, 6
TOL = {"rtol": 1e-6, "atol": 1e-6}


def raw_features(n: int = len(LABELS), dim: int = DIM, seed: int = 0) -> torch.Tensor:
    """Un-normalised leaf features; losses see F.normalize(x) and gradients are taken w.r.t. x."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64).requires_grad_()


def make_loss(name: str, num_classes: int = NUM_CLASSES, **options) -> MetricLoss:
    torch.manual_seed(0)
    return create_loss(name, num_classes, DIM, **full_options(name, **options)).double()


def assert_same_value_and_grads(ours, reference, inputs, ref_inputs) -> torch.Tensor:
    """ours(*inputs) and reference(*ref_inputs) agree in value and in the gradient of every input."""
    value = ours(*inputs)
    ref_value = reference(*ref_inputs)
    torch.testing.assert_close(value, ref_value, **TOL)
    grads = torch.autograd.grad(value, inputs)
    ref_grads = torch.autograd.grad(ref_value, ref_inputs)
    for grad, ref_grad in zip(grads, ref_grads):
        assert grad.abs().max() > 0
        torch.testing.assert_close(grad, ref_grad, **TOL)
    return value


def clone_leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().requires_grad_()


def mean_nonzero(losses: list[torch.Tensor]) -> torch.Tensor:
    """pml AvgNonZeroReducer: mean over the strictly positive terms (0 when none)."""
    positive = [v for v in losses if v.item() > 0]
    return torch.stack(positive).mean() if positive else torch.zeros((), dtype=torch.float64)


def dist(e: torch.Tensor, i: int, j: int) -> torch.Tensor:
    return ((e[i] - e[j]) ** 2).sum().sqrt()


# ---------------------------------------------------------------- classification-style losses


def ref_margin_softmax(x, weight, labels, scale, target_logit):
    """CE over scale·cos with target_logit(cos_y) on the target class; weight is D×C."""
    cos = F.normalize(x, dim=1) @ F.normalize(weight, dim=0)
    target = F.one_hot(labels, weight.shape[1]).bool()
    return F.cross_entropy(scale * torch.where(target, target_logit(cos), cos), labels)


def arcface_target(margin):
    # cos(θ + m) = cos θ cos m − sin θ sin m
    return lambda cos: cos * math.cos(margin) - (1 - cos**2).sqrt() * math.sin(margin)


def cosface_target(margin):
    return lambda cos: cos - margin


def ref_linear_ce(x, fc_weight, fc_bias, labels, scale, label_smoothing=0.0):
    logits = scale * F.normalize(x, dim=1) @ fc_weight.T + fc_bias
    log_p = logits.log_softmax(dim=1)
    nll = -log_p[torch.arange(len(labels)), labels]
    smooth = -log_p.mean(dim=1)
    return ((1 - label_smoothing) * nll + label_smoothing * smooth).mean()


def ref_center(x, centers, labels):
    e = F.normalize(x, dim=1)
    return 0.5 * sum(((e[i] - centers[labels[i]]) ** 2).sum() for i in range(len(labels))) / len(labels)


@pytest.mark.parametrize(
    ("name", "options", "target"),
    [
        ("arcface", {"scale": 64.0, "margin": 0.5}, arcface_target(0.5)),
        ("arcface", {"scale": 30.0, "margin": 0.3}, arcface_target(0.3)),
        ("cosface", {"scale": 64.0, "margin": 0.35}, cosface_target(0.35)),
        ("cosface", {"scale": 20.0, "margin": 0.2}, cosface_target(0.2)),
    ],
)
def test_margin_softmax_matches_reference(name, options, target):
    loss = make_loss(name, **options)
    weight = loss.head.weight
    x = raw_features()
    ref_weight = clone_leaf(weight)
    assert_same_value_and_grads(
        lambda x_, w_: loss(F.normalize(x_, dim=1), LABELS),
        lambda x_, w_: ref_margin_softmax(x_, w_, LABELS, options["scale"], target),
        (x, weight),
        (clone_leaf(x), ref_weight),
    )


def test_arcface_margin_is_radians():
    """A margin passed to pml as 0.5 *degrees* would be almost no margin: the loss must differ from m=0."""
    x = F.normalize(raw_features(), dim=1).detach()
    with_margin = make_loss("arcface", margin=0.5)(x, LABELS)
    no_margin = make_loss("arcface", margin=0.0)(x, LABELS)
    assert with_margin - no_margin > 1.0


def test_center_ce_matches_reference():
    loss = make_loss("center_ce", center_weight=0.7, scale=8.0, label_smoothing=0.1)
    fc, centers = loss.classifier.fc, loss.center.centers
    x = raw_features()
    params = (x, fc.weight, fc.bias, centers)
    assert_same_value_and_grads(
        lambda x_, *_: loss(F.normalize(x_, dim=1), LABELS),
        lambda x_, w, b, c: ref_linear_ce(x_, w, b, LABELS, 8.0, 0.1) + 0.7 * ref_center(x_, c, LABELS),
        params,
        tuple(clone_leaf(p) for p in params),
    )


def test_center_loss_component_formula():
    loss = make_loss("center_ce")
    centers = loss.center.centers
    x = raw_features()
    assert_same_value_and_grads(
        lambda x_, _: loss.center(F.normalize(x_, dim=1), LABELS),
        lambda x_, c: ref_center(x_, c, LABELS),
        (x, centers),
        (clone_leaf(x), clone_leaf(centers)),
    )
    # zero exactly when every embedding sits on its own class center
    assert loss.center(centers[LABELS].detach(), LABELS).item() == 0.0
    assert loss.center(centers[LABELS.roll(1)].detach(), LABELS).item() > 0.1


def test_arcface_center_matches_reference():
    opts = {"scale": 32.0, "margin": 0.4, "center_weight": 0.3, "ce_weight": 0.5, "ce_scale": 10.0}
    loss = make_loss("arcface_center", **opts)
    params = (
        raw_features(),
        loss.arcface.head.weight,
        loss.classifier.fc.weight,
        loss.classifier.fc.bias,
        loss.center.centers,
    )

    def reference(x, w_arc, w_fc, b_fc, centers):
        return (
            ref_margin_softmax(x, w_arc, LABELS, 32.0, arcface_target(0.4))
            + 0.3 * ref_center(x, centers, LABELS)
            + 0.5 * ref_linear_ce(x, w_fc, b_fc, LABELS, 10.0)
        )

    assert_same_value_and_grads(
        lambda x_, *_: loss(F.normalize(x_, dim=1), LABELS),
        reference,
        params,
        tuple(clone_leaf(p) for p in params),
    )


# ---------------------------------------------------------------- pair / triplet losses


def brute_force_triplets(e, labels, margin, mining):
    """Per-triplet losses relu(d_ap − d_an + margin) of the triplets `mining` keeps, by enumeration."""
    n = len(labels)
    with torch.no_grad():
        d = torch.tensor([[dist(e, i, j).item() for j in range(n)] for i in range(n)])
    same = labels[:, None] == labels[None, :]
    chosen = []
    if mining == "batch_hard":
        for a in range(n):
            pos = [p for p in range(n) if p != a and same[a, p]]
            neg = [k for k in range(n) if not same[a, k]]
            if pos and neg:
                chosen.append((a, max(pos, key=lambda p: d[a, p]), min(neg, key=lambda k: d[a, k])))
    else:
        for a, p, k in itertools.product(range(n), repeat=3):
            if a == p or not same[a, p] or same[a, k]:
                continue
            gap = d[a, k] - d[a, p]
            keep = {
                "none": True,
                "all": gap <= margin,
                "hard": gap <= min(margin, 0.0),
                "semihard": 0 < gap <= margin,
            }[mining]
            if keep:
                chosen.append((a, p, k))
    return [F.relu(dist(e, a, p) - dist(e, a, k) + margin) for a, p, k in chosen]


@pytest.mark.parametrize("mining", ["all", "none", "hard", "semihard", "batch_hard"])
def test_triplet_matches_brute_force(mining):
    margin = 0.3
    loss = make_loss("triplet", margin=margin, mining=mining)
    x = raw_features()
    with torch.no_grad():
        terms = brute_force_triplets(F.normalize(x, dim=1), LABELS, margin, mining)
    assert sum(t.item() > 0 for t in terms) >= 3  # the case is not vacuous
    assert_same_value_and_grads(
        lambda x_: loss(F.normalize(x_, dim=1), LABELS),
        lambda x_: mean_nonzero(brute_force_triplets(F.normalize(x_, dim=1), LABELS, margin, mining)),
        (x,),
        (clone_leaf(x),),
    )


def test_triplet_mining_changes_the_loss():
    x = F.normalize(raw_features(), dim=1).detach()
    values = {
        m: make_loss("triplet", margin=0.3, mining=m)(x, LABELS).item()
        for m in ("all", "hard", "semihard", "batch_hard")
    }
    assert len({round(v, 8) for v in values.values()}) == 4


def ref_contrastive(x, labels, pos_margin, neg_margin):
    e = F.normalize(x, dim=1)
    n = len(labels)
    pos, neg = [], []
    for i, j in itertools.permutations(range(n), 2):
        d = dist(e, i, j)
        if labels[i] == labels[j]:
            pos.append(F.relu(d - pos_margin))
        else:
            neg.append(F.relu(neg_margin - d))
    return mean_nonzero(pos) + mean_nonzero(neg)


@pytest.mark.parametrize(("pos_margin", "neg_margin"), [(0.0, 0.5), (1.4, 1.5)])
def test_contrastive_matches_brute_force(pos_margin, neg_margin):
    loss = make_loss("contrastive", pos_margin=pos_margin, neg_margin=neg_margin)
    x = raw_features(seed=3)
    if neg_margin > 1:  # both averages skip some zero terms in this case
        with torch.no_grad():
            e = F.normalize(x, dim=1)
            d = torch.cdist(e, e)
            same = LABELS[:, None] == LABELS[None, :]
            off = ~torch.eye(len(LABELS), dtype=torch.bool)
            assert 0 < (d[same & off] < pos_margin).sum() < (same & off).sum()
            assert 0 < (d[~same] > neg_margin).sum() < (~same).sum()
    assert_same_value_and_grads(
        lambda x_: loss(F.normalize(x_, dim=1), LABELS),
        lambda x_: ref_contrastive(x_, LABELS, pos_margin, neg_margin),
        (x,),
        (clone_leaf(x),),
    )


def ref_supcon(x, labels, temperature):
    e = F.normalize(x, dim=1)
    n = len(labels)
    per_anchor = []
    for i in range(n):
        others = [a for a in range(n) if a != i]
        positives = [p for p in others if labels[p] == labels[i]]
        if not positives:
            continue
        log_denominator = torch.logsumexp(torch.stack([e[i] @ e[a] / temperature for a in others]), dim=0)
        per_anchor.append(-torch.stack([e[i] @ e[p] / temperature - log_denominator for p in positives]).mean())
    return torch.stack(per_anchor).mean()


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_supcon_matches_formula(temperature):
    loss = make_loss("supcon", temperature=temperature)
    x = raw_features(seed=1)
    assert_same_value_and_grads(
        lambda x_: loss(F.normalize(x_, dim=1), LABELS),
        lambda x_: ref_supcon(x_, LABELS, temperature),
        (x,),
        (clone_leaf(x),),
    )


# ---------------------------------------------------------------- CLIP


def test_identity_pairs_hand_case():
    labels = torch.tensor([1, 0, 1, 0, 2, 0, 2, 0, 1])
    a, b = identity_pairs(labels)
    # label 0 at 1,3,5,7 → (1,3),(5,7); label 1 at 0,2,8 → (0,2) (8 left over); label 2 at 4,6 → (4,6)
    assert a.tolist() == [1, 5, 0, 4]
    assert b.tolist() == [3, 7, 2, 6]


def test_clip_matches_open_clip_when_each_identity_is_one_pair():
    labels = torch.tensor([3, 1, 0, 2, 1, 3, 0, 2])
    a_idx, b_idx = [2, 1, 3, 0], [6, 4, 7, 5]  # per label 0..3: its two positions
    loss = make_loss("clip", temperature=0.2)
    x = raw_features(len(labels), seed=2)
    ref_scale = clone_leaf(loss.logit_scale)

    def reference(x_, s):
        e = F.normalize(x_, dim=1)
        return OpenClipLoss()(e[a_idx], e[b_idx], s.exp())

    assert_same_value_and_grads(
        lambda x_, _: loss(F.normalize(x_, dim=1), labels),
        reference,
        (x, loss.logit_scale),
        (clone_leaf(x), ref_scale),
    )
    assert loss.logit_scale.item() == pytest.approx(math.log(5.0))


def test_clip_masks_same_identity_pairs():
    labels = torch.tensor([1, 0, 1, 0, 2, 0, 2, 0, 1])
    a_idx, b_idx = [1, 5, 0, 4], [3, 7, 2, 6]  # see test_identity_pairs_hand_case; pairs 0 and 1 share label 0
    allowed = torch.ones(4, 4, dtype=torch.bool)
    allowed[0, 1] = allowed[1, 0] = False
    loss = make_loss("clip", temperature=0.1, learnable_temperature=False)
    x = raw_features(len(labels), seed=4)

    def reference(x_):
        e = F.normalize(x_, dim=1)
        sim = 10.0 * e[a_idx] @ e[b_idx].T
        total = 0.0
        for m in (sim, sim.T):  # image a → b and b → a
            for i in range(4):
                row = torch.stack([m[i, j] for j in range(4) if allowed[i, j]])
                total = total + (torch.logsumexp(row, dim=0) - m[i, i]) / 4
        return total / 2

    value = assert_same_value_and_grads(
        lambda x_: loss(F.normalize(x_, dim=1), labels), reference, (x,), (clone_leaf(x),)
    )
    e = F.normalize(x, dim=1).detach()
    unmasked = OpenClipLoss()(e[a_idx], e[b_idx], torch.tensor(10.0, dtype=torch.float64))
    assert abs(value.item() - unmasked.item()) > 1e-3


def test_clip_without_pairs_is_a_clear_error():
    loss = make_loss("clip")
    with pytest.raises(LossbenchError, match="images_per_id"):
        loss(F.normalize(raw_features(4), dim=1), torch.tensor([0, 1, 2, 3]))


def test_clip_temperature_learns():
    loss = make_loss("clip", temperature=0.5)
    optimizer = torch.optim.SGD(loss.param_groups(0.5))
    e = F.normalize(raw_features(len(LABELS)), dim=1).detach()
    start = loss.logit_scale.item()
    for _ in range(5):
        optimizer.zero_grad()
        loss(e, LABELS).backward()
        optimizer.step()
    assert abs(loss.logit_scale.item() - start) > 1e-3


def test_clip_fixed_temperature_and_cap():
    fixed = make_loss("clip", temperature=0.5, learnable_temperature=False)
    assert list(fixed.parameters()) == [] and fixed.param_groups(1.0) == []
    assert fixed.scale().item() == pytest.approx(2.0)
    capped = make_loss("clip", temperature=0.001, max_logit_scale=50.0)
    assert capped.scale().item() == pytest.approx(50.0)


# ---------------------------------------------------------------- registry and interface


def test_registry_names_and_flags():
    assert set(LOSSES) == {
        "baseline",
        "arcface",
        "cosface",
        "triplet",
        "contrastive",
        "clip",
        "supcon",
        "center_ce",
        "arcface_center",
    }
    assert [n for n, cls in LOSSES.items() if not cls.Options.trains] == ["baseline"]
    assert {n for n, cls in LOSSES.items() if cls.uses_classes} == {"arcface", "cosface", "center_ce", "arcface_center"}


def test_baseline_forward_raises():
    loss = create_loss("baseline", NUM_CLASSES, DIM)
    with pytest.raises(LossbenchError, match="baseline"):
        loss(torch.zeros(2, DIM), torch.tensor([0, 1]))


def test_loss_options_are_described_and_have_no_defaults():
    assert loss_options("arcface") == {
        "scale": "a number > 0",
        "margin": "a number >= 0 and < 1.5708",
        "weights_lr_mult": "a number > 0",
    }
    assert loss_options("triplet") == {
        "margin": "a number >= 0",
        "mining": "one of 'all', 'hard', 'semihard', 'batch_hard', 'none'",
    }
    assert loss_options("clip")["learnable_temperature"] == "true/false"
    assert loss_options("baseline") == {}
    assert {name: set(loss_options(name)) for name in LOSSES} == {name: set(o) for name, o in REFERENCE_OPTIONS.items()}
    with pytest.raises(
        LossbenchError,
        match=r"loss 'arcface': 'margin', 'weights_lr_mult' are missing; pass them to "
        r"create_loss \(margin: a number >= 0 and < 1.5708; weights_lr_mult: ",
    ):
        create_loss("arcface", NUM_CLASSES, DIM, scale=30.0)


def test_unknown_loss_lists_known_names():
    with pytest.raises(LossbenchError, match="unknown loss 'arcfce'.*arcface.*triplet"):
        create_loss("arcfce", NUM_CLASSES, DIM)
    with pytest.raises(LossbenchError, match="arcfce"):
        loss_options("arcfce")


@pytest.mark.parametrize(
    ("name", "options", "pattern"),
    [
        (
            "arcface",
            {"margn": 0.3},
            r"loss 'arcface': unknown key 'margn'. Did you mean 'margin'\? "
            r"Allowed keys: scale, margin, weights_lr_mult",
        ),
        ("baseline", {"scale": 1.0}, r"loss 'baseline': unknown key 'scale'. Allowed keys: none"),
        ("arcface", {"margin": "big"}, r"loss 'arcface': 'margin' = 'big' must be a number"),
        ("clip", {"learnable_temperature": "yes"}, r"loss 'clip': 'learnable_temperature' = 'yes' must be true/false"),
        ("supcon", {"temperature": True}, r"loss 'supcon': 'temperature' = True must be a number"),
        ("triplet", {"mining": "hardest"}, r"loss 'triplet': 'mining' = 'hardest' must be one of 'all', 'hard'"),
        ("clip", {"temperature": 0}, r"loss 'clip': 'temperature' = 0 must be > 0"),
        ("center_ce", {"label_smoothing": 1.0}, r"loss 'center_ce': 'label_smoothing' = 1.0 must be >= 0 and < 1"),
    ],
)
def test_bad_options_are_clear_errors(name, options, pattern):
    with pytest.raises(LossbenchError, match=pattern):
        create_loss(name, NUM_CLASSES, DIM, **full_options(name, **options))


def test_integer_options_become_floats():
    loss = create_loss("arcface", NUM_CLASSES, DIM, **full_options("arcface", scale=30, margin=0))
    assert isinstance(loss.options.scale, float) and loss.options.scale == 30.0
    assert loss.head.pml_loss.scale == 30.0


def test_classifier_losses_need_two_classes():
    with pytest.raises(LossbenchError, match="num_classes=1"):
        create_loss("cosface", 1, DIM, **full_options("cosface"))
    no_classes = create_loss("triplet", 0, DIM, **full_options("triplet")).double()  # no classifier: 0 is fine
    assert type(no_classes) is LOSSES["triplet"] and no_classes.name == "triplet"
    x = raw_features()
    value = no_classes(x, LABELS)
    assert value.item() > 0
    torch.testing.assert_close(value, make_loss("triplet")(x, LABELS), **TOL)  # the class count plays no part


def test_register_loss_rejects_duplicates_and_foreign_schemas():
    from lossbench.config.loss_options import ArcFaceOptions, CosFaceOptions

    with pytest.raises(ValueError, match="twice"):
        register_loss("arcface")(type("Dup", (MetricLoss,), {"Options": ArcFaceOptions}))
    with pytest.raises(ValueError, match=r"Options must be the schema registered with @options_for\('newloss'\)"):
        register_loss("newloss")(type("New", (MetricLoss,), {"Options": CosFaceOptions}))
    assert "newloss" not in LOSSES


def test_every_schema_has_one_implementation_using_it():
    from lossbench.losses import LOSS_OPTIONS

    assert set(LOSS_OPTIONS) == set(LOSSES)
    assert all(LOSSES[name].Options is schema for name, schema in LOSS_OPTIONS.items())


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_param_groups_cover_all_loss_parameters(name):
    loss = create_loss(name, NUM_CLASSES, DIM, **full_options(name))
    grouped = [p for group in loss.param_groups(1e-3) for p in group["params"]]
    assert len(grouped) == len({id(p) for p in grouped})
    assert {id(p) for p in grouped} == {id(p) for p in loss.parameters()}


def test_param_group_learning_rates():
    def lrs(name, **options):
        return {g["name"]: g["lr"] for g in make_loss(name, **options).param_groups(0.01)}

    assert lrs("arcface") == {"class_weights": pytest.approx(0.1)}
    assert lrs("cosface", weights_lr_mult=2) == {"class_weights": pytest.approx(0.02)}
    assert lrs("center_ce", center_lr=0.3) == {"classifier": pytest.approx(0.1), "centers": 0.3}
    assert lrs("arcface_center") == {
        "class_weights": pytest.approx(0.1),
        "classifier": pytest.approx(0.1),
        "centers": 0.01,
    }
    assert lrs("clip") == {"logit_scale": 0.01}
    for name in ("triplet", "contrastive", "supcon", "baseline"):
        assert lrs(name) == {}
    centers = make_loss("center_ce").param_groups(0.01)[1]
    assert centers["weight_decay"] == 0.0 and centers["params"][0].shape == (NUM_CLASSES, DIM)


@pytest.mark.parametrize("name", sorted(n for n, cls in LOSSES.items() if cls.Options.trains))
def test_every_loss_gives_a_finite_scalar_with_gradient(name):
    loss = make_loss(name)
    x = raw_features()
    value = loss(F.normalize(x, dim=1), LABELS)
    assert value.ndim == 0 and torch.isfinite(value)
    (grad,) = torch.autograd.grad(value, x)
    assert torch.isfinite(grad).all() and grad.abs().max() > 0


# ---------------------------------------------------------------- clip with image–text pairs

NAMES = ("Ada_Lovelace", "Alan_Turing", "Grace_Hopper", "Edsger_Dijkstra", "Barbara_Liskov")


def text_clip_loss(weights: str, **options) -> MetricLoss:
    from lossbench.losses import LossContext

    context = LossContext(class_names=NAMES, backbone="open_clip:lossbench-tiny-text", pretrained=weights)
    torch.manual_seed(0)
    options = full_options("clip", pairs="text", **options)
    return create_loss("clip", NUM_CLASSES, DIM, context=context, **options).double()


def test_clip_text_prompts_are_the_centred_open_clip_text_features(tiny_clip_weights):
    import open_clip

    loss = text_clip_loss(tiny_clip_weights, prompt="a photo of {}, a famous person")
    reference = open_clip.create_model("lossbench-tiny-text", pretrained=tiny_clip_weights).eval()
    tokens = open_clip.get_tokenizer("lossbench-tiny-text")(
        [f"a photo of {n.replace('_', ' ')}, a famous person" for n in NAMES]
    )
    with torch.no_grad():
        features = F.normalize(reference.encode_text(tokens), dim=-1)
        expected = F.normalize(features - features.mean(0), dim=-1)  # centred over the identities
    torch.testing.assert_close(loss.text_features.float(), expected, rtol=1e-5, atol=1e-6)
    assert len(set(map(tuple, loss.text_features.tolist()))) == len(NAMES)  # distinct prompts, distinct features


def test_clip_text_pairs_match_reference(tiny_clip_weights):
    loss = text_clip_loss(tiny_clip_weights, temperature=0.2)
    x = raw_features(seed=5)
    projection = clone_leaf(loss.text_projection.weight)

    def reference(x_, w, s):
        images = F.normalize(x_, dim=1)
        texts = F.normalize(loss.text_features[LABELS] @ w.T, dim=1)  # prompt of each image's identity
        sim = s.exp() * images @ texts.T
        n, total = len(LABELS), 0.0
        for m in (sim, sim.T):  # image → prompt and prompt → image
            for i in range(n):
                row = torch.stack([m[i, j] for j in range(n) if j == i or LABELS[j] != LABELS[i]])
                total = total + (torch.logsumexp(row, dim=0) - m[i, i]) / n
        return total / 2

    assert_same_value_and_grads(
        lambda x_, w, s: loss(F.normalize(x_, dim=1), LABELS),
        reference,
        (x, loss.text_projection.weight, loss.logit_scale),
        (clone_leaf(x), projection, clone_leaf(loss.logit_scale)),
    )


def test_clip_text_trains_the_projection_and_keeps_the_text_tower_frozen(tiny_clip_weights):
    loss = text_clip_loss(tiny_clip_weights)
    groups = {g["name"]: g for g in loss.param_groups(0.05)}
    assert set(groups) == {"logit_scale", "text_projection"}
    assert {id(p) for g in groups.values() for p in g["params"]} == {id(p) for p in loss.parameters()}
    text_before, weight_before = loss.text_features.clone(), loss.text_projection.weight.detach().clone()
    optimizer = torch.optim.SGD(list(groups.values()))
    e = F.normalize(raw_features(), dim=1).detach()
    first = loss(e, LABELS).item()
    for _ in range(20):
        optimizer.zero_grad()
        value = loss(e, LABELS)
        value.backward()
        optimizer.step()
    assert value.item() < first
    assert torch.equal(loss.text_features, text_before)
    assert not torch.equal(loss.text_projection.weight, weight_before)


def test_clip_text_needs_names_and_an_open_clip_backbone(tiny_clip_weights):
    from lossbench.losses import LossContext

    few = LossContext(class_names=NAMES[:2], backbone="open_clip:lossbench-tiny-text", pretrained=tiny_clip_weights)
    with pytest.raises(LossbenchError, match="one identity name per class"):
        create_loss("clip", NUM_CLASSES, DIM, context=few, **full_options("clip", pairs="text"))
    timm_context = LossContext(class_names=NAMES, backbone="timm:test_resnet")
    with pytest.raises(LossbenchError, match="open_clip"):
        create_loss("clip", NUM_CLASSES, DIM, context=timm_context, **full_options("clip", pairs="text"))
    with pytest.raises(LossbenchError, match=r"loss 'clip': prompt 'a photo' has no '\{\}'"):
        create_loss("clip", NUM_CLASSES, DIM, context=few, **full_options("clip", pairs="text", prompt="a photo"))
