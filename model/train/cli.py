"""`mmgat-train`: one subcommand per training job; each module registers its own parser."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from mmgat.model.train import ablate, evaluate, fit, synth, train_frontend

    parser = argparse.ArgumentParser(prog="mmgat-train", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (synth, train_frontend, fit, evaluate, ablate):
        module.register(commands)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as error:  # user-caused: missing files, bad arguments, bad data
        print(f"mmgat-train: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
