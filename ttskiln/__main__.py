"""Command line: ``python -m ttskiln <command>``."""

from __future__ import annotations

import argparse
import sys


def _family_commands() -> dict:
    """Every family's subcommands (``Family.commands``), by name, from the registry."""
    from ttskiln.families import FAMILIES

    commands = {}
    for family in FAMILIES.values():
        for command in family.commands():
            if command.name in commands:
                raise RuntimeError(f"two families register the command {command.name!r}")
            commands[command.name] = command
    return commands


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ttskiln", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    parity = sub.add_parser("parity", help="reproduce upstream outputs recorded in a case folder")
    parity.add_argument("case_dir", help="folder with manifest.json, the checkpoint, inputs.npz, outputs.npz "
                        "(or a text front-end folder: manifest kind 'frontend')")
    family_commands = _family_commands()
    for command in family_commands.values():
        command.arguments(sub.add_parser(command.name, help=command.help, description=command.description))
    check = sub.add_parser("check-config", help="check YAML config files as the workflow would, naming file, line and column")
    check.add_argument("configs", nargs="+", help="config files, later ones overriding earlier ones (like --configfile)")
    sub.add_parser("doctor", help="what this machine offers (CUDA, TensorRT, TensorRT-LLM, ONNX Runtime providers) and which stages run")
    conformance = sub.add_parser(
        "conformance", help="every family x variant (fp32, fp16, int8) x component on its tiny preset: loads, runs, validates")
    conformance.add_argument("families", nargs="*", help="families to check (default: all in the registry)")
    conformance.add_argument("--workdir", help="where to build (default: a temporary folder, removed after)")
    compare = sub.add_parser(
        "compare", help="compare two reports' summary.json: latency and accuracy per row, regressions beyond noise",
        description="Rows are matched by model, component, variant, backend and point. A row regresses when the 95 % "
                    "bootstrap interval of its median-latency ratio (new / old) lies wholly above 1 + threshold, or "
                    "its validation went from pass to fail. Rows whose model changed (another checkpoint or layout under "
                    "the same name) or whose input shape changed, and rows timed on a loaded machine, are listed but not "
                    "judged on latency. Exits 1 when any row regressed or vanished, 2 when a file is not a summary.")
    compare.add_argument("old", help="the earlier summary.json (e.g. one under reports/history/)")
    compare.add_argument("new", help="the later summary.json")
    compare.add_argument("--threshold", type=float, default=0.05,
                         help="slowdown tolerated beyond noise, as a fraction (default 0.05: 5 %%)")
    args = parser.parse_args(argv)
    if args.command == "compare":
        from ttskiln.history import main as compare_main

        return compare_main(args.old, args.new, args.threshold)
    if args.command in family_commands:
        return family_commands[args.command].run(args)
    if args.command == "conformance":
        from ttskiln.conformance import main as conformance_main

        return conformance_main(args.families, args.workdir)
    if args.command == "check-config":
        from pathlib import Path

        from ttskiln.config_check import check_config, load_config_file
        from ttskiln.errors import TtskilnError
        from ttskiln.plan import build_plan

        try:
            config: dict = {}
            for path in args.configs:
                config.update(load_config_file(path))
            check_config(config, sources=args.configs)
            plan = build_plan(config, Path.cwd())
        except TtskilnError as exc:
            print(f"ttskiln: {exc}", file=sys.stderr)
            return 1
        print(f"ttskiln: {len(plan.models)} model(s) planned: {', '.join(plan.models)}")
        return 0
    if args.command == "doctor":
        from ttskiln.doctor import main as doctor_main

        return doctor_main()
    if args.command == "parity":
        from ttskiln.parity import main as parity_main

        return parity_main(args.case_dir)
    return 2


if __name__ == "__main__":
    sys.exit(main())
