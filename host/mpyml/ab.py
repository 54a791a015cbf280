"""`mpyml deploy --ab`: keep the board's previous model as <model>.mpk.prev when a new one replaces it.

The device package's ``mpyml.load_ab(path, selftest=fn)`` loads the new model and falls back to the
.prev one if the new file is missing, fails validation or its signature check, or the app's self-test
rejects it (docs/deploy.md, "A/B models").
"""

from __future__ import annotations

from .remote import Board

PREV_SUFFIX = ".prev"


def keep_previous(board: Board, dest: str) -> str:
    """Rename the board's dest to dest.prev (replacing an older .prev); returns the .prev path.

    A deploy interrupted after this leaves dest absent and dest.prev whole: load_ab() uses dest.prev,
    and the next deploy writes dest without touching dest.prev."""
    prev = dest + PREV_SUFFIX
    board.exec(f"_mp_rm({prev!r})\nos.rename({dest!r}, {prev!r})")
    return prev
