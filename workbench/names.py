"""Names that become file or folder names (case ids, model labels, suite names, Element names), and
the seed lists people type (`0`, `0, 1, 2`, `0-3`), shared by the Studio and the CLI.

One rule for all names, so no name can climb out of its folder: 1 to 64 characters of letters,
digits, '_', '-', '.', starting with a letter or digit (no '/', no '..' prefix, no hidden names, no NUL).
"""
from __future__ import annotations

import re

MAX_NAME = 64
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def check_name(value: str, what: str) -> str:
    """`value` unchanged when it is a safe file-name component, else ValueError saying why and the fix."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty name")
    shown = value if len(value) <= 40 else value[:37] + "..."
    if len(value) > MAX_NAME:
        raise ValueError(f"{what} {shown!r} is {len(value)} characters; use at most {MAX_NAME}")
    if not _SAFE.fullmatch(value):
        raise ValueError(f"{what} {shown!r} must be letters, digits, '_', '-', '.' and start with a letter or "
                         f"digit (it becomes a file name); e.g. {slug(value)!r}")
    return value


def slug(value: str, fallback: str = "x", max_len: int = MAX_NAME) -> str:
    """A safe name made from any string (for suggestions and for display names turned into paths): runs of
    other characters become '-', leading and trailing '-', '.', '_' go, then at most `max_len` characters;
    `fallback` when nothing is left. Callers adding a suffix pass a smaller `max_len` to stay within MAX_NAME."""
    s = re.sub(r"[^A-Za-z0-9_.\-]+", "-", value).strip("-._")
    return (s or fallback)[:max_len]


# --------------------------------------------------------------------------------------------------
# seeds as typed: "0", "0, 1, 2", "0-3"
# --------------------------------------------------------------------------------------------------
SEED_MAX = 2**32 - 1  # the suite's limit (numpy's seed range)
SEED_RANGE_MAX = 1000  # seeds one range may list


def seed_problems(text: str) -> list[str]:
    """Every reason `text` is not a list of seeds, one line each (empty: it is)."""
    problems: list[str] = []
    found = False
    for part in (p.strip() for p in str(text).replace(";", ",").split(",")):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                problems.append(f"seeds: range {part!r} runs backwards; write {b}-{a}")
            elif b - a >= SEED_RANGE_MAX:
                problems.append(f"seeds: range {part!r} lists {b - a + 1} seeds; at most {SEED_RANGE_MAX} per range")
            elif b > SEED_MAX:
                problems.append(f"seeds: {b} is above the largest seed {SEED_MAX}")
            else:
                found = True
            continue
        if re.fullmatch(r"[-−]\s*\d+", part):
            problems.append(f"seeds: {part} is negative; seeds are whole numbers from 0 to {SEED_MAX}")
        elif re.fullmatch(r"\d+", part):
            if int(part) > SEED_MAX:
                problems.append(f"seeds: {part} is above the largest seed {SEED_MAX}")
            else:
                found = True
        else:
            problems.append(f"seeds: {part!r} is not a seed; write 0, or 0, 1, 2, or 0-3")
    if not problems and not found:
        problems.append("seeds: give at least one seed, e.g. 0")
    return problems


def parse_seeds(text: str) -> list[int]:
    """'0', '0, 1, 2' or '0-3' (inclusive) as a list of seeds (0 to 2**32-1); ValueError with the
    first problem otherwise (`seed_problems` lists them all)."""
    problems = seed_problems(text)
    if problems:
        raise ValueError(problems[0])
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).replace(";", ",").split(",")):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        seeds.extend(range(int(m.group(1)), int(m.group(2)) + 1) if m else [int(part)])
    return list(dict.fromkeys(seeds))
