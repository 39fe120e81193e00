"""PartialFC_V2: the class-centre matrix and softmax cross entropy, sharded over ranks.

Interface-compatible with UNICOM's/insightface's ``PartialFC_V2(margin_loss, embedding_size,
num_classes, sample_rate, fp16, sample_num_feat)``; ``forward(embeddings, labels) -> loss``.

* Works without a process group (one process: plain computation, no communication) and with
  one (classes sharded over the W ranks exactly as UNICOM does: rank r owns
  ``C // W + (r < C % W)`` classes from ``C // W * r + min(r, C % W)``). Both give the same
  loss and gradients for the same global batch.
* Any device (no ``.cuda()``), any per-rank batch size (ranks may even differ), labels of any
  integer dtype, shaped (B,) or (B, 1).
* Class sampling (``sample_rate < 1``) keeps every class present in the global batch plus
  random others, ``max(int(sample_rate * C), #positives)`` in all. The choice is made over
  all C classes with a generator seeded identically on every rank, and each rank keeps the
  chosen classes it owns: every world size picks the same classes for the same seed. (UNICOM
  draws ``int(sample_rate * num_local)`` per rank independently; the expected count is the
  same, but the choice then depends on W.)
* The logits and the loss are computed in fp32 even inside an autocast region (``fp16=True``
  opts into fp16 logits as UNICOM does); the loss is ``log-sum-exp - target logit``, exact
  where UNICOM clamps the target probability at 1e-30.

Gradient convention: the embedding gradient is that of the returned global-batch loss. A
backbone wrapped in DistributedDataParallel averages gradients over ranks, which would shrink
them W-fold; pass ``ddp_backbone=True`` there to multiply the embedding gradient by W, as
UNICOM's AllGather does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx

from .world import all_gather_rows, gather_sizes

MarginLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _all_reduce(tensor: torch.Tensor, op: dist.ReduceOp, group: dist.ProcessGroup | None) -> None:
    if group is not None:
        dist.all_reduce(tensor, op, group=group)


class _AllGatherRows(torch.autograd.Function):
    """Differentiable all-gather: each rank gets back the summed gradient of its own rows."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, tensor: torch.Tensor, sizes: list[int], group: dist.ProcessGroup, grad_factor: float
    ) -> torch.Tensor:  # type: ignore[override]
        ctx.sizes, ctx.group, ctx.grad_factor = sizes, group, grad_factor
        return all_gather_rows(tensor, sizes, group)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:  # type: ignore[override]
        grad = grad.contiguous().clone()  # all_reduce works in place
        dist.all_reduce(grad, dist.ReduceOp.SUM, group=ctx.group)
        start = sum(ctx.sizes[: dist.get_rank(ctx.group)])
        own = grad[start : start + ctx.sizes[dist.get_rank(ctx.group)]]
        return own * ctx.grad_factor, None, None, None


