"""The MMGAT instance correlation graph over a window of instances.

Definition (the one source of truth; `InstanceGraph` and `build_graph` both implement it).
Nodes x_1..x_n (n <= W, time order, oldest first) are raw d-dim float32 instances.

- Similarity: Sim_ij = max(0, cos(x_i, x_j)), the cosine taken on L2-normalised vectors
  (norm clamped at 1e-12, so a zero vector has cos 0 with everything); Sim_ii = 1 (self loop).
- Weights: Weights_ij = Sim_ij / sum_j Sim_ij, rows sum to 1 (the self loop keeps the sum > 0).
- Sparsified adjacency: node i keeps itself plus its m = `neighbours` most similar OTHER nodes
  by Sim, ties broken toward the older node (lower time index, i.e. a stable descending sort);
  all others if fewer than m exist. Symmetrised: i ~ j if j in top-m(i) or i in top-m(j).
- scale_masks (3, n, n) bool: scale k holds the nodes within k hops of i on the symmetrised
  adjacency, self included (k = 1: adjacency plus self, k = 2: <= 2 hops, k = 3: <= 3 hops).
- The paper's other similarities (its Table 6): "l1", "euclidean", "emd" turn a distance D into
  Sim_ij = 1 / (1 + D_ij / s), s = the graph's mean off-diagonal distance (clamped >= 1e-12;
  s = 1 when n == 1), so every Sim changes when a node comes or goes. EMD is the 1-D earth
  mover's distance between the histograms p_i = |x_i| / sum|x_i| over the d bins (sum clamped
  >= 1e-12 so a zero vector is the empty histogram): D_ij = sum |cumsum(p_i) - cumsum(p_j)|.
  Sim_ii = 1; the weights, sparsification and masks follow as above.

Precision: similarities are computed in float64 and stored as float32, and the neighbour choice
compares those float32 values. Different summation orders (numba's vectorised loops, BLAS in
torch and numpy) move the float64 results by ~1e-16, which rounding to float32 absorbs, so every
implementation sees the same Sim values and breaks near-ties alike: the masks agree exactly,
not just up to a tolerance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from mmgat.model.audio import EMBED_DIM
from mmgat.model.window import MAX_WINDOW, check_window  # noqa: F401 (MAX_WINDOW: for its importers)

if TYPE_CHECKING:  # torch builds graphs for training only: the live runtime runs without it
    import torch

NUM_SCALES = 3
NORM_EPS = 1e-12
SIMILARITIES = ("cosine", "l1", "euclidean", "emd")


def check_similarity(similarity: str) -> str:
    if similarity not in SIMILARITIES:
        raise ValueError(f"similarity must be one of {', '.join(SIMILARITIES)}, got {similarity!r}")
    return similarity


# ---------------------------------------------------------------------------------------------
# Streaming: numba kernels over preallocated buffers (nogil: while a push runs, a device's
# callback can take the GIL on PortAudio's thread).


# The kernels' codes for SIMILARITIES (l1 is what the distance kernels do when no other applies).
COSINE, EUCLIDEAN, EMD = (SIMILARITIES.index(name) for name in ("cosine", "euclidean", "emd"))


@njit(cache=True, nogil=True)
def _push_kernel(x, pushed, metric, features, nodes, distance, similarity, weights, neighbour_index,
                 neighbour_value, masks):
    """Add x as push number `pushed` (0-based). Returns False, touching nothing, if x is not finite.

    `features` is the (W, d) ring of what the similarity `metric` compares (slot = push number %
    W): unit vectors (cosine), raw instances (l1, euclidean) or cumulative histograms (emd). The
    rest is in time order, valid in its leading n rows / n x n block: `nodes`, `distance` (the
    distance similarities only), `similarity`, `weights`, `masks`, and each node's top-m list,
    `neighbour_index` / `neighbour_value` (W, m), most similar first.
    """
    window, dim = features.shape
    for k in range(dim):
        if not np.isfinite(x[k]):
            return False
    slot = pushed % window
    _feature(x, metric, features[slot])

    full = pushed >= window
    if full:
        _drop_oldest(nodes, similarity, neighbour_index, neighbour_value)
        if metric != COSINE:
            _shift_square(distance)
    n = min(pushed + 1, window)
    newest = n - 1
    nodes[newest] = x

    # The only new comparisons: one row of n - 1 against the ring.
    oldest_slot = (pushed + 1 - n) % window
    kept = min(neighbour_index.shape[1], newest)
    if metric == COSINE:
        for t in range(newest):
            value = np.float32(max(_dot(features[slot], features[(oldest_slot + t) % window]), 0.0))
            similarity[newest, t] = value
            similarity[t, newest] = value
        similarity[newest, newest] = 1.0
        _normalise_rows(similarity, n, weights)
        _update_neighbours(similarity, n, full, neighbour_index[:, :kept], neighbour_value[:, :kept])
    else:
        for t in range(newest):
            value = _distance(metric, features[slot], features[(oldest_slot + t) % window])
            distance[newest, t] = value
            distance[t, newest] = value
        _distance_similarities(distance, n, similarity)
        _normalise_rows(similarity, n, weights)
        for i in range(n):  # the scale s moved every Sim: every list is chosen afresh, O(n^2 m)
            _top_m(similarity[i, :n], i, neighbour_index[i, :kept], neighbour_value[i, :kept])
    _scale_masks(neighbour_index[:n, :kept], masks)
    return True


@njit(cache=True, nogil=True)
def _feature(x, metric, out):
    """What `metric` compares of instance x, in float64 (see the module docstring)."""
    if metric == COSINE:
        norm = max(np.sqrt(_dot(x, x)), NORM_EPS)
        for k in range(x.shape[0]):
            out[k] = x[k] / norm
    elif metric == EMD:
        total = 0.0
        for k in range(x.shape[0]):
            total += abs(np.float64(x[k]))
        total = max(total, NORM_EPS)
        running = 0.0
        for k in range(x.shape[0]):
            running += abs(np.float64(x[k])) / total
            out[k] = running
    else:
        for k in range(x.shape[0]):
            out[k] = x[k]


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _distance(metric, a, b):
    """Euclidean, else L1 (l1 on instances, emd on cumulative histograms), in float64."""
    total = 0.0
    if metric == EUCLIDEAN:
        for k in range(a.shape[0]):
            difference = a[k] - b[k]
            total += difference * difference
        return np.sqrt(total)
    for k in range(a.shape[0]):
        total += abs(a[k] - b[k])
    return total


@njit(cache=True, nogil=True)
def _distance_similarities(distance, n, similarity):
    """Sim = 1 / (1 + D / s) over the n x n block, s = the mean off-diagonal D (1 for one node)."""
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += distance[i, j]
    scale = max(total / (n * (n - 1)), NORM_EPS) if n > 1 else 1.0
    for i in range(n):
        for j in range(n):
            similarity[i, j] = 1.0 if i == j else np.float32(1.0 / (1.0 + distance[i, j] / scale))


@njit(cache=True, nogil=True)
def _normalise_rows(similarity, n, weights):
    """Weights = Sim / row sum over the n x n block (every sum changed: a node came, maybe one left)."""
    for i in range(n):
        inverse_total = 1.0 / _sum(similarity[i, :n])
        for j in range(n):
            weights[i, j] = similarity[i, j] * inverse_total


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _dot(a, b):
    """float64 dot product, reassociated so LLVM vectorises it (the order moves it ~1e-16)."""
    total = 0.0
    for k in range(a.shape[0]):
        total += np.float64(a[k]) * np.float64(b[k])
    return total


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _sum(values):
    """float64 sum, vectorised like `_dot`."""
    total = 0.0
    for k in range(values.shape[0]):  # indexed, not iterated: LLVM vectorises only this form
        total += np.float64(values[k])
    return total


@njit(cache=True, nogil=True)
def _drop_oldest(nodes, similarity, neighbour_index, neighbour_value):
    """Move every node one step down the time order (O(W*d + W^2)); a top-m list that held the
    oldest node now holds index -1."""
    window = nodes.shape[0]
    _shift_square(similarity)
    for t in range(window - 1):
        nodes[t] = nodes[t + 1]
        for q in range(neighbour_index.shape[1]):
            neighbour_index[t, q] = neighbour_index[t + 1, q] - 1
            neighbour_value[t, q] = neighbour_value[t + 1, q]


@njit(cache=True, nogil=True)
def _shift_square(matrix):
    """Move a time-ordered (W, W) matrix one step toward the top-left (the oldest node left)."""
    window = matrix.shape[0]
    for t in range(window - 1):
        for u in range(window - 1):
            matrix[t, u] = matrix[t + 1, u + 1]


@njit(cache=True, nogil=True)
def _update_neighbours(similarity, n, full, neighbour_index, neighbour_value):
    """Bring the (n, kept) top-m lists up to date after the newest node came (and, if full, the
    oldest left). Removing a node outside a list leaves it exact, so only the ~m lists that held
    the oldest are rebuilt; the others just consider the newest: O(n * m) expected."""
    newest = n - 1
    kept = neighbour_index.shape[1]
    held_before = kept if full else min(kept, newest - 1)  # while filling, lists still grow
    for i in range(newest):
        index, value = neighbour_index[i], neighbour_value[i]
        if full and index.min() < 0:  # it held the oldest node (min over <= m, no allocation)
            _top_m(similarity[i, :n], i, index, value)
        else:
            _insert(similarity[i, newest], newest, index, value, held_before)
    _top_m(similarity[newest, :n], newest, neighbour_index[newest], neighbour_value[newest])


@njit(cache=True, nogil=True)
def _top_m(row, i, index, value):
    """Fill index / value with the len(index) largest row[j], j != i, in stable descending order."""
    held = 0
    for j in range(row.shape[0]):
        if j != i:
            held = _insert(row[j], j, index, value, held)


@njit(cache=True, nogil=True)
def _insert(candidate, j, index, value, held):
    """Offer node j (newer than every listed node) to a descending list holding `held` entries;
    returns the new count. A tie never displaces: the older node stays ahead."""
    size = index.shape[0]
    if held == size and (size == 0 or candidate <= value[size - 1]):
        return held
    position = min(held, size - 1)  # the free slot, or the evicted last one
    while position > 0 and value[position - 1] < candidate:
        index[position] = index[position - 1]
        value[position] = value[position - 1]
        position -= 1
    index[position] = j
    value[position] = candidate
    return min(held + 1, size)


@njit(cache=True, nogil=True)
def _scale_masks(neighbour_index, masks):
    """masks[k] = nodes within k + 1 hops on the symmetrised top-m adjacency, self included.

    Neighbourhoods are uint64 bitsets (W <= 64), so a hop costs one OR per top-m edge.
    """
    n = neighbour_index.shape[0]
    reach = np.empty(n, np.uint64)
    for i in range(n):
        reach[i] = np.uint64(1) << np.uint64(i)
    for scale in range(masks.shape[0]):
        reach = _one_more_hop(neighbour_index, reach)
        for i in range(n):
            for c in range(n):
                masks[scale, i, c] = (reach[i] >> np.uint64(c)) & np.uint64(1)


@njit(cache=True, nogil=True)
def _one_more_hop(neighbour_index, reach):
    """reach[i] | reach[j] for every j adjacent to i; adjacency = top-m edges both ways."""
    out = reach.copy()
    for i in range(neighbour_index.shape[0]):
        for j in neighbour_index[i]:
            out[i] |= reach[j]
            out[j] |= reach[i]
    return out


class InstanceGraph:
    """The instance correlation graph of the last `window` pushed instances, kept incrementally.

    Cosine: a push costs one row of W dot products (O(W*d)), O(W^2) to re-normalise the weights
    and write the masks, and O(W * m) expected to keep every node's top-m list. The distance
    similarities (l1, euclidean, emd) cost one row of W distances (O(W*d)) and O(W^2 * m): their
    scale s moves every Sim, so every weight and top-m list is recomputed (from the kept
    distances, never from the instances).
    The kernel keeps the outputs in time order in preallocated buffers; the properties return
    the same read-only views of them every time (renewed only while n changes), so reading is
    free. The next push overwrites what they show: copy what you keep. The views are contiguous
    once the window is full, slices of the (W, W) buffers before that.
    """

    def __init__(self, window: int, dim: int = EMBED_DIM, neighbours: int = 2,
                 similarity: str = "cosine"):
        window = check_window(window)
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours}")
        check_similarity(similarity)
        self.window, self.dim, self.neighbours = int(window), int(dim), int(neighbours)
        self.similarity_name = similarity
        self._metric = SIMILARITIES.index(similarity)
        self._features = np.zeros((window, dim), np.float64)  # float64: see the module docstring
        self._nodes = np.zeros((window, dim), np.float32)
        self._distance = np.zeros((window, window), np.float64)
        self._similarity = np.zeros((window, window), np.float32)
        self._weights = np.zeros((window, window), np.float32)
        self._masks = np.zeros((NUM_SCALES, window, window), np.bool_)
        self._neighbour_index = np.zeros((window, neighbours), np.int64)
        self._neighbour_value = np.zeros((window, neighbours), np.float32)
        # Compile (or load numba's on-disk cache) now, not on the first push of a live stream.
        self._pushed = 0
        self.push(np.zeros(dim, np.float32))
        self.reset()

    def push(self, x) -> None:
        """Add one (dim,) instance (cast to float32); the oldest leaves once `window` are held."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != (self.dim,):
            raise ValueError(f"instance must have shape ({self.dim},), got {x.shape}")
        if not _push_kernel(x, self._pushed, self._metric, self._features, self._nodes,
                            self._distance, self._similarity, self._weights, self._neighbour_index,
                            self._neighbour_value, self._masks):
            raise ValueError("instance contains NaN or infinity")
        self._pushed += 1
        if self._pushed <= self.window:
            self._expose()

    def reset(self) -> None:
        """Forget every instance (the buffers are rewritten before they are read again)."""
        self._pushed = 0
        self._expose()

    def _expose(self) -> None:
        """Point the output views at the leading n rows / n x n blocks (needed when n changes)."""
        n = self.n
        self._nodes_view = _read_only(self._nodes[:n])
        self._similarity_view = _read_only(self._similarity[:n, :n])
        self._weights_view = _read_only(self._weights[:n, :n])
        self._masks_view = _read_only(self._masks[:, :n, :n])

    @property
    def n(self) -> int:
        return min(self._pushed, self.window)

    @property
    def nodes(self) -> np.ndarray:
        """(n, dim) float32 raw instances, oldest first."""
        return self._nodes_view

    @property
    def similarity(self) -> np.ndarray:
        """(n, n) float32 Sim, time order."""
        return self._similarity_view

    @property
    def weights(self) -> np.ndarray:
        """(n, n) float32 row-normalised edge weights, time order."""
        return self._weights_view

    @property
    def scale_masks(self) -> np.ndarray:
        """(3, n, n) bool: nodes within 1, 2, 3 hops of each node, time order."""
        return self._masks_view


