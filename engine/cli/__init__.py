"""The `layergate` command line: one module per subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import audit as audit_command
from . import bench as bench_command
from . import check as check_command
from . import compile as compile_command
from . import elevation as elevation_command
from . import eval as eval_command
from . import lint as lint_command
from . import report as report_command
from . import serve as serve_command
from . import validate as validate_command

SUBCOMMANDS = (validate_command, lint_command, compile_command, eval_command, serve_command,
               check_command, elevation_command, audit_command, report_command, bench_command)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="layergate", description="Layered authorization for non-human identities.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(commands)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except BrokenPipeError:  # e.g. `layergate eval ... | head`: the reader left, not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
