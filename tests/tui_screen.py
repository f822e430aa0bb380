"""What a headless TUI shows, as text lines (for assertions on the screen's contents)."""

from __future__ import annotations


def screen_lines(app) -> list[str]:
    """The current screen, composited (modals over what they cover), one str a row."""
    return ["".join(seg.text for seg in strip) for strip in app.screen._compositor.render_strips()]


def screen_text(app) -> str:
    return "\n".join(screen_lines(app))
