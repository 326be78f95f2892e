"""A frontend's network in int8 for the CPU, run by ONNX Runtime.

Static quantization in ONNX Runtime's QDQ format: int8 weights per output channel, uint8
activations whose ranges are calibrated on log-mel examples given by the caller (the frontend
passes the shipped demo clip's). Measured on a 2-core EPYC (benchmarks/RESULTS.md) it is the
fastest frontend at batch 1 and batch 64, with the whole model's F1 within 0.01 of fp32.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from torch import nn

OPSET = 17
# The LayerNorm stays fp32: its rank-1 weight has no channel axis to quantize along.
KEPT_FP32 = ("LayerNormalization",)
CALIBRATION_BATCH = 64


class ExampleBatches(CalibrationDataReader):
    def __init__(self, examples: np.ndarray):
        self.batches = iter([{"examples": examples[i:i + CALIBRATION_BATCH]}
                             for i in range(0, len(examples), CALIBRATION_BATCH)])

    def get_next(self):
        return next(self.batches, None)


def quantized_session(net: nn.Module, calibration: np.ndarray, threads: int) -> ort.InferenceSession:
    """`net` ((B, 1, 96, 64) log-mel -> (B, D)) exported, quantized with activation ranges from
    the `calibration` examples (N, 1, 96, 64) float32, and loaded for the CPU on `threads`."""
    with tempfile.TemporaryDirectory() as scratch:
        fp32, prepared, int8 = (Path(scratch) / name for name in
                                ("frontend.onnx", "prepared.onnx", "frontend-int8.onnx"))
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated but needs no extra package (onnxscript).
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (torch.from_numpy(calibration[:1]),), str(fp32),
                              input_names=["examples"], output_names=["instances"],
                              dynamic_axes={"examples": {0: "batch"}, "instances": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        quant_pre_process(fp32, prepared)  # shapes inferred and the graph fused, as ORT advises
        kept = [node.name for node in onnx.load(str(prepared)).graph.node
                if node.op_type in KEPT_FP32]
        quantize_static(str(prepared), str(int8), ExampleBatches(calibration),
                        quant_format=QuantFormat.QDQ, nodes_to_exclude=kept,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
        return ort.InferenceSession(str(int8), session_options(threads),
                                    providers=["CPUExecutionProvider"])


def session_options(threads: int) -> ort.SessionOptions:
    """Options of every ONNX Runtime session of ours (this frontend, MMGAT): `threads` intra-op
    threads that sleep when idle. Spinning workers would hold the cores that torch's log-mel
    and the graph need next: at batch 1 on 2 cores a frame took 8.0 ms spinning, 3.6 ms not."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options
