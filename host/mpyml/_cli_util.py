"""argparse plumbing shared by the host modules that are both an `mpyml` sub-command and a
`python -m mpyml.<module>` script (deploy, flash, board)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

Configure = Callable[[argparse.ArgumentParser], None]


def add_subcommand(sub: argparse._SubParsersAction, name: str, help: str, doc: str | None,  # type: ignore[type-arg]
                   configure: Configure) -> None:
    """`mpyml <name>`: a sub-parser described by the module docstring, filled in by configure()."""
    p = sub.add_parser(name, help=help, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    configure(p)


def module_main(module: str, doc: str | None, configure: Configure, argv: Sequence[str] | None = None) -> int:
    """`python -m <module>`: parse argv with configure()'s parser and run the chosen args.func."""
    p = argparse.ArgumentParser(prog=f"python -m {module}", description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    configure(p)
    args = p.parse_args(argv)
    return int(args.func(args) or 0)
