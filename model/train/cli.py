"""`mmgat-train`: one subcommand per training job; each module registers its own parser."""

from __future__ import annotations

import argparse
import sys

from mmgat.commands.command import OneLineParser, add_common_arguments, run_command
from mmgat.commands.install import TRAIN_EXTRAS

PROG = "mmgat-train"


def build_parser() -> OneLineParser:
    from mmgat.model.train import (ablate, evaluate, finetune, fit, join, openmic_irmas, real,
                                   synth, train_frontend)

    parser = OneLineParser(prog=PROG, description=__doc__)
    add_common_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True)  # OneLineParsers too
    for module in (synth, join, real, openmic_irmas, train_frontend, fit, finetune, evaluate,
                   ablate):
        module.register(commands)
    for command in commands.choices.values():
        add_common_arguments(command, subcommand=True)
    return parser


def run(args: argparse.Namespace, stop) -> int | None:
    if getattr(args, "threads", None):  # process-wide, so here and not in library code
        import torch

        torch.set_num_threads(args.threads)
    return args.func(args)


def main(argv=None) -> int:
    return run_command(PROG, build_parser, run, argv, TRAIN_EXTRAS)


if __name__ == "__main__":
    sys.exit(main())
