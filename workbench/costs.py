"""What a comparison cost: per record and per model, from the records' `cost` blocks.

Hosted generators write `record["cost"] = {estimated, charged, currency, usd, source, rule}` (source
"api" when the provider said what it charged, "estimate" from the price rule otherwise); speech from a
paid voice adds `record["workflow"]["speech"]["cost"]` of the same shape. Open models run on your own
hardware and carry no cost block: their API cost is 0 and they are marked "local". The report and W&B
show the same figures: total and per clip, per second of video, and quality against cost per clip (the
models no other model beats on both: the Pareto front).
"""
from __future__ import annotations

from typing import Any

from workbench.metrics.stats import finite


def cost_blocks(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cost block of a record: the generation's and a paid voice's."""
    out = []
    for block in (record.get("cost"), ((record.get("workflow") or {}).get("speech") or {}).get("cost")):
        if isinstance(block, dict):
            out.append(block)
    return out


def usd_of(record: dict[str, Any]) -> float | None:
    """The record's cost in USD (charged, else estimated); 0 for a record with no cost block (local
    model); None when a block has no USD value (credits without an exchange rule)."""
    total = 0.0
    for block in cost_blocks(record):
        v = finite(block.get("usd"))
        if v is None:
            return None
        total += v
    return total


def cost_summary(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{model: {clips, usd, usd_per_clip, usd_per_second, local, sources, unpriced}} over finished jobs
    (failed jobs count too when they were charged)."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        m = str(r.get("model"))
        row = out.setdefault(m, {"clips": 0, "usd": 0.0, "seconds": 0.0, "local": True, "sources": set(),
                                 "unpriced": 0, "charged_failed": 0})
        blocks = cost_blocks(r)
        if blocks:
            row["local"] = False
            row["sources"].update(str(b.get("source") or "estimate") for b in blocks)
        usd = usd_of(r)
        if usd is None:
            row["unpriced"] += 1
            continue
        row["usd"] += usd
        if r.get("status") == "ok":
            row["clips"] += 1
            row["seconds"] += finite((r.get("clip") or {}).get("seconds")) or 0.0
        elif usd > 0:
            row["charged_failed"] += 1
    for row in out.values():
        row["usd_per_clip"] = row["usd"] / row["clips"] if row["clips"] else None
        row["usd_per_second"] = row["usd"] / row["seconds"] if row["seconds"] else None
        row["sources"] = sorted(row["sources"])
    return out


def any_cost(records: list[dict[str, Any]]) -> bool:
    return any(cost_blocks(r) for r in records)


def pareto_front(points: dict[str, tuple[float, float]], higher: bool) -> set[str]:
    """Models no other model beats on both cost (lower) and quality (by `higher`): {model: (usd, quality)}."""
    front = set()
    for m, (c, q) in points.items():
        beaten = any((c2 <= c and (q2 >= q if higher else q2 <= q)) and (c2 < c or q2 != q)
                     for m2, (c2, q2) in points.items() if m2 != m)
        if not beaten:
            front.add(m)
    return front
