"""CombinedMarginLoss against closed-form values and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from nfhm.core.losses import CombinedMarginLoss

# (name, s, m1, m2, m3)
MARGINS = [
    ("arcface", 32.0, 1.0, 0.3, 0.0),
    ("cosface", 32.0, 1.0, 0.0, 0.35),
    ("sphereface", 16.0, 1.35, 0.0, 0.0),
    ("combined", 32.0, 1.2, 0.2, 0.1),
    ("softmax", 10.0, 1.0, 0.0, 0.0),
]


def sample(rows: int = 6, classes: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    cos = torch.rand(rows, classes, generator=generator, dtype=torch.float64) * 1.8 - 0.9
    labels = torch.randint(0, classes, (rows,), generator=generator)
    labels[1] = -1  # a row whose class lives on another shard
    return cos, labels


def closed_form(
    cos: torch.Tensor, labels: torch.Tensor, s: float, m1: float, m2: float, m3: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected logits and d(logit_ij)/d(cos_ij), written out element by element."""
    value = s * cos.clone()
    slope = torch.full_like(cos, s)
    for i, y in enumerate(labels.tolist()):
        if y < 0:
            continue
        c = float(cos[i, y])
        theta = math.acos(c)
        value[i, y] = s * (math.cos(m1 * theta + m2) - m3)
        slope[i, y] = s * m1 * math.sin(m1 * theta + m2) / math.sin(theta)
    return value, slope


@pytest.mark.parametrize(("name", "s", "m1", "m2", "m3"), MARGINS)
def test_values_and_gradients_match_closed_form(name: str, s: float, m1: float, m2: float, m3: float) -> None:
    cos, labels = sample()
    cos.requires_grad_(True)
    out = CombinedMarginLoss(s, m1, m2, m3)(cos, labels)
    expected, slope = closed_form(cos.detach(), labels, s, m1, m2, m3)
    torch.testing.assert_close(out, expected)
    out.sum().backward()  # each logit depends on its own cosine only
    torch.testing.assert_close(cos.grad, slope)


@pytest.mark.parametrize(("name", "s", "m1", "m2", "m3"), MARGINS)
def test_gradcheck(name: str, s: float, m1: float, m2: float, m3: float) -> None:
    cos, labels = sample(seed=1)
    loss = CombinedMarginLoss(s, m1, m2, m3)
    assert torch.autograd.gradcheck(lambda c: loss(c, labels), (cos.requires_grad_(True),))


def test_gradcheck_with_interclass_filtering() -> None:
    cos, labels = sample(seed=2)
    cos = torch.where((cos - 0.2).abs() < 0.05, cos + 0.1, cos)  # keep clear of the threshold kink
    loss = CombinedMarginLoss(32.0, 1.0, 0.3, 0.0, interclass_filtering_threshold=0.2)
    assert torch.autograd.gradcheck(lambda c: loss(c, labels), (cos.requires_grad_(True),))


def test_labels_as_column_and_any_integer_dtype() -> None:
    cos, labels = sample()
    loss = CombinedMarginLoss(32.0, 1.0, 0.3, 0.0)
    torch.testing.assert_close(loss(cos, labels), loss(cos, labels.view(-1, 1).to(torch.int32)))


def test_rows_of_other_shards_are_only_scaled() -> None:
    cos, labels = sample()
    out = CombinedMarginLoss(32.0, 1.0, 0.5, 0.0)(cos, labels)
    torch.testing.assert_close(out[1], 32.0 * cos[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "s", "m1", "m2", "m3"), MARGINS)
def test_no_nan_at_the_ends(dtype: torch.dtype, name: str, s: float, m1: float, m2: float, m3: float) -> None:
    cos = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 1.0], [1.0, 1.0, -1.0]], dtype=dtype, requires_grad=True)
    labels = torch.tensor([0, 0, 2])
    out = CombinedMarginLoss(s, m1, m2, m3, interclass_filtering_threshold=0.5)(cos, labels)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(cos.grad).all()


def test_straight_through_keeps_values_and_passes_gradient_s() -> None:
    cos, labels = sample()
    cos.requires_grad_(True)
    true_grad = CombinedMarginLoss(32.0, 1.0, 0.3, 0.0)
    straight = CombinedMarginLoss(32.0, 1.0, 0.3, 0.0, straight_through=True)
    out = straight(cos, labels)
    torch.testing.assert_close(out, true_grad(cos, labels))
    out.sum().backward()
    torch.testing.assert_close(cos.grad, torch.full_like(cos, 32.0))


def test_interclass_filtering_zeroes_confusable_non_targets() -> None:
    cos = torch.tensor([[0.9, 0.5, 0.1], [0.6, 0.7, 0.2]])
    labels = torch.tensor([0, -1])
    out = CombinedMarginLoss(10.0, 1.0, 0.0, 0.0, interclass_filtering_threshold=0.4)(cos, labels)
    # Row 0: its target 0.9 stays, the non-target 0.5 goes. Row 1 (target elsewhere): all above go.
    torch.testing.assert_close(out, torch.tensor([[9.0, 0.0, 1.0], [0.0, 0.0, 2.0]]))


def test_input_is_not_modified() -> None:
    cos, labels = sample()
    before = cos.clone()
    CombinedMarginLoss(32.0, 1.0, 0.3, 0.1, interclass_filtering_threshold=0.2)(cos, labels)
    assert torch.equal(cos, before)
