"""Text that fits: wrap a message to a width in pixels, measured with Blender's own text
measuring (``blf`` with the UI font at the interface's size), so a long message becomes
whole lines instead of labels cut in the middle."""

from __future__ import annotations

import re
import textwrap
from typing import Any

import blf
import bpy

FALLBACK_CHARS = 60  # without a region (bpy module, tests): a plain character count


def ui_scale() -> float:
    """The interface scale Blender draws at (the preference times the display's DPI; 0
    without a window, where 1 is what a window at 72 DPI would use)."""
    return bpy.context.preferences.system.ui_scale or 1.0


def text_width(text: str) -> float:
    """Pixels ``text`` takes in the UI font (font 0) at the current interface scale."""
    blf.size(0, bpy.context.preferences.ui_styles[0].widget.points * ui_scale())
    return blf.dimensions(0, text)[0]


def wrap(text: str, width: float) -> list[str]:
    """Lines of ``text`` no wider than ``width`` pixels; a path wider than that breaks after a
    separator, and a name still wider breaks between characters."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [text]:
        if width <= 0:
            lines.extend(textwrap.wrap(paragraph, FALLBACK_CHARS) or [paragraph])
            continue
        line = ""
        for word, glue in _words(paragraph, width):
            candidate = f"{line}{glue}{word}" if line else word
            if line and text_width(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines or [text]


def _words(paragraph: str, width: float) -> list[tuple[str, str]]:
    """(word, glue before it): a word wider than ``width`` (a path) is split after each
    ``/`` or ``\\`` into pieces that fit, glued with "" instead of a space."""
    words: list[tuple[str, str]] = []
    for word in paragraph.split(" "):
        if text_width(word) <= width:
            words.append((word, " "))
            continue
        piece, glue = "", " "
        for part in _fit_parts(re.split(r"(?<=[/\\])", word), width):
            if piece and text_width(piece + part) > width:
                words.append((piece, glue))
                piece, glue = part, ""
            else:
                piece += part
        if piece:
            words.append((piece, glue))
    return words


def _fit_parts(parts: list[str], width: float) -> list[str]:
    """``parts`` with each one wider than ``width`` cut into pieces that fit."""
    out: list[str] = []
    for part in parts:
        while part and text_width(part) > width:
            n = len(part) - 1
            while n > 1 and text_width(part[:n]) > width:
                n -= 1
            out.append(part[:n])
            part = part[n:]
        if part:
            out.append(part)
    return out


def draw_lines(layout: Any, text: str, icon: str, width: float) -> None:
    """``text`` as labels that each fit ``width`` pixels (blf-measured), the icon on the first."""
    col = layout.column(align=True)
    for i, line in enumerate(wrap(text, width - 40 * ui_scale())):  # less the icon and the padding
        col.label(text=line, icon=icon if i == 0 else "BLANK1")