class _ShardedSoftmaxCrossEntropy(torch.autograd.Function):
    """Mean softmax cross entropy over rows whose classes are split across ranks.

    ``labels`` are local column ids, -1 where the row's class lives on another rank. Global
    row max and exp-sum come from all_reduce; the backward needs no communication, since
    each rank's logits affect the loss only through its own columns.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, logits: torch.Tensor, labels: torch.Tensor, group: dist.ProcessGroup | None
    ) -> torch.Tensor:  # type: ignore[override]
        rows_total = logits.shape[0]
        if logits.shape[1]:
            row_max = logits.amax(dim=1, keepdim=True)
        else:  # this rank holds no (sampled) class this step
            row_max = logits.new_full((rows_total, 1), float("-inf"))
        _all_reduce(row_max, dist.ReduceOp.MAX, group)
        exp = logits.sub(row_max).exp_()
        exp_sum = exp.sum(dim=1, keepdim=True)
        _all_reduce(exp_sum, dist.ReduceOp.SUM, group)
        rows = torch.nonzero(labels != -1).squeeze(1)
        target = torch.zeros(rows_total, device=logits.device, dtype=logits.dtype)
        target[rows] = logits[rows, labels[rows]]
        _all_reduce(target, dist.ReduceOp.SUM, group)
        ctx.save_for_backward(exp.div_(exp_sum), rows, labels[rows])
        return (exp_sum.squeeze(1).log() + row_max.squeeze(1) - target).mean()

    @staticmethod
    def backward(ctx: FunctionCtx, grad_loss: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        prob, rows, cols = ctx.saved_tensors
        grad = prob.clone()
        grad[rows, cols] -= 1.0
        return grad * (grad_loss / prob.shape[0]), None, None


class PartialFC_V2(nn.Module):  # noqa: N801 - UNICOM's name, kept for drop-in use
    """Class centres ``weight`` (num_local, E), fp32, init normal(0, 0.01), and the loss.

    ``margin_loss(cos (N, C_local), labels (N, 1)) -> logits``; ``sample_rate``: fraction of
    classes per step (positives always in); ``fp16``: fp16 logits; ``sample_num_feat``: number
    of embedding dimensions drawn per step. Keyword-only: ``process_group`` (default: the
    world group when torch.distributed is initialised, else none), ``seed`` of the sampling
    generator (same on every rank), ``ddp_backbone`` (see the module docstring).
    """

    def __init__(
        self,
        margin_loss: MarginLoss,
        embedding_size: int,
        num_classes: int,
        sample_rate: float = 1.0,
        fp16: bool = False,
        sample_num_feat: int | None = None,
        *,
        process_group: dist.ProcessGroup | None = None,
        seed: int = 0,
        ddp_backbone: bool = False,
    ) -> None:
        super().__init__()
        if not callable(margin_loss):
            raise TypeError("margin_loss must be callable (logits, labels) -> logits")
        if not 0.0 < sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        distributed = process_group is not None or (dist.is_available() and dist.is_initialized())
        if distributed:
            group = process_group or dist.group.WORLD
            self.world_size, self.rank = dist.get_world_size(group), dist.get_rank(group)
        else:
            group, self.world_size, self.rank = None, 1, 0
        # One rank needs no communication, even inside a process group.
        self.process_group = group if self.world_size > 1 else None
        self.margin_softmax = margin_loss
        self.embedding_size = embedding_size
        self.num_classes = num_classes
        self.sample_rate = sample_rate
        self.fp16 = fp16
        self.sample_num_feat = sample_num_feat
        self.seed = seed
        self.embedding_grad_factor = float(self.world_size) if ddp_backbone else 1.0
        base, extra = divmod(num_classes, self.world_size)
        self.num_local = base + int(self.rank < extra)
        self.class_start = base * self.rank + min(self.rank, extra)
        self.weight = nn.Parameter(torch.normal(0.0, 0.01, (self.num_local, embedding_size)))
        self._generator: torch.Generator | None = None

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, local={self.class_start}..{self.class_start + self.num_local - 1}, "
            f"embedding_size={self.embedding_size}, sample_rate={self.sample_rate}, world_size={self.world_size}"
        )

    def generator(self) -> torch.Generator:
        """The sampling generator: seeded with ``seed`` on every rank, so ranks agree. It is
        recreated (from ``seed``) when the module moves to another device."""
        device = self.weight.device
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
        return self._generator

    def _sample_classes(self, labels: torch.Tensor) -> torch.Tensor:
        """Sorted local ids of the classes taking part in this step (see module docstring)."""
        positives = torch.unique(labels)
        count = max(int(self.sample_rate * self.num_classes), positives.numel())
        scores = torch.rand(self.num_classes, generator=self.generator(), device=labels.device)
        scores[positives] = 2.0  # above any rand() value: positives are always chosen
        chosen = torch.topk(scores, count).indices
        local = chosen - self.class_start
        return local[(local >= 0) & (local < self.num_local)].sort().values

    def forward(self, local_embeddings: torch.Tensor, local_labels: torch.Tensor) -> torch.Tensor:
        if local_labels.is_floating_point() or local_labels.is_complex() or local_labels.dtype == torch.bool:
            raise TypeError(f"labels must be integers, got {local_labels.dtype}")
        labels = local_labels.reshape(-1).long()
        if local_embeddings.ndim != 2 or local_embeddings.shape != (labels.shape[0], self.embedding_size):
            raise ValueError(
                f"expected embeddings ({labels.shape[0]}, {self.embedding_size}) for {labels.shape[0]} labels, "
                f"got {tuple(local_embeddings.shape)}"
            )
        with torch.autocast(local_embeddings.device.type, enabled=False):
            return self._loss(local_embeddings.float(), labels)

    def _loss(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        group = self.process_group
        if group is not None:
            sizes = gather_sizes(labels.shape[0], labels.device, group)
            embeddings = _AllGatherRows.apply(embeddings, sizes, group, self.embedding_grad_factor)
            labels = all_gather_rows(labels, sizes, group)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
            )
        with torch.no_grad():
            local_labels = labels - self.class_start
            local_labels[(local_labels < 0) | (local_labels >= self.num_local)] = -1
        weight = self.weight
        if self.sample_rate < 1.0:
            with torch.no_grad():
                index = self._sample_classes(labels)
                on_shard = local_labels != -1
                local_labels[on_shard] = torch.searchsorted(index, local_labels[on_shard])
            weight = weight[index]  # only the sampled rows receive gradient
        if self.sample_num_feat is not None and self.sample_num_feat < self.embedding_size:
            with torch.no_grad():
                dims = torch.randperm(self.embedding_size, generator=self.generator(), device=weight.device)
                dims = dims[: self.sample_num_feat]
            weight, embeddings = weight[:, dims], embeddings[:, dims]
        with torch.autocast(embeddings.device.type, dtype=torch.float16, enabled=self.fp16):
            logits = F.linear(F.normalize(embeddings), F.normalize(weight))
        # (N, 1) labels: UNICOM's own CombinedMarginLoss needs that shape as a plug-in.
        logits = self.margin_softmax(logits.float().clamp(-1.0, 1.0), local_labels.view(-1, 1))
        return _ShardedSoftmaxCrossEntropy.apply(logits, local_labels, group)
