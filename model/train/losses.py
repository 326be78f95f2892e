"""MMGAT's loss (paper eq. 8):

    Loss = principal + auxiliary + Loss_label + alpha * (center_1 + center_2),  alpha = 0.015

plus one part of ours, `node`: BCE of every node's class logits against the labels of its own
second, where the data set has per-second labels (our synthetic sets; OpenMIC has none). The
paper supervises the pooled clip output only; but users read the per-second node outputs
(`seconds`, the heat strip), and without this loss those are only weakly localised.

principal / auxiliary / node: multi-label BCE over classes / onset groups / each node's
classes, averaged over labelled entries only (unknown labels of real recordings carry no
gradient; a group is unknown where an unlabelled member may be the one present).
Loss_label = MSE(S ⊙ L, recon).
center_1 pulls the clip embedding of every clip toward the learnable centre of each class it
contains (center loss, Wen et al. 2016, extended to multi-label); center_2 does the same for
onset groups. Every part can be switched off for the ablations; parts whose head the model
lacks (no auxiliary head, no label embeddings) are off by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmgat.model.labels import NUM_CLASSES, NUM_GROUPS

ALPHA = 0.015


@dataclass(frozen=True)
class LossSwitches:
    principal: bool = True
    auxiliary: bool = True
    label: bool = True
    center: bool = True
    node: bool = True
    alpha: float = ALPHA


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    mask = mask.to(losses.dtype)
    return (losses * mask).sum() / mask.sum().clamp(min=1.0)


class CenterLoss(nn.Module):
    """Mean over labelled-positive (clip, class) pairs of ½‖embedding − centre_class‖²."""

    def __init__(self, num_centers: int, dim: int):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_centers, dim) * 0.1)

    def forward(self, embedding: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor):
        distances = 0.5 * (embedding[:, None, :] - self.centers[None]).pow(2).sum(dim=-1)  # (B, K)
        positives = (targets * mask).to(distances.dtype)
        return (distances * positives).sum() / positives.sum().clamp(min=1.0)


class MMGATLoss(nn.Module):
    """Holds the learnable centres (train them with the model). forward -> (total, parts)."""

    def __init__(self, hidden: int, switches: LossSwitches = LossSwitches()):
        super().__init__()
        self.switches = switches
        self.class_centers = CenterLoss(NUM_CLASSES, hidden)
        self.group_centers = CenterLoss(NUM_GROUPS, hidden)

    def forward(self, out: dict, batch: dict) -> tuple[torch.Tensor, dict]:
        on = self.switches
        parts = {}
        if on.principal:
            parts["principal"] = masked_bce(out["logits"], batch["targets"], batch["label_mask"])
        if on.auxiliary and "group_logits" in out:
            parts["auxiliary"] = masked_bce(out["group_logits"], batch["group_targets"],
                                            batch["group_mask"])
        if on.node and "node_targets" in batch:
            known = batch["node_mask"][..., None].expand_as(out["node_logits"])
            if "node_label_mask" in batch:  # unknown seconds carry no gradient
                known = known & batch["node_label_mask"]
            parts["node"] = masked_bce(out["node_logits"], batch["node_targets"], known)
        if on.label and "label_recon" in out:
            parts["label"] = F.mse_loss(out["label_recon"], out["label_masked"])
        if on.center:
            parts["center_1"] = on.alpha * self.class_centers(
                out["embedding"], batch["targets"], batch["label_mask"])
            if on.auxiliary and "group_logits" in out:  # center_2 belongs to the auxiliary task
                parts["center_2"] = on.alpha * self.group_centers(
                    out["embedding"], batch["group_targets"], batch["group_mask"])
        if not parts:
            raise ValueError("every loss part is switched off")
        return sum(parts.values()), {name: value.item() for name, value in parts.items()}
