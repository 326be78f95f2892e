"""The instance correlation graph: streaming (numba) and batched (torch) against a numpy oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mmgat.model.graph import MAX_WINDOW, SIMILARITIES, InstanceGraph, build_graph


def reference_graph(nodes: np.ndarray, neighbours: int, similarity: str = "cosine"):
    """From scratch, the simple way: (sim, weights, scale_masks) of (n, d) nodes in time order."""
    x = nodes.astype(np.float64)
    n = len(x)
    if similarity == "cosine":
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sim = np.maximum(unit @ unit.T, 0.0)
    else:
        if similarity == "l1":
            distance = np.abs(x[:, None] - x[None]).sum(-1)
        elif similarity == "euclidean":
            distance = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        else:  # emd
            histogram = np.abs(x) / np.maximum(np.abs(x).sum(1, keepdims=True), 1e-12)
            cumulative = np.cumsum(histogram, axis=1)
            distance = np.abs(cumulative[:, None] - cumulative[None]).sum(-1)
        scale = max(distance[~np.eye(n, dtype=bool)].mean(), 1e-12) if n > 1 else 1.0
        sim = 1.0 / (1.0 + distance / scale)
    np.fill_diagonal(sim, 1.0)
    sim = sim.astype(np.float32)
    weights = (sim / sim.sum(1, keepdims=True, dtype=np.float64)).astype(np.float32)

    adjacency = np.eye(n, dtype=bool)
    for i in range(n):
        others = [j for j in np.argsort(-sim[i], kind="stable") if j != i]
        adjacency[i, others[:neighbours]] = True
    adjacency |= adjacency.T
    hops = adjacency.astype(np.int64)
    masks = np.stack([np.linalg.matrix_power(hops, k) > 0 for k in (1, 2, 3)])
    return sim, weights, masks


def instances(seed: int, pool_size: int, dim: int, picks) -> np.ndarray:
    """A sequence drawn from a small Gaussian pool: repeated picks are exact duplicates (ties),
    pick -1 is the zero vector; small dims give many clipped (zero) similarities, more ties."""
    pool = np.random.default_rng(seed).standard_normal((pool_size, dim)).astype(np.float32)
    pool = np.concatenate([pool, np.zeros((1, dim), np.float32)])
    return pool[picks]


def assert_graph_invariants(weights: np.ndarray, masks: np.ndarray) -> None:
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)
    assert (weights >= 0).all()
    assert np.diagonal(masks, axis1=1, axis2=2).all()
    assert (masks == masks.transpose(0, 2, 1)).all()
    assert (masks[0] <= masks[1]).all() and (masks[1] <= masks[2]).all()


@st.composite
def streams(draw):
    window = draw(st.integers(1, MAX_WINDOW))
    dim = draw(st.sampled_from([2, 3, 8, 128]))
    pool_size = draw(st.integers(1, 3 * window))
    length = draw(st.integers(1, 3 * window))
    picks = draw(st.lists(st.integers(-1, pool_size - 1), min_size=length, max_size=length))
    seed = draw(st.integers(0, 2**32 - 1))
    return window, draw(st.integers(1, 4)), instances(seed, pool_size, dim, picks)


# Always run the largest window on long streams, whatever hypothesis draws.
_picks = np.random.default_rng(1)
FULL_WINDOW_128 = (MAX_WINDOW, 2, instances(1, 90, 128, _picks.integers(-1, 90, 192)))
FULL_WINDOW_TIES = (MAX_WINDOW, 4, instances(2, 20, 3, _picks.integers(-1, 20, 150)))


@settings(max_examples=100, deadline=None)
@example(FULL_WINDOW_128, "cosine")
@example(FULL_WINDOW_128, "emd")
@example(FULL_WINDOW_TIES, "cosine")
@example(FULL_WINDOW_TIES, "l1")
@given(streams(), st.sampled_from(SIMILARITIES))
def test_every_push_matches_reference(stream, similarity):
    window, neighbours, sequence = stream
    graph = InstanceGraph(window, sequence.shape[1], neighbours, similarity=similarity)
    for pushed, x in enumerate(sequence, start=1):
        graph.push(x)
        expected = sequence[max(0, pushed - window):pushed]
        sim, weights, masks = reference_graph(expected, neighbours, similarity)
        assert graph.n == len(expected)
        np.testing.assert_array_equal(graph.nodes, expected)
        np.testing.assert_allclose(graph.similarity, sim, atol=1e-6)
        np.testing.assert_allclose(graph.weights, weights, atol=1e-5)
        np.testing.assert_array_equal(graph.scale_masks, masks)
        assert_graph_invariants(graph.weights, graph.scale_masks)


@settings(max_examples=40, deadline=None)
@example(FULL_WINDOW_TIES, "cosine")
@example(FULL_WINDOW_128, "euclidean")
@given(streams(), st.sampled_from(SIMILARITIES))
def test_build_graph_matches_instance_graph(stream, similarity):
    """Every window the stream passes through, batched and padded, equals the streaming graph
    (what training and `mmgat-train eval` build equals what the live runtime builds)."""
    window, neighbours, sequence = stream
    graph = InstanceGraph(window, sequence.shape[1], neighbours, similarity=similarity)
    batch = torch.full((len(sequence), window, sequence.shape[1]), float("nan"))
    node_mask = torch.zeros(len(sequence), window, dtype=torch.bool)
    streamed = []
    for b, x in enumerate(sequence):
        graph.push(x)
        batch[b, : graph.n] = torch.tensor(graph.nodes)
        node_mask[b, : graph.n] = True
        streamed.append((graph.n, graph.weights.copy(), graph.scale_masks.copy()))
    weights, masks = build_graph(batch, node_mask, neighbours, similarity)
    for b, (n, expected_weights, expected_masks) in enumerate(streamed):
        np.testing.assert_allclose(weights[b, :n, :n].numpy(), expected_weights, atol=1e-6)
        np.testing.assert_array_equal(masks[b, :, :n, :n].numpy(), expected_masks)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_build_graph_matches_reference_on_padded_batches(similarity):
    rng = np.random.default_rng(7)
    batch, width, dim, neighbours = 12, 20, 6, 3
    lengths = rng.integers(1, width + 1, batch)
    lengths[:2] = (1, width)
    picks = rng.integers(-1, 15, (batch, width))  # a pool of 15 (+ zero): duplicates and ties
    nodes = torch.from_numpy(instances(3, 15, dim, picks))
    node_mask = torch.arange(width)[None] < torch.from_numpy(lengths)[:, None]
    padding = rng.standard_normal((int((~node_mask).sum()), dim))
    padding[::2, 0] = np.nan  # garbage in the padding must not reach a real output
    nodes[~node_mask] = torch.from_numpy(padding).float()
    before = nodes.clone()

    weights, masks = build_graph(nodes, node_mask, neighbours, similarity)

    assert weights.dtype == torch.float32 and masks.dtype == torch.bool
    torch.testing.assert_close(nodes, before, rtol=0, atol=0, equal_nan=True)
    for b, n in enumerate(lengths):
        _, expected_weights, expected_masks = reference_graph(nodes[b, :n].numpy(), neighbours,
                                                              similarity)
        np.testing.assert_allclose(weights[b, :n, :n].numpy(), expected_weights, atol=1e-6)
        np.testing.assert_array_equal(masks[b, :, :n, :n].numpy(), expected_masks)
        assert_graph_invariants(weights[b, :n, :n].numpy(), masks[b, :, :n, :n].numpy())
        assert not weights[b, n:].any() and not weights[b, :, n:].any()
        assert not masks[b, :, n:].any() and not masks[b, :, :, n:].any()


def test_top_m_ties_go_to_the_older_node():
    # Nodes 1, 2, 3 are exact duplicates, so every node sees its candidates tied; m = 1.
    a, b = np.eye(2, dtype=np.float32)
    graph = InstanceGraph(4, 2, neighbours=1)
    for x in (a, b, b, b):
        graph.push(x)
    adjacency = graph.scale_masks[0]
    assert adjacency[0].tolist() == [True, True, False, False]  # 0 keeps 1 (all Sim 0)
    assert adjacency[3].tolist() == [False, True, False, True]  # 3 keeps 1, not 2
    assert adjacency[1].tolist() == [True, True, True, True]  # 1 keeps 2; 0, 2, 3 keep 1


def test_zero_vector_has_only_its_self_loop_weight():
    graph = InstanceGraph(3, 4)
    for x in ([1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]):
        graph.push(np.array(x, np.float32))
    assert graph.weights[1].tolist() == [0.0, 1.0, 0.0]
    assert graph.similarity[0, 1] == 0.0


def test_reset_forgets_everything():
    graph = InstanceGraph(3, 2)
    for x in np.eye(2, dtype=np.float32):
        graph.push(x)
    graph.reset()
    assert graph.n == 0 and graph.nodes.shape == (0, 2) and graph.scale_masks.shape == (3, 0, 0)
    graph.push(np.array([0.5, 0.5], np.float32))
    assert graph.n == 1 and graph.weights.tolist() == [[1.0]]


def test_outputs_are_read_only_views():
    graph = InstanceGraph(2, 2)
    graph.push(np.ones(2, np.float32))
    with pytest.raises(ValueError):
        graph.weights[0, 0] = 0.5


@pytest.mark.parametrize("window", [0, MAX_WINDOW + 1, -1])
def test_bad_window(window):
    with pytest.raises(ValueError):
        InstanceGraph(window)


def test_bad_neighbours():
    with pytest.raises(ValueError):
        InstanceGraph(4, neighbours=0)


def test_bad_similarity():
    with pytest.raises(ValueError, match="cosine, l1, euclidean, emd"):
        InstanceGraph(4, similarity="manhattan")


def test_distance_similarities_rescale_when_a_node_comes():
    """s is the window's mean distance: a far-away newcomer makes the old pair relatively closer."""
    graph = InstanceGraph(3, 1, similarity="l1")
    for x in (0.0, 1.0):
        graph.push(np.array([x], np.float32))
    assert graph.similarity[0, 1] == 0.5  # D = s = 1
    graph.push(np.array([10.0], np.float32))  # D: 1, 10, 9; s = 20 / 3
    assert graph.similarity[0, 1] == np.float32(1 / (1 + 3 / 20))


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("x", [np.zeros(5), np.zeros((1, 4)), np.zeros(()), [0, 0, np.nan, 0],
                               [np.inf, 0, 0, 0], [1e39, 0, 0, 0]])
def test_bad_instance_is_rejected_and_changes_nothing(x):
    graph = InstanceGraph(3, 4)
    graph.push(np.ones(4, np.float32))
    with pytest.raises(ValueError):
        graph.push(x)
    assert graph.n == 1 and graph.nodes.tolist() == [[1.0] * 4]


def test_build_graph_rejects_bad_arguments():
    nodes, node_mask = torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)
    for args in [(nodes[0], node_mask), (nodes, node_mask[:, :2]), (nodes, node_mask.int())]:
        with pytest.raises(ValueError):
            build_graph(*args)
    with pytest.raises(ValueError):
        build_graph(nodes, node_mask, neighbours=0)
    with pytest.raises(ValueError):
        build_graph(nodes, node_mask, similarity="manhattan")
