"""`mmgat-train`: one subcommand per training job; each module registers its own parser."""

from __future__ import annotations

import argparse
import sys

PROG = "mmgat-train"


def build_parser() -> argparse.ArgumentParser:
    from mmgat.model.train import ablate, evaluate, fit, synth, train_frontend

    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (synth, train_frontend, fit, evaluate, ablate):
        module.register(commands)
    return parser


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)  # imports every job's module, and so its packages
        if getattr(args, "threads", None):  # process-wide, so here and not in library code
            import torch

            torch.set_num_threads(args.threads)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as error:  # mido, onnx, ...: the [train] extras are not installed
        print(f"{PROG}: error: the trainer needs its extras: pip install '.[train]' "
              f"(missing module {error.name})", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:  # user-caused: missing files, bad arguments, bad data
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
