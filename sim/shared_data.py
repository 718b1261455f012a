"""Where the optional corpus lives: the directory $P4DISPATCH_SHARED_DATA names.

It holds published flow-size CDFs and real captures that nobody on this project wrote, so
the repository does not ship them; the program runs without them (built-in flow sizes,
generated captures), and they are extra inputs when the variable names a directory that has
them. The tests and the scripts that regenerate the docs' results point it at the project's
development corpus; the program itself never assumes a place.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "P4DISPATCH_SHARED_DATA"


def shared_data_dir() -> Path | None:
    """The corpus directory if the variable names one that exists, else None."""
    named = os.environ.get(ENV)
    path = Path(named) if named else None
    return path if path is not None and path.is_dir() else None


def shared_data_reason(sub: str = "") -> str | None:
    """Why the corpus (or its `sub` folder) cannot be used, or None when it can."""
    named = os.environ.get(ENV)
    if not named:
        return f"no corpus given (set {ENV} to its directory)"
    if shared_data_dir() is None:
        return f"{named} is not here (set {ENV} to its path if it is elsewhere)"
    if sub and not (Path(named) / sub).is_dir():
        return f"{named}/{sub} is not here"
    return None
