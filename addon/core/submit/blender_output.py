"""What a child Blender said when it failed, as one line a user can read.

A child Blender that cannot open a file ends with a Python traceback whose last line is
Blender's own report (``RuntimeError: Error: File format is not supported in file
"…"``). The user needs that report, not the traceback: :func:`blender_said` finds it.
"""

from __future__ import annotations

import re

_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception)):\s*")
#: lines that never carry the reason: a traceback's header and Blender's exit note
_SKIP = ("Traceback (most recent call last)", "Blender quit", "During handling of the above exception")
MAX_CHARS = 300


def blender_said(output: str) -> str:
    """The last meaningful line of a child Blender's output, without the exception class
    and Blender's "Error:" prefix; "" when it said nothing."""
    for line in reversed(output.strip().splitlines()):
        if not line.strip() or line[:1].isspace():  # a traceback's code lines are indented
            continue
        text = line.strip()
        if text.startswith(_SKIP):
            continue
        text = _EXCEPTION.sub("", text)
        text = re.sub(r"^Error:\s*", "", text)
        text = " ".join(text.split())
        return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"
    return ""


def cannot_read_message(blend_name: str, output: str, returncode: int) -> str:
    """One line: what Blender said about ``blend_name`` and what to do."""
    said = blender_said(output) or f"it exited with status {returncode} and said nothing"
    return (
        f"Blender could not read the scene from {blend_name}: {said.rstrip('.')}. Open the file in "
        "Blender to check it (an empty, truncated or damaged file cannot be rendered; re-save it "
        "from Blender 4.2 or newer)."
    )