def _read_only(view: np.ndarray) -> np.ndarray:
    view.flags.writeable = False
    return view


# ---------------------------------------------------------------------------------------------
# Training and parity: the same graph for a padded batch, in torch.


def build_graph(nodes: torch.Tensor, node_mask: torch.Tensor, neighbours: int = 2,
                similarity: str = "cosine") -> tuple[torch.Tensor, torch.Tensor]:
    """nodes (B, N, d) float, node_mask (B, N) bool (True = real node, real nodes first) ->
    weights (B, N, N) in nodes' dtype and scale_masks (B, 3, N, N) bool.

    Padded rows and columns come out all zero / False, and padding values (even NaN) never
    reach a real output. Each graph equals `InstanceGraph` on the same sequence.
    """
    import torch

    if nodes.dim() != 3 or node_mask.shape != nodes.shape[:2] or node_mask.dtype != torch.bool:
        raise ValueError(f"want nodes (B, N, d) and bool node_mask (B, N), got "
                         f"{tuple(nodes.shape)} and {node_mask.dtype} {tuple(node_mask.shape)}")
    if neighbours < 1:
        raise ValueError(f"neighbours must be >= 1, got {neighbours}")
    check_similarity(similarity)

    x = torch.where(node_mask[..., None], nodes, 0).double()
    real = node_mask[:, :, None] & node_mask[:, None, :]
    self_loop = torch.eye(nodes.shape[1], dtype=torch.bool, device=nodes.device)
    if similarity == "cosine":
        unit = torch.nn.functional.normalize(x, dim=-1, eps=NORM_EPS)
        sim = (unit @ unit.mT).clamp_min(0.0)
    else:
        sim = _distance_similarity(_distances(x, similarity), real & ~self_loop)
    sim = torch.where(self_loop, 1.0, sim).masked_fill(~real, 0.0).float()

    # Real rows sum to >= 1 (the self loop); padded rows sum to 0 and stay 0.
    row_sum = sim.double().sum(-1, keepdim=True).clamp_min(1.0)
    weights = (sim.double() / row_sum).to(nodes.dtype)

    others = real & ~self_loop
    candidates = sim.masked_fill(~others, -1.0)  # below every real Sim (>= 0): chosen last
    order = torch.sort(candidates, dim=-1, descending=True, stable=True).indices
    chosen = order[..., :neighbours]
    top = torch.zeros_like(others).scatter_(-1, chosen, True) & others
    adjacency = top | top.mT | (self_loop & real)
    one_hop = adjacency.float()  # path counts stay exact in float32 (N < 2**24)
    two_hops = (one_hop @ one_hop) > 0
    three_hops = (two_hops.float() @ one_hop) > 0
    return weights, torch.stack((adjacency, two_hops, three_hops), dim=1)


def _distances(x: torch.Tensor, similarity: str) -> torch.Tensor:
    """(B, N, d) float64 -> (B, N, N) distances, from differences (so duplicates give exact 0)."""
    import torch

    if similarity == "l1":
        return torch.cdist(x, x, p=1.0)
    if similarity == "euclidean":
        return torch.cdist(x, x, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")
    magnitude = x.abs()  # emd
    histogram = magnitude / magnitude.sum(-1, keepdim=True).clamp_min(NORM_EPS)
    cumulative = histogram.cumsum(-1)
    return torch.cdist(cumulative, cumulative, p=1.0)


def _distance_similarity(distance: torch.Tensor, off_diagonal: torch.Tensor) -> torch.Tensor:
    """Sim = 1 / (1 + D / s), s = mean off-diagonal distance of each graph (1 for one node)."""
    import torch

    pairs = off_diagonal.sum((1, 2))
    mean = (distance * off_diagonal).sum((1, 2)) / pairs.clamp_min(1)
    scale = torch.where(pairs > 0, mean.clamp_min(NORM_EPS), 1.0)
    return 1.0 / (1.0 + distance / scale[:, None, None])
