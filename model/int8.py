"""A frontend's network in ONNX Runtime, built from the frontend file's weights (no torch):
fp32 as written, and int8 as the CPU runtime serves it.

The graph is torchvggish's network spelled in ONNX operators (tests hold it equal to the torch
modules of model/frontend.py). Int8 is ONNX Runtime's static quantization in QDQ format: int8
weights per output channel, uint8 activations whose ranges are calibrated on log-mel examples of
the shipped demo clip. Measured on a 2-core EPYC (benchmarks/RESULTS.md) it is the fastest
frontend at batch 1 and batch 64, with the whole model's F1 within 0.01 of fp32.

Building the int8 network takes about a second plus `import onnx` (another, for its ml_dtypes),
so a frontend file's int8 network is kept in the user's cache (INT8_CACHE, ~5 MB), named by
everything it is made of; `onnx` is imported only to build one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mmgat.model.audio import EMBED_DIM, EXAMPLE_FRAMES, N_MELS, load_audio, log_mel_examples, split_frames
from mmgat.model.frontend_file import (ASSETS, AUDIOSET, TRUNK, FrontendError, FrontendFile, check_names,
                                       read_frontend, weights_fingerprint)
from mmgat.model.sidecar import sha256_file

OPSET = 17  # of every ONNX graph we write (LayerNormalization needs 17)
# torchvggish's make_layers(): 3x3 convolutions (each followed by a ReLU) and 2x2 max pools.
VGGISH_LAYERS = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")
BLOCK_CHANNELS = tuple(v for v, after in zip(VGGISH_LAYERS, VGGISH_LAYERS[1:]) if after == "M")
POOLED_DIM = 2 * sum(BLOCK_CHANNELS)  # the trunk's head: mean and max per channel of every block
AUDIOSET_FLAT = 512 * 4 * 6  # the AudioSet network's last pooled map, flattened
AUDIOSET_HIDDEN = 4096
# int8 activation ranges come from the demo clip, which ships: with them the whole model scored
# F1 micro 0.816 on the first 400 test clips, against 0.817 with ranges from 512 training
# seconds and 0.819 in fp32.
INT8_CALIBRATION = ASSETS / "demo.flac"
# The LayerNorm stays fp32: its rank-1 weight has no channel axis to quantize along.
KEPT_FP32 = ("LayerNormalization",)
CALIBRATION_BATCH = 64


def state_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes of the network `name` (those of its torch module)."""
    prefix = "vgg.features" if name == AUDIOSET else "features"
    shapes, channels, index = {}, 1, 0
    for layer in VGGISH_LAYERS:
        if layer == "M":
            index += 1
            continue
        shapes[f"{prefix}.{index}.weight"], shapes[f"{prefix}.{index}.bias"] = (layer, channels, 3, 3), (layer,)
        channels, index = layer, index + 2  # the conv and its ReLU
    if name == TRUNK:
        return {**shapes, "head.0.weight": (POOLED_DIM,), "head.0.bias": (POOLED_DIM,),
                "head.1.weight": (EMBED_DIM, POOLED_DIM), "head.1.bias": (EMBED_DIM,)}
    for index, (n_in, n_out) in enumerate(((AUDIOSET_FLAT, AUDIOSET_HIDDEN), (AUDIOSET_HIDDEN, AUDIOSET_HIDDEN),
                                           (AUDIOSET_HIDDEN, EMBED_DIM))):
        shapes[f"vgg.embeddings.{2 * index}.weight"] = (n_out, n_in)
        shapes[f"vgg.embeddings.{2 * index}.bias"] = (n_out,)
    return {**shapes, "postprocess.pca_eigen_vectors": (EMBED_DIM, EMBED_DIM),
            "postprocess.pca_means": (EMBED_DIM,)}


