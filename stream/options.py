"""The flags `mmgat-live` and `mmgat-tag` share, their checks, and the runtime they load.

Importing this module is cheap (no torch, no numba): the commands build their parsers and show
their first line before the slow imports.
"""

from __future__ import annotations

import argparse

from mmgat.model.command import UsageError

DEFAULT_WINDOW = 10  # frames, when the artifact does not say
# model.frontend.PRECISIONS, spelled here so that argument parsing need not import torch.
FRONTEND_PRECISIONS = ("int8", "bf16", "fp32")


def add_runtime_arguments(parser: argparse.ArgumentParser, threads_help: str = "") -> None:
    parser.add_argument("--model", metavar="PATH", help="exported MMGAT artifact (default: the shipped one)")
    parser.add_argument("--window", type=int, metavar="W", help="seconds (frames) in the graph, 1..64 "
                        "(default: the model's, else 10)")
    parser.add_argument("--cpu", action="store_true", help="run the frontend and ONNX Runtime on the CPU")
    parser.add_argument("--precision", choices=FRONTEND_PRECISIONS,
                        help="the frontend's arithmetic (default: int8 on the CPU, bf16 on CUDA)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="intra-op threads of ONNX Runtime and of a CPU frontend" + threads_help
                             + " (default 1)")


def check_runtime_args(args) -> None:
    """Flag values that are wrong whatever the model says."""
    from mmgat.stream.stream import check_window

    if args.window is not None:
        try:
            check_window(args.window)
        except ValueError as error:
            raise UsageError(f"--{error}") from None
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")


def use_threads(threads: int) -> None:
    """torch's CPU threads for this process (a command's or a Ray worker's, never a library's):
    torch would take every core, and on a shared or small machine its threads then wait on each
    other (a 2-core box measured 35 ms per frame on one thread, 80-380 ms on two when busy)."""
    import torch

    torch.set_num_threads(threads)


def load_pipeline(model: str | None, cpu: bool, precision: str | None, threads: int):
    """The artifact and its frontend as one warmed-up Pipeline (stream/pipeline.py)."""
    from mmgat.stream.pipeline import Pipeline
    from mmgat.stream.runtime import load_runtime

    session, frontend = load_runtime(model, cpu=cpu, intra_op_threads=threads, precision=precision)
    pipeline = Pipeline(session, frontend)
    pipeline.warm_up()
    return pipeline


def window_of(pipeline, requested: int | None) -> int:
    """--window, else the model's, else DEFAULT_WINDOW."""
    return requested if requested is not None else int(pipeline.session.metadata.get("window")
                                                       or DEFAULT_WINDOW)
