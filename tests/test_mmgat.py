"""The MMGAT module: shapes, padding, gradients, and the ablation switches."""

import numpy as np
import pytest
import torch

from mmgat.model.graph import build_graph
from mmgat.model.labels import NUM_CLASSES, NUM_GROUPS
from mmgat.model.mmgat import MMGAT, MMGATConfig

TEXT = torch.from_numpy(np.random.default_rng(0).standard_normal((NUM_CLASSES, 384)).astype(np.float32))


def model(**config) -> MMGAT:
    torch.manual_seed(0)
    cfg = MMGATConfig(**config)
    return MMGAT(cfg, TEXT if cfg.label_embeddings else None).eval()


def graphs(lengths, dim=128, seed=0, similarity="cosine"):
    generator = torch.Generator().manual_seed(seed)
    n = max(lengths)
    nodes = torch.randn(len(lengths), n, dim, generator=generator)
    node_mask = torch.arange(n)[None] < torch.tensor(lengths)[:, None]
    weights, masks = build_graph(nodes, node_mask, 2, similarity)
    return nodes, weights.float(), masks, node_mask


@pytest.mark.parametrize("lengths", [[1], [2, 1], [10, 7, 3], [64]])
def test_shapes(lengths):
    out = model()(*graphs(lengths))
    batch, n = len(lengths), max(lengths)
    assert out["logits"].shape == (batch, NUM_CLASSES)
    assert out["group_logits"].shape == (batch, NUM_GROUPS)
    assert out["node_logits"].shape == (batch, n, NUM_CLASSES)
    assert out["embedding"].shape == (batch, 128)
    assert out["label_recon"].shape == out["label_masked"].shape == (NUM_CLASSES, 384)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_padded_nodes_never_change_outputs():
    net = model()
    nodes, weights, masks, node_mask = graphs([6])
    alone = net(nodes, weights, masks, node_mask)
    pad = 5  # garbage nodes, garbage edges, masks that would connect them to everything
    padded_nodes = torch.cat([nodes, 100 * torch.randn(1, pad, 128)], dim=1)
    padded_weights = torch.rand(1, 6 + pad, 6 + pad)
    padded_weights[:, :6, :6] = weights
    padded_masks = torch.ones(1, 3, 6 + pad, 6 + pad, dtype=torch.bool)
    padded_masks[:, :, :6, :6] = masks
    padded_node_mask = torch.cat([node_mask, torch.zeros(1, pad, dtype=torch.bool)], dim=1)
    padded = net(padded_nodes, padded_weights, padded_masks, padded_node_mask)
    for key in ("logits", "group_logits", "embedding"):
        torch.testing.assert_close(padded[key], alone[key], atol=1e-5, rtol=0)
    torch.testing.assert_close(padded["node_logits"][:, :6], alone["node_logits"], atol=1e-5, rtol=0)


def test_every_parameter_gets_a_gradient():
    net = model().train()
    out = net(*graphs([8, 5]))
    loss = out["logits"].sum() + out["group_logits"].sum() + \
        (out["label_recon"] - out["label_masked"]).pow(2).mean() + out["embedding"].sum()
    loss.backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_single_scale_ignores_the_wider_scales_and_full_model_does_not():
    inputs = graphs([9])
    wider = inputs[2].clone()
    wider[:, 1:] = True  # scales 2 and 3 now connect everything
    for scales, should_change in (((1,), False), ((1, 2, 3), True)):
        net = model(scales=scales)
        a = net(*inputs)["logits"]
        b = net(inputs[0], inputs[1], wider, inputs[3])["logits"]
        assert (not torch.allclose(a, b, atol=1e-6)) == should_change


def test_label_embeddings_switch():
    with_labels, graph_only = model(), model(label_embeddings=False)
    assert hasattr(with_labels, "labels") and not hasattr(graph_only, "labels")
    inputs = graphs([5])
    other_text = MMGAT(MMGATConfig(), TEXT.flip(0))
    other_text.load_state_dict({k: v for k, v in with_labels.state_dict().items()
                                if k != "labels.text"}, strict=False)
    assert not torch.allclose(with_labels(*inputs)["logits"], other_text.eval()(*inputs)["logits"])
    assert "label_recon" not in graph_only(*inputs)


def test_auxiliary_switch():
    assert "group_logits" not in model(auxiliary=False)(*graphs([4]))


@pytest.mark.parametrize("similarity", ["l1", "euclidean", "emd"])
def test_similarity_switch_changes_the_graph_and_the_scores(similarity):
    net = model()
    cosine = net(*graphs([12], similarity="cosine"))["logits"]
    other = net(*graphs([12], similarity=similarity))["logits"]
    assert not torch.allclose(cosine, other, atol=1e-6)


def test_mel_input_width():
    net = model(input_dim=128 + 30)
    assert net(*graphs([3], dim=158))["logits"].shape == (1, NUM_CLASSES)




@pytest.mark.parametrize("label_embeddings", [True, False])
def test_second_readout_localises_apart_from_the_pooled_clip_output(label_embeddings):
    """With a second readout, a loss on the per-second outputs reaches the graph layers and the
    second readout but not the pooled one, and a loss on the clip output the other way round;
    without it, the two outputs are one readout (old checkpoints load unchanged)."""
    net = model(label_embeddings=label_embeddings, second_readout=True).train()
    pooled = ["node_query", "class_bias"] if label_embeddings else ["class_head"]
    second = ["second_query", "second_bias"] if label_embeddings else ["second_head"]

    def touched(output):
        net.zero_grad()
        net(*graphs([7, 4]))[output].sum().backward()
        return {name.split(".")[0] for name, p in net.named_parameters()
                if p.grad is not None and p.grad.abs().sum() > 0}

    per_second, clip = touched("node_logits"), touched("logits")
    assert set(second) <= per_second and not set(pooled) & per_second and "layers" in per_second
    assert set(pooled) <= clip and not set(second) & clip
    plain = model(label_embeddings=label_embeddings)
    assert not any(name.startswith("second_") for name in plain.state_dict())
    assert list(plain.state_dict()) == [k for k in net.state_dict() if not k.startswith("second_")]
