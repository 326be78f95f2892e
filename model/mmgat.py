"""MMGAT: multi-instance multi-scale graph attention with label semantic embeddings.

Bai, Wu, Zhang, "Multi-Instance Multi-Scale Graph Attention Neural Net with Label Semantic
Embeddings for Instrument Recognition", Signals 2025. One graph = one window of 1 s instances.

    nodes (B, N, D_in) ──► input projection ──► 3 x multi-scale multi-head graph attention
                                                   (scales = 1/2/3-hop neighbourhoods)
    label text embeddings L (C, D_text) ──► S ⊙ L ──► encoder ──► label features F (C, H)
                                                │                            │
                                                └──► decoder ──► recon (Loss_label)
    node features (B, N, H) · F  ──► per-node per-class logits ──► multi-instance pooling
                                  ──► clip logits (C) ; node features ──► onset-group logits (G)

With `second_readout`, the per-second outputs users read (node_logits) come from a readout of
their own: the pooled one then only gathers evidence for the clip, the per-second one only
localises (trained by the per-second node loss, see losses.py).

Padding: graphs in a batch are padded to the same N; `node_mask` marks real nodes, and a
padded node never changes a real output (it is excluded from attention and pooling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mmgat.model.audio import EMBED_DIM
from mmgat.model.labels import NUM_CLASSES, NUM_GROUPS

NEG = -1e4  # "minus infinity" that stays finite in fp16/ONNX softmax


@dataclass
class MMGATConfig:
    input_dim: int = EMBED_DIM
    hidden: int = 128
    layers: int = 3
    heads: int = 4
    scales: tuple = (1, 2, 3)
    dropout: float = 0.1
    label_embeddings: bool = True  # False: "graph only" ablation, a plain linear class head
    auxiliary: bool = True  # onset-group head (the principal-only ablation turns it off)
    second_readout: bool = False  # per-second outputs from a readout apart from the pooled one
    similarity: str = "cosine"  # instance-graph similarity (built outside the model)
    neighbours: int = 2  # m most similar nodes kept per node when sparsifying the graph
    text_dim: int = 384
    num_classes: int = NUM_CLASSES
    num_groups: int = NUM_GROUPS
    extra: dict = field(default_factory=dict)  # free-form notes (e.g. the input kind)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "MMGATConfig":
        values = dict(values)
        values["scales"] = tuple(values.get("scales", (1, 2, 3)))
        return cls(**values)


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    scores = scores.masked_fill(~allowed, NEG)
    return torch.softmax(scores, dim=-1) * allowed


class MultiScaleGraphAttention(nn.Module):
    """One layer: for every scale k and head h,
    e_ij = ReLU(a·cos(Hz_i, Hz_j) + b·L1(Hz_i, Hz_j) + c) + γ·Weight_ij,
    α_ij = softmax over j in N_k(i),  h_i = ReLU(NN(Σ_j α_ij V z_j));
    scales and heads are concatenated and projected back to `hidden` (residual + LayerNorm)."""

    def __init__(self, hidden: int, heads: int, num_scales: int, dropout: float):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden {hidden} is not divisible by heads {heads}")
        self.heads, self.head_dim, self.num_scales = heads, hidden // heads, num_scales
        self.query = nn.Linear(hidden, hidden, bias=False)  # H in the paper's similarity
        self.value = nn.Linear(hidden, hidden, bias=False)
        # [a, b, c] per scale and head; a starts positive so similar nodes attend more.
        self.score = nn.Parameter(torch.tensor([1.0, -1.0, 0.0]).repeat(num_scales, heads, 1))
        self.edge_prior = nn.Parameter(torch.ones(num_scales, heads))  # γ
        self.nn_weight = nn.Parameter(torch.empty(num_scales, heads, self.head_dim, self.head_dim))
        self.nn_bias = nn.Parameter(torch.zeros(num_scales, heads, self.head_dim))
        nn.init.xavier_uniform_(self.nn_weight.view(-1, self.head_dim, self.head_dim))
        self.out = nn.Linear(num_scales * hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, n, _ = x.shape
        return x.view(batch, n, self.heads, self.head_dim).transpose(1, 2)  # (B, h, N, dh)

    def forward(self, z, weights, scale_masks, node_mask):
        batch, n, hidden = z.shape
        q, v = self.split_heads(self.query(z)), self.split_heads(self.value(z))
        q_unit = F.normalize(q, dim=-1)
        cosine = q_unit @ q_unit.transpose(-1, -2)  # (B, h, N, N)
        l1 = (q[..., :, None, :] - q[..., None, :, :]).abs().mean(dim=-1)
        a, b, c = self.score.unbind(-1)  # each (S, h)
        e = torch.relu(a[None, :, :, None, None] * cosine[:, None]
                       + b[None, :, :, None, None] * l1[:, None] + c[None, :, :, None, None])
        e = e + self.edge_prior[None, :, :, None, None] * weights[:, None, None]  # (B,S,h,N,N)
        allowed = scale_masks[:, : self.num_scales, None] & node_mask[:, None, None, None, :]
        alpha = self.dropout(masked_softmax(e, allowed))
        aggregated = alpha @ v[:, None]  # (B, S, h, N, dh)
        h = torch.relu(torch.einsum("bshnd,shde->bshne", aggregated, self.nn_weight)
                       + self.nn_bias[None, :, :, None, :])
        h = h.permute(0, 3, 1, 2, 4).reshape(batch, n, self.num_scales * hidden)
        return self.norm(z + self.dropout(self.out(h)))


class LabelSemanticEmbedding(nn.Module):
    """Masked label autoencoder: S ⊙ L -> encoder (2 layers) -> F -> decoder (2 layers) -> recon."""

    def __init__(self, text_embeddings: torch.Tensor, hidden: int):
        super().__init__()
        classes, text_dim = text_embeddings.shape
        self.register_buffer("text", text_embeddings.float().clone())  # L, frozen
        self.mask_vector = nn.Parameter(torch.ones(text_dim))  # expanded to S (C x D)
        self.encoder = nn.Sequential(nn.Linear(text_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.decoder = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, text_dim))

    def forward(self):
        masked = self.mask_vector.expand_as(self.text) * self.text
        features = self.encoder(masked)
        return features, masked, self.decoder(features)


def lse_pool(logits: torch.Tensor, node_mask: torch.Tensor, sharpness: torch.Tensor) -> torch.Tensor:
    """Multi-instance pooling over nodes: (1/r) log mean exp(r x), between mean (r->0) and max."""
    r = F.softplus(sharpness) + 1e-3
    scaled = (r * logits).masked_fill(~node_mask[..., None], NEG)
    count = node_mask.sum(dim=1, keepdim=True).clamp(min=1).to(logits.dtype)
    return (torch.logsumexp(scaled, dim=1) - torch.log(count)) / r


class MMGAT(nn.Module):
    def __init__(self, config: MMGATConfig, text_embeddings: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.input = nn.Sequential(nn.LayerNorm(config.input_dim), nn.Linear(config.input_dim, hidden),
                                   nn.ReLU())
        self.layers = nn.ModuleList(
            MultiScaleGraphAttention(hidden, config.heads, len(config.scales), config.dropout)
            for _ in range(config.layers))
        if config.label_embeddings:
            if text_embeddings is None or tuple(text_embeddings.shape) != (config.num_classes, config.text_dim):
                raise ValueError(f"label embeddings need text embeddings of shape "
                                 f"({config.num_classes}, {config.text_dim})")
            self.labels = LabelSemanticEmbedding(text_embeddings, hidden)
            self.node_query = nn.Linear(hidden, hidden)
            self.class_bias = nn.Parameter(torch.zeros(config.num_classes))
        else:
            self.class_head = nn.Linear(hidden, config.num_classes)
        if config.auxiliary:
            self.group_head = nn.Linear(hidden, config.num_groups)
        self.pool_sharpness = nn.Parameter(torch.ones(config.num_classes + config.num_groups))
        if config.second_readout:  # registered last: older checkpoints keep their layout
            if config.label_embeddings:
                self.second_query = nn.Linear(hidden, hidden)
                self.second_bias = nn.Parameter(torch.zeros(config.num_classes))
            else:
                self.second_head = nn.Linear(hidden, config.num_classes)
        self.register_buffer("scale_index", torch.tensor([k - 1 for k in config.scales]),
                             persistent=False)

    def class_logits(self, z, query: nn.Linear, bias, label_features) -> torch.Tensor:
        """Per-node class logits: scaled dot products of the queried nodes with the label
        features F (C, H)."""
        return (query(z) @ label_features.T) / self.config.hidden ** 0.5 + bias

    def forward(self, nodes, weights, scale_masks, node_mask) -> dict:
        """nodes (B, N, D_in), weights (B, N, N), scale_masks (B, 3, N, N) bool, node_mask (B, N)
        bool -> logits (B, C), group_logits (B, G), node_logits (B, N, C), embedding (B, H)
        [+ label_masked, label_recon (C, D_text) with label embeddings]."""
        scale_masks = scale_masks.index_select(1, self.scale_index)
        z = self.input(nodes)
        for layer in self.layers:
            z = layer(z, weights, scale_masks, node_mask)
        out = {}
        if self.config.label_embeddings:
            label_features, out["label_masked"], out["label_recon"] = self.labels()
            node_logits = self.class_logits(z, self.node_query, self.class_bias, label_features)
            second_logits = node_logits if not self.config.second_readout else \
                self.class_logits(z, self.second_query, self.second_bias, label_features)
        else:
            node_logits = self.class_head(z)
            second_logits = self.second_head(z) if self.config.second_readout else node_logits
        classes = self.config.num_classes
        out["node_logits"] = second_logits  # what users read per second
        out["logits"] = lse_pool(node_logits, node_mask, self.pool_sharpness[:classes])
        if self.config.auxiliary:
            out["group_logits"] = lse_pool(self.group_head(z), node_mask, self.pool_sharpness[classes:])
        keep = node_mask[..., None].to(z.dtype)
        out["embedding"] = (z * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)
        return out
