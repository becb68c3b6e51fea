"""submit, status, cancel, retry, logs, download, list (implemented with issue 4)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    pass
