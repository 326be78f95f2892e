"""The flags `mmgat-live` and `mmgat-tag` share, their checks, and the runtime they load.

Importing this module is cheap (no numba, no ONNX Runtime): the commands build their parsers and
check their flags before the slow imports.
"""

from __future__ import annotations

import argparse
import sys

from mmgat.commands.command import UsageError
from mmgat.model.window import check_window

# model.frontend_file.PRECISIONS, spelled here so that argument parsing need not import the frontend.
FRONTEND_PRECISIONS = ("int8", "bf16", "fp32")


def add_runtime_arguments(parser: argparse.ArgumentParser, threads_help: str = "") -> None:
    parser.add_argument("--model", metavar="PATH", help="exported MMGAT artifact (default: the shipped one)")
    parser.add_argument("--window", type=int, metavar="W", help="seconds (frames) in the graph, 1..64 "
                        "(default: the model's)")
    parser.add_argument("--cpu", action="store_true", help="run the frontend and ONNX Runtime on the CPU")
    parser.add_argument("--precision", choices=FRONTEND_PRECISIONS,
                        help="the frontend's arithmetic (default: int8 on the CPU, bf16 on CUDA)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="intra-op threads of ONNX Runtime and of a CPU frontend" + threads_help
                             + " (default 1)")


def check_flag(rule, value) -> None:
    """rule(value), its ValueError ("window must be ...") as a usage error ("--window must be ...")."""
    try:
        rule(value)
    except ValueError as error:
        raise UsageError(f"--{error}") from None


def check_runtime_args(args) -> None:
    """Flag values that are wrong whatever the model says."""
    if args.window is not None:
        check_flag(check_window, args.window)
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")


def use_threads(threads: int) -> None:
    """torch's CPU threads for this process (a command's or a Ray worker's, never a library's):
    torch would take every core, and on a shared or small machine its threads then wait on each
    other (a 2-core box measured 35 ms per frame on one thread, 80-380 ms on two when busy).
    Only where the runtime has imported torch: the torch-free runtime has no torch threads, and
    importing torch only to set them would cost seconds."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def load_pipeline(model: str | None, cpu: bool, precision: str | None, threads: int):
    """The artifact and its frontend as one warmed-up Pipeline (stream/pipeline.py)."""
    # Imported here, not above: ONNX Runtime and the frontend take seconds to import.
    from mmgat.stream.pipeline import Pipeline
    from mmgat.export.runtime import load_runtime

    session, frontend = load_runtime(model, cpu=cpu, intra_op_threads=threads, precision=precision)
    pipeline = Pipeline(session, frontend)
    pipeline.warm_up()
    return pipeline


def check_model(model: str | None, cpu: bool):
    """The artifact loaded and checked, its frontend file found but not loaded: what a driver
    checks before it hands the work to processes that each load the whole runtime."""
    # Imported here, not above: ONNX Runtime takes a second to import.
    from mmgat.export.runtime import MMGATSession, frontend_path_for

    session = MMGATSession(model, cpu=cpu)
    frontend_path_for(session)
    return session
