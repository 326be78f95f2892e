"""`mmgat-export CKPT --out MODEL.onnx` and `mmgat-export --verify MODEL.onnx [CKPT]`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from mmgat.commands.command import OneLineParser, UsageError, add_common_arguments, run_command
from mmgat.commands.install import TRAIN_EXTRAS

PROG = "mmgat-export"

log = logging.getLogger("mmgat.export.cli")  # not __name__: "__main__" under python -m


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description=__doc__)
    parser.add_argument("checkpoint", nargs="?", help="checkpoint directory or model.pt")
    parser.add_argument("--out", help="ONNX file to write (metadata inside, .sha256 beside)")
    parser.add_argument("--verify", metavar="MODEL", help="check an artifact's hash and metadata "
                        "(and torch/ONNX Runtime parity when CKPT is given)")
    add_common_arguments(parser)
    return parser


def run(args: argparse.Namespace, stop) -> int:
    from mmgat.export.onnx import export_checkpoint, verify

    if args.verify:
        report = verify(args.verify, args.checkpoint)
        print(json.dumps(report, indent=2))
        return 0 if report.get("parity", "ok") == "ok" else 1
    if not args.checkpoint or not args.out:
        raise UsageError("give CKPT and --out MODEL.onnx, or --verify MODEL.onnx")
    path = export_checkpoint(args.checkpoint, args.out)
    log.info("wrote %s and %s.sha256", path, path.name)
    return 0


def main(argv=None) -> int:
    return run_command(PROG, build_parser, run, argv, TRAIN_EXTRAS)


if __name__ == "__main__":
    sys.exit(main())
