"""`mmgat-export CKPT --out MODEL.onnx` and `mmgat-export --verify MODEL.onnx [CKPT]`."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mmgat-export", description=__doc__)
    parser.add_argument("checkpoint", nargs="?", help="checkpoint directory or model.pt")
    parser.add_argument("--out", help="ONNX file to write (metadata inside, .sha256 beside)")
    parser.add_argument("--verify", metavar="MODEL", help="check an artifact's hash and metadata "
                        "(and torch/ONNX Runtime parity when CKPT is given)")
    args = parser.parse_args(argv)
    try:
        from mmgat.export.onnx import export_checkpoint, verify

        if args.verify:
            report = verify(args.verify, args.checkpoint)
            print(json.dumps(report, indent=2))
            return 0 if report.get("parity", "ok") == "ok" else 1
        if not args.checkpoint or not args.out:
            parser.error("give CKPT and --out MODEL.onnx, or --verify MODEL.onnx")
        path = export_checkpoint(args.checkpoint, args.out)
        print(f"wrote {path} and {path.name}.sha256")
        return 0
    except ModuleNotFoundError as error:  # onnx: one of the [train] extras
        print(f"mmgat-export: error: exporting needs the trainer's extras: pip install '.[train]' "
              f"(missing module {error.name})", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"mmgat-export: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
