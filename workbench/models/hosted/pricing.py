"""Price rules as data (`prices.yaml`), cost estimates, and the record's `cost` block.

A rule prices one hosted model by what it bills: per second of output, per clip, per image, per
megapixel of a picture (2**20 pixels, rounded up, as fal bills FLUX), per 1000 characters of speech,
in USD or in the provider's credits (with the USD rate of a credit, so a budget in USD can hold them).
Every rule names its source and the date it was read: prices move, and what the API reports as charged
always wins over the estimate in a record.

The record of a hosted job holds::

    "cost": {"estimated": 0.25, "charged": 0.25, "currency": "USD", "usd": 0.25,
             "source": "api" | "estimate", "rule": "0.05 USD/second (min 5 s) [fal.ai/..., 2025-06]"}

`charged` comes from the provider's response where it says so (source "api"), else it is the estimate
(source "estimate"); `usd` is `charged` in USD (None when a credit has no USD rate).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PRICES = Path(__file__).with_name("prices.yaml")
UNITS = ("second", "clip", "image", "megapixel", "1k_characters")


class PriceError(ValueError):
    """prices.yaml is malformed; one line naming the model and the key."""


@dataclass(frozen=True)
class PriceRule:
    """How one hosted model is billed."""

    model: str
    unit: str  # one of UNITS
    amount: float  # per unit, in `currency`
    currency: str = "USD"  # "USD" or "credits"
    usd_per_credit: float | None = None  # when currency is credits
    min_units: float = 0.0  # billed at least this many units (e.g. 5 s)
    source: str = ""  # where the price was read
    as_of: str = ""  # when (YYYY-MM)
    note: str = ""

    def units(self, seconds: float | None = None, characters: int | None = None,
              pixels: int | None = None) -> float | None:
        """Billable units for an output of `seconds` (or `characters` of speech, or a picture of `pixels`);
        None when unknown."""
        if self.unit in ("clip", "image"):
            n: float | None = 1.0
        elif self.unit == "megapixel":
            n = None if pixels is None else float(math.ceil(pixels / 2 ** 20))
        elif self.unit == "second":
            n = None if seconds is None else float(seconds)
        else:
            n = None if characters is None else characters / 1000.0
        return None if n is None else max(n, self.min_units)

    def estimate(self, seconds: float | None = None, characters: int | None = None,
                 pixels: int | None = None) -> float | None:
        """Price in `currency` of one output; None when the units are unknown."""
        n = self.units(seconds, characters, pixels)
        return None if n is None else round(n * self.amount, 6)

    def to_usd(self, amount: float | None) -> float | None:
        if amount is None:
            return None
        if self.currency.upper() == "USD":
            return amount
        return None if self.usd_per_credit is None else round(amount * self.usd_per_credit, 6)

    def describe(self) -> str:
        unit = {"1k_characters": "1000 characters"}.get(self.unit, self.unit)
        floor = f" (min {self.min_units:g} {'s' if self.unit == 'second' else unit})" if self.min_units else ""
        where = ", ".join(x for x in (self.source, self.as_of) if x)
        return f"{self.amount:g} {self.currency}/{unit}{floor}" + (f" [{where}]" if where else "")

    def as_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "amount": self.amount, "currency": self.currency,
                "usd_per_credit": self.usd_per_credit, "min_units": self.min_units, "source": self.source,
                "as_of": self.as_of, "rule": self.describe()}


@lru_cache(maxsize=4)
def load_prices(path: str | None = None) -> dict[str, PriceRule]:
    """{model name: rule} from prices.yaml (or `path`)."""
    p = Path(path) if path else PRICES
    data = yaml.safe_load(p.read_text()) or {}
    out: dict[str, PriceRule] = {}
    for model, row in (data.get("models") or {}).items():
        if not isinstance(row, dict):
            raise PriceError(f"{p}: models.{model} must be a mapping")
        unknown = set(row) - {"unit", "amount", "currency", "usd_per_credit", "min_units", "source", "as_of", "note"}
        if unknown:
            raise PriceError(f"{p}: models.{model}: unknown key(s) {', '.join(sorted(unknown))}")
        if row.get("unit") not in UNITS:
            raise PriceError(f"{p}: models.{model}.unit must be one of {', '.join(UNITS)}")
        out[model] = PriceRule(model=model, unit=row["unit"], amount=float(row["amount"]),
                               currency=str(row.get("currency", "USD")), usd_per_credit=row.get("usd_per_credit"),
                               min_units=float(row.get("min_units", 0)), source=str(row.get("source", "")),
                               as_of=str(row.get("as_of", "")), note=str(row.get("note", "")))
    return out


def price_rule(model: str) -> PriceRule | None:
    return load_prices().get(model)


def cost_record(rule: PriceRule | None, estimated: float | None, charged: float | None = None,
                currency: str | None = None) -> dict[str, Any]:
    """The record's `cost` block: the estimate, what was charged (from the API when given), where the
    charged figure came from, and its USD value."""
    cur = currency or (rule.currency if rule else "USD")
    source = "api" if charged is not None else "estimate"
    value = charged if charged is not None else estimated
    if cur.upper() == "USD":
        usd = value
    elif rule is not None and cur == rule.currency:
        usd = rule.to_usd(value)
    else:
        usd = None
    return {"estimated": estimated, "charged": value, "currency": cur, "usd": usd, "source": source,
            "rule": rule.describe() if rule else None}
