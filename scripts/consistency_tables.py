"""Markdown tables for docs/policies.md from scripts/simulate_consistency.sh's summaries.

    .venv/bin/python scripts/consistency_tables.py docs/figures/e1-26k [docs/figures/e2-100k ...]

Each directory's summary.csv (one row per policy, switch model and churn cap) becomes two
tables: consistency (split flows, collisions, held decisions, churn per poll) and balance
(max/mean utilisation over 1 s windows, drops) for legacy, generations and generations
with the churn cap. Several directories are merged (e.g. a run without and one with the cap).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def load(directories: list[Path]) -> dict[tuple[str, str, str], dict[str, str]]:
    rows: dict[tuple[str, str, str], dict[str, str]] = {}
    for directory in directories:
        with (directory / "summary.csv").open() as source:
            for row in csv.DictReader(source):
                rows[(row["policy"], row["switch"], row["cap"])] = row
    return rows


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    rows = load([Path(a) for a in argv])
    policies = list(dict.fromkeys(policy for policy, _, _ in rows))
    caps = sorted({cap for _, _, cap in rows if cap != "-"})
    cap = caps[0] if caps else None

    def get(policy: str, switch: str, cap: str, column: str) -> str:
        row = rows.get((policy, switch, cap))
        return row[column] if row else "n/a"

    print("| policy | split legacy | split generations (design) | collisions legacy | collisions generations "
          "| held | churn/poll mean/p99/max" + (f" | ... cap {cap}" if cap else "") + " |")
    print("|---|---|---|---|---|---|---" + ("|---" if cap else "") + "|")
    for policy in policies:
        split = get(policy, "generations", "-", "split flows")
        design = get(policy, "generations", "-", "split design")
        cells = [policy, get(policy, "legacy", "-", "split flows"), f"{split} ({design})",
                 get(policy, "legacy", "-", "collisions"), get(policy, "generations", "-", "collisions"),
                 get(policy, "generations", "-", "held"), get(policy, "generations", "-", "churn/poll mean/p99/max")]
        if cap:
            cells.append(get(policy, "generations", cap, "churn/poll mean/p99/max"))
        print("| " + " | ".join(cells) + " |")
    print()
    variants = [("legacy", "-"), ("generations", "-")] + ([("generations", cap)] if cap else [])
    names = ["legacy", "generations"] + ([f"generations, cap {cap}"] if cap else [])
    print("| policy | " + " | ".join(f"{n}: max/mean mean (p99), drops %" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for policy in policies:
        cells = [policy]
        for switch, c in variants:
            cells.append(f"{get(policy, switch, c, 'max/mean mean')} ({get(policy, switch, c, 'max/mean p99')}), "
                         f"{get(policy, switch, c, 'drops %')}")
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
