"""Where the optional development data lives: ../shared/data beside the checkout.

It holds published flow-size CDFs and real captures that nobody on this project wrote, so
the repository does not ship them; a clone runs without them (built-in flow sizes, generated
captures), and they are extra inputs when present. P4DISPATCH_SHARED_DATA names another place
(a checkout that is not beside shared/, e.g. a git worktree).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "P4DISPATCH_SHARED_DATA"
BESIDE_CHECKOUT = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_data_dir() -> Path | None:
    """The shared data directory if it exists, else None."""
    named = os.environ.get(ENV)
    path = Path(named) if named else BESIDE_CHECKOUT
    return path if path.is_dir() else None


def shared_data_reason(sub: str = "") -> str | None:
    """Why shared data (or its `sub` folder) cannot be used, or None when it can."""
    base = shared_data_dir()
    where = os.environ.get(ENV) or "../shared/data"
    if base is None:
        return f"{where} is not here (set {ENV} to its path if it is elsewhere)"
    if sub and not (base / sub).is_dir():
        return f"{where}/{sub} is not here"
    return None
