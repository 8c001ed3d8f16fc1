"""Command line: ``python -m ttskiln <command>``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ttskiln", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    parity = sub.add_parser("parity", help="reproduce upstream outputs recorded in a case folder")
    parity.add_argument("case_dir", help="folder with manifest.json, the checkpoint, inputs.npz, outputs.npz")
    args = parser.parse_args(argv)
    if args.command == "parity":
        from ttskiln.parity import main as parity_main

        return parity_main(args.case_dir)
    return 2


if __name__ == "__main__":
    sys.exit(main())
