"""Every loss part and switch of MMGAT's loss does something."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmgat.model.mmgat import MMGAT, MMGATConfig
from mmgat.model.train.data import masked_group_targets
from mmgat.model.train.predict import collate
from mmgat.model.train.losses import ALPHA, CenterLoss, LossSwitches, MMGATLoss


def batch_and_outputs(**config):
    rng = np.random.default_rng(0)
    config = MMGATConfig(**config)
    batch = collate([rng.standard_normal((n, 128)).astype(np.float32) for n in (4, 9, 2)],
                    config, "cpu")
    targets = (rng.random((3, 20)) < 0.3).astype(np.float32)
    mask = np.ones_like(targets, dtype=bool)
    groups, group_mask = masked_group_targets(targets, mask)
    batch.update(targets=torch.from_numpy(targets), label_mask=torch.from_numpy(mask),
                 group_targets=torch.from_numpy(groups), group_mask=torch.from_numpy(group_mask))
    torch.manual_seed(0)
    text = torch.randn(20, config.text_dim) if config.label_embeddings else None
    model = MMGAT(config, text)
    return batch, model(batch["nodes"], batch["weights"], batch["scale_masks"], batch["node_mask"])


def test_full_loss_has_every_part_and_alpha():
    batch, out = batch_and_outputs()
    torch.manual_seed(1)
    loss_fn = MMGATLoss(128)
    total, parts = loss_fn(out, batch)
    assert set(parts) == {"principal", "auxiliary", "label", "center_1", "center_2"}
    assert total.item() == pytest.approx(sum(parts.values()), rel=1e-5)
    raw = loss_fn.class_centers(out["embedding"], batch["targets"], batch["label_mask"])
    assert parts["center_1"] == pytest.approx(ALPHA * raw.item(), rel=1e-5)


def with_node_targets(batch):
    """Per-second targets for every node, padded nodes included (their loss must be ignored)."""
    rng = np.random.default_rng(2)
    shape = (*batch["node_mask"].shape, 20)
    return dict(batch, node_targets=torch.from_numpy((rng.random(shape) < 0.3).astype(np.float32)))


def test_node_loss_is_per_second_bce_on_real_nodes_only():
    batch, out = batch_and_outputs()
    batch = with_node_targets(batch)
    out["node_logits"].retain_grad()
    total, parts = MMGATLoss(128)(out, batch)
    real = batch["node_mask"]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        out["node_logits"][real], batch["node_targets"][real])
    assert parts["node"] == pytest.approx(expected.item(), rel=1e-5)
    total.backward()
    assert (out["node_logits"].grad[~real] == 0).all()
    assert "node" not in MMGATLoss(128)(out, batch_and_outputs()[0])[1]  # no per-second labels


@pytest.mark.parametrize("switch", ["principal", "auxiliary", "label", "center", "node"])
def test_each_switch_changes_the_loss(switch):
    batch, out = batch_and_outputs()
    batch = with_node_targets(batch)
    torch.manual_seed(1)
    full = MMGATLoss(128)
    reduced = MMGATLoss(128, LossSwitches(**{switch: False}))
    reduced.load_state_dict(full.state_dict())
    total, parts = full(out, batch)
    less, less_parts = reduced(out, batch)
    assert less.item() < total.item() - 1e-6
    assert set(less_parts) < set(parts)


def test_model_switches_remove_their_parts():
    batch, out = batch_and_outputs(auxiliary=False)  # principal only
    assert set(MMGATLoss(128)(out, batch)[1]) == {"principal", "label", "center_1"}
    batch, out = batch_and_outputs(label_embeddings=False)  # graph only
    assert "label" not in MMGATLoss(128)(out, batch)[1]


def test_center_loss_pulls_toward_the_centres_of_positive_classes():
    centers = CenterLoss(3, 4)
    embedding = centers.centers.detach()[[0, 2]].clone()
    targets = torch.tensor([[1.0, 0, 0], [0, 0, 1]])
    mask = torch.ones(2, 3, dtype=torch.bool)
    assert centers(embedding, targets, mask).item() == pytest.approx(0.0, abs=1e-7)
    assert centers(embedding + 1.0, targets, mask).item() == pytest.approx(0.5 * 4)
    assert centers(embedding + 1.0, targets, torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0
