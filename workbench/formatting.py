"""Numbers for reading, one rule for the report and the Studio: significant digits in fixed notation."""
from __future__ import annotations

import html
import math
from typing import Any


def fmt_number(v: Any, scale: float = 1.0, integer: bool = False, sig: int = 3, signed: bool = False) -> str:
    """A number for reading: `sig` significant digits in fixed notation, never e-notation; thousands
    grouped; values that round to zero at 8 decimals print as 0."""
    if v is None or isinstance(v, bool):
        return "" if v is None else str(v)
    try:
        x = float(v) * scale
    except (TypeError, ValueError):
        return html.escape(str(v))
    if not math.isfinite(x):
        return "\u221e" if x > 0 else ("-\u221e" if x < 0 else "NaN")
    sign = "+" if signed and x > 0 else ""
    if integer and float(x).is_integer():
        return f"{sign}{int(x):,}"
    if x == 0 or abs(x) < 5e-9:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    if mag >= sig - 1:
        return f"{sign}{round(x):,}"
    decimals = min(8, sig - 1 - mag)
    return f"{sign}{x:,.{decimals}f}"
