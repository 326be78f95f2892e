"""What a trained MMGAT reports: probabilities, as the exported artifact computes them and the
trainer evaluates them (one rule for both)."""

from __future__ import annotations

import torch
from torch import nn

from mmgat.model.labels import GROUP_OF_CLASS, NUM_GROUPS
from mmgat.model.mmgat import MMGAT


class Scorer(nn.Module):
    """(nodes, weights, scale_masks, node_mask) -> probs (B, C), group_probs (B, G), node_probs
    (B, N, C). Without the auxiliary head, a group's probability is that of its most probable
    member class (labels.group_max in torch)."""

    def __init__(self, model: MMGAT):
        super().__init__()
        self.model = model
        membership = torch.as_tensor(GROUP_OF_CLASS)[:, None] == torch.arange(NUM_GROUPS)
        self.register_buffer("membership", membership.float(), persistent=False)  # (C, G)

    def forward(self, nodes, weights, scale_masks, node_mask):
        out = self.model(nodes, weights, scale_masks, node_mask)
        probs = torch.sigmoid(out["logits"])
        if "group_logits" in out:
            group_probs = torch.sigmoid(out["group_logits"])
        else:
            group_probs = (probs[:, :, None] * self.membership.to(probs.device)).amax(dim=1)
        return probs, group_probs, torch.sigmoid(out["node_logits"])
