"""``aws-batch-render``: the command line over the same core the add-on uses.

Each command group lives in its own module with a ``register(subparsers)`` function
that adds its subcommands; every subcommand sets ``func(args) -> int``. Errors from the
core (:class:`AwsBatchRenderError`) are printed as their message with the error's own
exit code, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..core import __version__
from ..core.errors import AwsBatchRenderError


def build_parser() -> argparse.ArgumentParser:
    from . import check, estimate, jobs, stack

    parser = argparse.ArgumentParser(
        prog="aws-batch-render",
        description="Render Blender animations on AWS Batch (or on this computer) and follow them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens in detail")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    jobs.register(sub)
    check.register(sub)
    stack.register(sub)
    estimate.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, where a closed pipe can still be answered quietly
        return code
    except AwsBatchRenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_went_away()


def _reader_went_away() -> int:
    """stdout's reader closed the pipe (``status ID | head -1``): it has what it wanted, so
    end quietly, pointing stdout at /dev/null so the final flush at exit cannot complain."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
