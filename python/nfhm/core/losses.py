"""Combined angular-margin logits: SphereFace (m1), ArcFace (m2), CosFace (m3).

``CombinedMarginLoss(s, m1, m2, m3)`` turns cosine logits into the scaled logits that the
softmax cross entropy (``nfhm.core.partial_fc``) consumes:

    target class y:  s * (cos(m1 * theta_y + m2) - m3)      theta = arccos(cos)
    other classes j: s * cos(theta_j)

Gradient convention (``straight_through``):

* ``False`` (default): the true gradient of the formula above, e.g. for ArcFace
  d/dcos = s * sin(theta + m2) / sin(theta). It is the gradient of the loss that is reported,
  matches insightface's original ArcFace/CosFace classes and the papers, and can be checked
  with ``torch.autograd.gradcheck``. ``arccos`` is evaluated on cosines clamped to
  [-1 + eps, 1 - eps], so the gradient is finite everywhere and 0 exactly at +-1.
* ``True``: UNICOM's ``CombinedMarginLoss`` applies the angle change under ``no_grad``, so the
  margin changes only the value and the gradient is a plain factor s. Use it for exact parity
  with UNICOM training runs. (For CosFace both conventions coincide.)

Caveat of the true gradient: where m1 * theta + m2 > pi the formula is no longer monotonic in
theta and its gradient pushes the target away; with the usual margins this needs a target
cosine below about -0.95 (m2 = 0.3), which the true-gradient ArcFace accepts as the papers do.

Unlike UNICOM's, any combination of margins is allowed (UNICOM raises for m1 != 1 and for
m2 and m3 together), and the input tensor is never modified in place.
"""

from __future__ import annotations

import torch
from torch import nn

# Keeps arccos' derivative finite; representable around 1.0 in float32.
_ACOS_EPS = 1e-6


class CombinedMarginLoss(nn.Module):
    """Input: cosine logits (N, C_local) and integer labels (N,) or (N, 1), where -1 marks a
    row whose class lives on another shard. Output: (N, C_local) scaled logits, float32
    (float64 stays float64)."""

    def __init__(
        self,
        s: float,
        m1: float,
        m2: float,
        m3: float,
        interclass_filtering_threshold: float = 0.0,
        straight_through: bool = False,
    ) -> None:
        super().__init__()
        self.s = s
        self.m1 = m1
        self.m2 = m2
        self.m3 = m3
        self.interclass_filtering_threshold = interclass_filtering_threshold
        self.straight_through = straight_through

    def margin(self, cos_target: torch.Tensor) -> torch.Tensor:
        """cos(m1 * theta + m2) - m3 on the target cosines (unscaled)."""
        if self.m1 == 1.0 and self.m2 == 0.0:
            return cos_target - self.m3  # CosFace or plain softmax: no arccos, no clamp needed
        theta = torch.acos(cos_target.clamp(-1.0 + _ACOS_EPS, 1.0 - _ACOS_EPS))
        return torch.cos(self.m1 * theta + self.m2) - self.m3

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = logits if logits.dtype == torch.float64 else logits.float()
        labels = labels.reshape(-1)
        rows = torch.nonzero(labels != -1).squeeze(1)
        cols = labels[rows].long()
        if self.interclass_filtering_threshold > 0:
            # Zero every non-target cosine above the threshold (likely a duplicate class).
            # Rows whose target is on another shard have no target column here.
            with torch.no_grad():
                keep = cos <= self.interclass_filtering_threshold
                keep[rows, cols] = True
            cos = cos * keep
        target = cos[rows, cols]
        new_target = self.margin(target)
        if self.straight_through:
            new_target = target + (new_target - target).detach()
        # One new (N, C) tensor: the class matrix can be large.
        return (cos * self.s).index_put_((rows, cols), new_target * self.s)
