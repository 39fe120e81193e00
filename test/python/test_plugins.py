"""Plug-ins by import path, including a module with UNICOM's own signatures."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nfhm.core import losses, model, partial_fc
from nfhm.core.plugins import DEFAULT_SPECS, PluginError, resolve
from nfhm.core.precision import Precision
from nfhm.core.train_step import make_optimizer, make_scheduler, train_step

# Stands in for a user's UNICOM checkout: UNICOM's signatures and conventions (load ignores
# device and returns train mode; the head wants int64 labels and one fixed batch size; the
# margin loss needs (N, 1) labels and applies ArcFace straight-through), small enough for a CPU.
UNICOM_LIKE = """
import torch
import torch.nn.functional as F
from nfhm.core.model import create_model
from nfhm.core.transforms import EvalTransform

calls = []

def load(name, device="cpu", download_root=None):
    calls.append(("load", name, download_root))
    return create_model(name).train(), EvalTransform(28)

class CombinedMarginLoss(torch.nn.Module):
    def __init__(self, s, m1, m2, m3, interclass_filtering_threshold=0):
        super().__init__()
        assert m1 == 1.0 and m3 == 0.0, "this stand-in does ArcFace only"
        self.s, self.m2 = s, m2

    def forward(self, logits, labels):
        calls.append(("margin", tuple(labels.shape)))
        rows = torch.where(labels != -1)[0]
        cols = labels[rows].view(-1)  # fails for 1-D labels, as UNICOM's scatter_ does
        with torch.no_grad():
            target = torch.cos(torch.acos(logits[rows, cols].clamp(-1 + 1e-6, 1 - 1e-6)) + self.m2)
            shifted = logits.clone()
            shifted[rows, cols] = target
        return (logits + (shifted - logits).detach()) * self.s

class PartialFC_V2(torch.nn.Module):
    def __init__(self, margin_loss, embedding_size, num_classes, sample_rate=1.0, fp16=False,
                 is_normlize=1, sample_num_feat=None):
        super().__init__()
        self.margin_softmax = margin_loss
        self.weight = torch.nn.Parameter(torch.normal(0, 0.01, (num_classes, embedding_size)))
        self.last_batch_size = 0

    def forward(self, local_embeddings, local_labels):
        assert local_labels.dtype == torch.int64
        if self.last_batch_size == 0:
            self.last_batch_size = local_embeddings.size(0)
        assert self.last_batch_size == local_embeddings.size(0)
        calls.append(("head", local_embeddings.shape[0]))
        logits = F.linear(F.normalize(local_embeddings), F.normalize(self.weight)).clamp(-1, 1)
        labels = local_labels.view(-1, 1)
        return F.cross_entropy(self.margin_softmax(logits, labels), labels.view(-1))
"""


@pytest.fixture
def unicom_like(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "unicom_like.py").write_text(textwrap.dedent(UNICOM_LIKE))
    sys.path.insert(0, str(tmp_path))
    yield "unicom_like"
    sys.path.remove(str(tmp_path))
    sys.modules.pop("unicom_like", None)


def test_defaults_resolve_to_nfhm() -> None:
    assert resolve(DEFAULT_SPECS["backbone"]) is model.load
    assert resolve(DEFAULT_SPECS["head"]) is partial_fc.PartialFC_V2
    assert resolve(DEFAULT_SPECS["margin_loss"]) is losses.CombinedMarginLoss
    assert resolve("nfhm.core.model:CONFIGS.get") == model.CONFIGS.get  # dotted attributes


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nfhm.model", "must look like"),
        (":load", "must look like"),
        ("nfhm.no_such_module:load", "cannot import module 'nfhm.no_such_module'"),
        ("nfhm.core.model:no_such_loader", "has no attribute 'no_such_loader'"),
    ],
)
def test_bad_specs_name_the_spec(spec: str, message: str) -> None:
    with pytest.raises(PluginError, match=message) as info:
        resolve(spec)
    assert repr(spec) in str(info.value)


def test_module_that_fails_to_import_is_reported(tmp_path: Path) -> None:
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('needs CUDA')\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(PluginError, match="needs CUDA"):
            resolve("broken_plugin:load")
    finally:
        sys.path.remove(str(tmp_path))


def test_unicom_signature_plugins_train(unicom_like: str) -> None:
    torch.manual_seed(0)
    loader = resolve(f"{unicom_like}:load")
    head_cls = resolve(f"{unicom_like}:PartialFC_V2")
    loss_cls = resolve(f"{unicom_like}:CombinedMarginLoss")
    # Called the way nfhm calls plug-ins (see nfhm.plugins).
    backbone, transform = loader("ViT-T/4@28px", device="cpu", download_root="/nowhere")
    head = head_cls(
        loss_cls(32.0, 1.0, 0.3, 0.0, 0.0), backbone.embedding_size, 4, sample_rate=1.0, sample_num_feat=None
    )
    images, labels = torch.randn(32, 3, 28, 28), torch.arange(32) % 4
    optimizer = make_optimizer(backbone, head, lr=1e-3)
    scheduler = make_scheduler(optimizer, total_steps=30)
    precision = Precision.from_name("fp32", "cpu")
    losses_seen = []
    for _ in range(30):
        losses_seen.append(train_step(backbone, head, images, labels, optimizer, precision).loss)
        scheduler.step()
    assert losses_seen[-1] < 0.5 * losses_seen[0]
    calls = sys.modules[unicom_like].calls
    assert calls[0] == ("load", "ViT-T/4@28px", "/nowhere")
    assert ("head", 32) in calls and ("margin", (32, 1)) in calls


def test_unicom_margin_loss_plugs_into_nfhm_head(unicom_like: str) -> None:
    # nfhm's head passes (N, 1) labels to the margin loss, as UNICOM's loss requires.
    torch.manual_seed(0)
    margin = resolve(f"{unicom_like}:CombinedMarginLoss")(32.0, 1.0, 0.3, 0.0)
    head = partial_fc.PartialFC_V2(margin, 16, 10)
    embeddings, labels = torch.randn(8, 16), torch.randint(0, 10, (8,))
    ours = partial_fc.PartialFC_V2(losses.CombinedMarginLoss(32.0, 1.0, 0.3, 0.0, straight_through=True), 16, 10)
    ours.load_state_dict(head.state_dict())
    torch.testing.assert_close(head(embeddings, labels), ours(embeddings, labels))