class _Builder:
    """Nodes and fp32 initializers of one graph, each node's output named after its position."""

    def __init__(self, state: dict):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.state, self.nodes, self.initializers = state, [], {}

    def weight(self, key: str) -> str:
        if key not in self.initializers:
            self.constant(key, self.state[key])
        return key

    def constant(self, key: str, value) -> str:
        self.initializers[key] = self.numpy_helper.from_array(np.asarray(value, np.float32), key)
        return key

    def __call__(self, op: str, *inputs: str, **attributes) -> str:
        output = f"{op.lower()}_{len(self.nodes)}"
        self.nodes.append(self.helper.make_node(op, list(inputs), [output], name=output, **attributes))
        return output

    def features(self, x: str, prefix: str, last_pool: bool) -> tuple[str, list[str]]:
        """make_layers() on x; returns its output and each conv block's closing ReLU."""
        blocks, index = [], 0
        for position, layer in enumerate(VGGISH_LAYERS):
            if layer == "M":
                if position < len(VGGISH_LAYERS) - 1 or last_pool:
                    x = self("MaxPool", x, kernel_shape=[2, 2], strides=[2, 2])
                index += 1
                continue
            x = self("Relu", self("Conv", x, self.weight(f"{prefix}.{index}.weight"),
                                  self.weight(f"{prefix}.{index}.bias"), kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
            if VGGISH_LAYERS[position + 1] == "M":
                blocks.append(x)
            index += 2
        return x, blocks

    def linear(self, x: str, key: str) -> str:
        return self("Gemm", x, self.weight(f"{key}.weight"), self.weight(f"{key}.bias"), transB=1)


def network_graph(name: str, state: dict):
    """The network `name` ((B, 1, 96, 64) log-mel examples -> (B, 128) instances) in fp32 with
    the weights of `state` (torch keys, numpy arrays), as an onnx.ModelProto."""
    from onnx import TensorProto, helper

    build = _Builder(state)
    if name == TRUNK:
        _, blocks = build.features("examples", "features", last_pool=False)
        # Each block halves both axes; the max is a MaxPool over the block's whole map.
        pooled = [[build("Flatten", build("GlobalAveragePool", block)), build("Flatten", build(
            "MaxPool", block, kernel_shape=[EXAMPLE_FRAMES >> level, N_MELS >> level],
            strides=[EXAMPLE_FRAMES >> level, N_MELS >> level]))] for level, block in enumerate(blocks)]
        # Concatenated as torch's exporter wrote the graph the shipped MMGAT's int8 instances
        # came from (the first two blocks flat, the last two in pairs): quantization keeps a
        # scale per Concat, and another grouping moved the demo's probabilities by up to 0.04.
        pooled = pooled[0] + pooled[1] + [build("Concat", *pair, axis=1) for pair in pooled[2:]]
        normed = build("LayerNormalization", build("Concat", *pooled, axis=1), build.weight("head.0.weight"),
                       build.weight("head.0.bias"), axis=-1, epsilon=1e-5)
        out = build.linear(normed, "head.1")
    else:  # the AudioSet VGGish and its PCA / 8-bit post-processing (PCAQuantize)
        x, _ = build.features("examples", "vgg.features", last_pool=True)
        x = build("Flatten", build("Transpose", x, perm=[0, 2, 3, 1]), axis=1)  # channels last
        for index in (0, 2, 4):
            x = build("Relu", build.linear(x, f"vgg.embeddings.{index}"))
        projected = build("Gemm", build("Sub", x, build.weight("postprocess.pca_means")),
                          build.weight("postprocess.pca_eigen_vectors"), transB=1)
        clipped = build("Clip", projected, build.constant("minus_two", -2.0), build.constant("two", 2.0))
        out = build("Round", build("Mul", build("Add", clipped, "two"), build.constant("scale", 255.0 / 4.0)))
    build.nodes[-1].output[0] = "instances"
    graph = helper.make_graph(
        build.nodes, name,
        [helper.make_tensor_value_info("examples", TensorProto.FLOAT, ["batch", 1, EXAMPLE_FRAMES, N_MELS])],
        [helper.make_tensor_value_info("instances", TensorProto.FLOAT, ["batch", EMBED_DIM])],
        list(build.initializers.values()))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def session_options(threads: int) -> ort.SessionOptions:
    """Options of every ONNX Runtime session of ours (this frontend, MMGAT): `threads` intra-op
    threads that sleep when idle. Spinning workers would hold the cores that the log-mel and the
    graph need next: at batch 1 on 2 cores a frame took 8.0 ms spinning, 3.6 ms not."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def calibration_examples() -> np.ndarray:
    return log_mel_examples(split_frames(load_audio(INT8_CALIBRATION)))


class _ExampleBatches:
    """onnxruntime.quantization's CalibrationDataReader protocol over (N, 1, 96, 64) examples."""

    def __init__(self, examples: np.ndarray):
        self.batches = iter([{"examples": examples[i:i + CALIBRATION_BATCH]}
                             for i in range(0, len(examples), CALIBRATION_BATCH)])

    def get_next(self):
        return next(self.batches, None)


def quantized(model) -> bytes:
    """The fp32 network `model` (onnx.ModelProto) in int8, activation ranges from the demo clip."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    # ORT's pre-processing pass (symbolic shape inference, graph fusion) gave the same int8
    # network bit for bit on this graph, whose shapes are static but the batch (quantize_static
    # runs ONNX shape inference itself); it costs 4 s of imports (sympy). Marked as done.
    onnx.helper.set_model_props(model, {"onnx.quant.pre_process": "onnxruntime.quant"})
    kept = [node.name for node in model.graph.node if node.op_type in KEPT_FP32]
    with tempfile.TemporaryDirectory() as scratch:
        fp32, int8 = Path(scratch) / "fp32.onnx", Path(scratch) / "int8.onnx"
        onnx.save(model, str(fp32))
        quantize_static(str(fp32), str(int8), _ExampleBatches(calibration_examples()),
                        quant_format=QuantFormat.QDQ, nodes_to_exclude=kept, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        # 7-bit weights: on x86 CPUs without VNNI (AVX2 only), ORT's u8s8 kernels
                        # sum pairs of products in 16 bits, which saturate with 8-bit weights.
                        # Measured on an AVX2-only EPYC: the demo's instances at cosine 0.75 to
                        # fp32 without, 0.998 with; whole-model F1 micro 0.605 vs 0.787 (fresh).
                        reduce_range=True)
        return int8.read_bytes()


def int8_cache(name: str, fingerprint: str) -> Path:
    """Where the int8 network of the frontend `name` with weights `fingerprint` is kept: named by
    the weights, the calibration clip, this file (the graph) and the ONNX packages' versions."""
    made_of = [name, fingerprint, sha256_file(INT8_CALIBRATION), sha256_file(__file__),
               version("onnx"), version("onnxruntime")]
    key = hashlib.sha256(json.dumps(made_of).encode()).hexdigest()[:16]
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "mmgat-live" / f"{name}-int8-{key}.onnx"


def _keep(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole (a reader never sees half a file); a cache that cannot be
    written (read-only home, full disk) only costs the next run its build."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(data)
        partial.replace(path)
    except OSError:
        pass


def network_session(name: str, state: dict, precision: str, threads: int,
                    cache: Path | None = None) -> ort.InferenceSession:
    """The network in ONNX Runtime on the CPU: "fp32" as the weights are, "int8" quantized with
    activation ranges from the demo clip, read from `cache` when given and there, else built
    (and then kept there)."""
    def session(model: bytes | str) -> ort.InferenceSession:
        return ort.InferenceSession(model, session_options(threads), providers=["CPUExecutionProvider"])

    if precision == "fp32":
        return session(network_graph(name, state).SerializeToString())
    if cache is not None and cache.is_file():
        try:
            return session(str(cache))
        except Exception:  # damaged: built again below
            pass
    int8 = quantized(network_graph(name, state))
    if cache is not None:
        _keep(cache, int8)
    return session(int8)


class OnnxFrontend:
    """A frontend file run by ONNX Runtime on the CPU, log-mel in numpy: what `mmgat-live` and
    `mmgat-tag` run without torch. 1 s frames (B, FRAME_SAMPLES) -> (B, EMBED_DIM) instances."""

    device = "cpu"

    def __init__(self, frontend: FrontendFile, precision: str = "int8", threads: int = 1, source="frontend"):
        if precision not in ("fp32", "int8"):
            raise FrontendError(f"ONNX Runtime runs the frontend in fp32 or int8, not {precision}")
        check_names(source, frontend.state, state_shapes(frontend.name))
        self.name, self.precision, self.threads = frontend.name, precision, threads
        self.recorded_fingerprint, self.meta, self.state = frontend.fingerprint, frontend.meta, frontend.state
        # The file's weights are fp16, so their fingerprint names them exactly.
        self.session = network_session(self.name, self.state, precision, threads,
                                       cache=int8_cache(self.name, self.fingerprint()))

    @classmethod
    def load(cls, path=None, precision: str = "int8", threads: int = 1) -> OnnxFrontend:
        """A frontend file (default: the shipped one), hash-checked."""
        return cls(read_frontend(path), precision, threads, source=path or "the shipped frontend")

    def embed(self, frames) -> np.ndarray:
        """Frames (B, FRAME_SAMPLES) -> float32 (B, EMBED_DIM)."""
        return self.session.run(None, {"examples": log_mel_examples(frames)})[0]

    def fingerprint(self) -> str:
        return weights_fingerprint(self.name, self.state)
