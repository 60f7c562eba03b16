"""`python -m provisioning <command>`: the installer's and operator's tools around edge boxes.

Each command is a module with `add_arguments(parser)` and `run(args) -> exit code`; adding one is
one line in COMMANDS.
"""
from __future__ import annotations

import argparse
import sys
from types import ModuleType

from provisioning import discover
from shared.logs import setup_logging

#: name → (module, one-line help)
COMMANDS: dict[str, tuple[ModuleType, str]] = {
    "discover": (discover, "list the Vigil edge boxes on this LAN (mDNS), enrolled or not"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m provisioning", description="Vigil provisioning tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The tools print their results on stdout; what goes wrong on the way is logged to stderr.
    setup_logging(f"provisioning:{args.command}", "WARNING")
    return COMMANDS[args.command][0].run(args)


if __name__ == "__main__":
    sys.exit(main())
