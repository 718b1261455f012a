"""Which captures the capture demo replays: the files it is given, or captures it generates.

`--captures` takes paths; a bare name (no directory part) that is not a file here is looked up
in $P4DISPATCH_SHARED_DATA/pcaps, for convenience where that corpus is given. With no `--captures`
the demo writes its own captures (topo/generated_captures.py) and replays those, so it runs
from the repository's own files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sim.shared_data import shared_data_dir, shared_data_reason
from topo.generated_captures import write_generated_captures

GENERATED_DIR = "generated-captures"    # under the demo's --out


class CaptureSourceError(ValueError):
    """A capture named on the command line that cannot be found, saying where it was looked for."""


def resolve_capture(name: str) -> Path:
    """The file `name` names: a path, or a bare name in $P4DISPATCH_SHARED_DATA/pcaps."""
    path = Path(name)
    if path.is_file():
        return path
    if path.is_absolute() or len(path.parts) > 1:
        raise CaptureSourceError(f"{name}: no such capture file")
    reason = shared_data_reason("pcaps")
    shared = shared_data_dir()
    if reason or shared is None:
        raise CaptureSourceError(f"{name}: not a file here, and bare names are looked up in "
                                 f"$P4DISPATCH_SHARED_DATA/pcaps, but {reason}")
    candidate = shared / "pcaps" / name
    if not candidate.is_file():
        raise CaptureSourceError(f"{name}: not a file here nor in {shared / 'pcaps'}")
    return candidate


def demo_captures(names: Sequence[str], out_dir: Path, seed: int = 1) -> list[Path]:
    """The captures to replay: `names` resolved (every problem in one error), or, with no
    names, captures generated into out_dir/generated-captures."""
    if not names:
        return write_generated_captures(out_dir / GENERATED_DIR, seed)
    found, problems = [], []
    for name in names:
        try:
            found.append(resolve_capture(name))
        except CaptureSourceError as exc:
            problems.append(str(exc))
    if problems:
        raise CaptureSourceError("; ".join(problems))
    return found
