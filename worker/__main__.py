"""``python -m worker render|stitch|merge``: the container's entry point (see worker/README.md).

Every failure ends as one clear ``ERROR:`` line and an exit code AWS Batch's retry rules
read: 0 success, 65 content error (never retried), 75 worth retrying.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from addon.core.errors import AwsBatchRenderError
from addon.core.exitcodes import CONTENT_ERROR, RETRYABLE, SUCCESS

log = logging.getLogger("worker")

EPILOG = f"""exit codes: {SUCCESS} success; {CONTENT_ERROR} content error (bad spec, corrupt .blend, no camera,
missing frames; retrying cannot help); {RETRYABLE} retryable (interrupted, storage or network
trouble, Blender crash; another attempt resumes).
environment: JOB_SPEC_URI (required), AWS_BATCH_JOB_ARRAY_INDEX, AWS_BATCH_JOB_ATTEMPT,
BLENDER_BIN, BLENDER_PYTHON, WORKER_SCRATCH, WORKER_LOG_LEVEL."""


def setup_logging() -> None:
    level = os.environ.get("WORKER_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # botocore's own INFO/DEBUG lines (credential lookups, retries) drown the worker's.
    logging.getLogger("botocore").setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        description="AWS Batch Render worker: render a slice of frames, or stitch the video.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("render", help="render this array child's slice (AWS_BATCH_JOB_ARRAY_INDEX)")
    sub.add_parser("stitch", help="check every frame exists and encode the video and poster")
    sub.add_parser("merge", help="merge a split still's parts, denoise once, write the final image")
    args = parser.parse_args(argv)
    setup_logging()
    from .failures import exit_code_for

    try:
        if args.command == "render":
            from .render import run_render

            return run_render()
        if args.command == "merge":
            from .merge import run_merge

            return run_merge()
        from .stitch import run_stitch

        return run_stitch()
    except AwsBatchRenderError as exc:
        code = exit_code_for(exc)
        log.error("%s (exit %d: %s)", exc, code, "content error, not retried" if code == CONTENT_ERROR else "retryable")
        return code
    except Exception:
        log.exception("Unexpected error (exit %d, retryable)", RETRYABLE)
        return RETRYABLE


if __name__ == "__main__":
    sys.exit(main())
