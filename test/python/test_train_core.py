"""Short training runs on pseudo-labelled synthetic images, and the precision policies."""

from __future__ import annotations

import warnings

import faiss
import numpy as np
import pytest
import torch

from nfhm.core.losses import CombinedMarginLoss
from nfhm.core.model import VisionTransformer, ViTConfig, load
from nfhm.core.partial_fc import PartialFC_V2
from nfhm.core.precision import Precision
from nfhm.core.train_step import make_optimizer, make_scheduler, train_step
from nfhm.core.transforms import EvalTransform

from synthetic_images import NUM_PATTERNS, make_images

# bf16/fp16 matmuls are emulated on CPUs without native support (AVX2: 6-50x slower than
# fp32), so those runs use 16px images: same architecture, 16 tokens instead of 49.
TINY_16PX = ViTConfig(16, 4, 32, 2, 2, 32, drop_path_rate=0.0)


def pseudo_labelled_images(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """UNICOM's recipe in miniature: k-means (faiss) over features gives the labels.
    The features here are the raw pixels."""
    images, _ = make_images(384, size, seed=0)
    tensors = torch.stack([EvalTransform(size)(image) for image in images])
    features = np.ascontiguousarray(tensors.flatten(1).numpy())
    kmeans = faiss.Kmeans(features.shape[1], NUM_PATTERNS, niter=20, seed=1, min_points_per_centroid=1)
    kmeans.train(features)
    _, assignment = kmeans.index.search(features, 1)
    return tensors, torch.from_numpy(assignment[:, 0]).long()


def train(backbone: torch.nn.Module, precision_name: str, size: int, steps: int) -> tuple[list[float], float]:
    """Losses per step and the final accuracy of nearest-centre on the pseudo-labels."""
    torch.manual_seed(0)
    images, labels = pseudo_labelled_images(size)
    head = PartialFC_V2(CombinedMarginLoss(32.0, 1.0, 0.3, 0.0), backbone.embedding_size, NUM_PATTERNS)
    optimizer = make_optimizer(backbone.train(), head, lr=1e-3)
    scheduler = make_scheduler(optimizer, total_steps=steps)
    precision = Precision.from_name(precision_name, "cpu")
    order = torch.Generator().manual_seed(0)
    losses = []
    with warnings.catch_warnings():
        # fp16's first steps overflow and are skipped by the scaler; torch then warns that
        # the scheduler stepped before the optimizer, which is expected.
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
        for _ in range(steps):
            batch = torch.randint(0, len(images), (64,), generator=order)
            losses.append(train_step(backbone, head, images[batch], labels[batch], optimizer, precision).loss)
            scheduler.step()
    with torch.no_grad():
        embeddings = backbone.eval()(images)
        predicted = (torch.nn.functional.normalize(embeddings) @ torch.nn.functional.normalize(head.weight).T).argmax(1)
    return losses, (predicted == labels).float().mean().item()


def check_learned(losses: list[float], accuracy: float) -> None:
    initial, final = np.mean(losses[:5]), np.mean(losses[-10:])
    assert np.isfinite(losses).all()
    assert final < 0.5 * initial, (initial, final)
    assert accuracy > 0.9


def test_fp32_training_on_the_cpu_config_learns() -> None:
    torch.manual_seed(0)
    backbone, _ = load("ViT-T/4@28px")  # random init: from scratch
    check_learned(*train(backbone, "fp32", size=28, steps=120))


@pytest.mark.parametrize("precision_name", ["bf16", "fp16"])
def test_mixed_precision_training_learns(precision_name: str) -> None:
    torch.manual_seed(0)
    check_learned(*train(VisionTransformer(TINY_16PX), precision_name, size=16, steps=80))


def test_small_batches_are_refused_by_the_batchnorm_head() -> None:
    backbone = VisionTransformer(TINY_16PX).train()
    head = PartialFC_V2(CombinedMarginLoss(32.0, 1.0, 0.3, 0.0), 32, 4)
    optimizer = make_optimizer(backbone, head, lr=1e-4)
    with pytest.raises(ValueError, match="too small for the BatchNorm head"):
        train_step(
            backbone,
            head,
            torch.randn(8, 3, 16, 16),
            torch.zeros(8, dtype=torch.long),
            optimizer,
            Precision.from_name("fp32", "cpu"),
        )


def test_optimizer_groups_and_one_cycle_peaks() -> None:
    backbone = VisionTransformer(TINY_16PX)
    head = PartialFC_V2(CombinedMarginLoss(32.0, 1.0, 0.3, 0.0), 32, 4)
    optimizer = make_optimizer(backbone, head, lr=2e-5)
    assert optimizer.param_groups[1]["params"] == [head.weight]
    assert optimizer.param_groups[0]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="total_steps"):
        make_scheduler(optimizer, total_steps=10)
    scheduler = make_scheduler(optimizer, total_steps=100)
    lrs = []
    for _ in range(99):
        optimizer.step()
        scheduler.step()
        lrs.append([group["lr"] for group in optimizer.param_groups])
    peak = max(range(len(lrs)), key=lambda i: lrs[i][0])
    assert peak in (8, 9)  # 10% warm-up
    assert lrs[peak][0] == pytest.approx(2e-5) and lrs[peak][1] == pytest.approx(1e-4)


def test_precision_policies() -> None:
    fp32, bf16, fp16 = (Precision.from_name(name, "cpu") for name in ("fp32", "bf16", "fp16"))
    assert not fp32.scaler.is_enabled() and not bf16.scaler.is_enabled() and fp16.scaler.is_enabled()
    layer = torch.nn.Linear(4, 4)
    with bf16.autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with fp32.autocast():
        assert layer(torch.randn(2, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="fp16"):
        Precision.from_name("fp8", "cpu")


def test_fp16_skips_overflowing_steps_and_stops_when_the_scale_collapses() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    precision = Precision.from_name("fp16", "cpu", min_scale=2.0**14)
    finite = (weight * 2).sum()
    precision.scale_loss(finite).backward()
    assert precision.step(optimizer)
    assert not torch.equal(weight.detach(), torch.ones(3))
    state = precision.state_dict()
    with pytest.raises(FloatingPointError, match="loss scale fell"):
        for _ in range(3):
            optimizer.zero_grad()
            before = weight.detach().clone()
            precision.scale_loss((weight * float("inf")).sum()).backward()
            assert not precision.step(optimizer)  # skipped, weights untouched
            assert torch.equal(weight.detach(), before)
    resumed = Precision.from_name("fp16", "cpu")
    resumed.load_state_dict(state)
    assert resumed.scaler.get_scale() == state["scale"]


def test_fp16_policy_keeps_gradients_that_underflow_without_a_scaler() -> None:
    # The week-11 failure: fp16 autocast with a plain backward() loses small gradients.
    # Here d(loss)/d(weight) is 4e-9 per entry, far below fp16's smallest subnormal (6e-8).
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 8)
    inputs = torch.full((4, 8), 1e-5)

    def loss() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.float16):
            out = layer(inputs)
        return out.float().sum() * 1e-4

    loss().backward()
    assert torch.count_nonzero(layer.weight.grad) == 0
    layer.zero_grad()
    before = layer.weight.detach().clone()
    optimizer = torch.optim.SGD([layer.weight], lr=1e7)
    precision = Precision.from_name("fp16", "cpu")
    precision.scale_loss(loss()).backward()
    assert precision.step(optimizer)
    torch.testing.assert_close(layer.weight.detach() - before, torch.full_like(before, -0.04), rtol=1e-2, atol=0)
