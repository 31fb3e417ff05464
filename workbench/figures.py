"""Matplotlib figures for the comparison report, returned as embeddable `data:image/png;base64,...` URIs.

- `metric_bars`: per-metric dot-and-whisker of each model's mean with its 95% bootstrap CI, the axis
  zoomed to the values (best outlined).
- `radar`: models over the metrics that have a direction, each axis scaled so the best model sits on
  the rim and the worst at the centre (min-max across models).

Per-frame curves are not drawn here: the report's page draws them in the browser, for the row a reader
opens, from compact data (workbench.report_table), so a 10,000-clip run costs no PNG per case.
Every figure is memoised by the content of its arguments (workbench.memo); FIGURES_VERSION is part of
that key, so bump it whenever a drawing changes.

Model colours come from `model_colors`, so the HTML can show the same swatches.
"""
from __future__ import annotations

import base64
import io
import math
from typing import Any

FIGURES_VERSION = 2  # part of every memoised figure's key: bump when any drawing changes
PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
           "#CCB974", "#64B5CD"]
LINESTYLES = ["-", "--", ":", "-."]


def model_colors(models: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _uri(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plain_axis(ax) -> None:
    """Never offset or scientific tick labels (no `1e-5` at the axis corner)."""
    from matplotlib.ticker import ScalarFormatter

    fmt = ScalarFormatter(useOffset=False)
    fmt.set_scientific(False)
    ax.yaxis.set_major_formatter(fmt)


def metric_bars(models: list[str], metrics: list[dict[str, Any]], colors: dict[str, str]) -> str | None:
    """Each model's mean with its 95% bootstrap CI, one panel per score: a dot and whisker on an axis
    zoomed to the values (0.994 vs 0.996 must look different; a bar from 0 would hide it, so no bars).
    `metrics`: [{"name", "label" (with unit), "scale", "higher": bool|None, "best": [models], "still": [models]
    (trivially good on this score: hollow), "stats": {model: {"mean","lo","hi"}}}]. Values are multiplied by `scale` (the unit in the label)."""
    shown = [m for m in metrics if any((m["stats"].get(x) or {}).get("mean") is not None for x in models)]
    if not models or not shown:
        return None
    plt = _plt()
    cols = min(4, len(shown))
    rows = math.ceil(len(shown) / cols)
    height = max(1.6, 0.32 * len(models) + 0.9)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, height * rows), squeeze=False)
    ys = list(range(len(models)))[::-1]  # first model on top
    for ax, m in zip(axes.flat, shown):
        best = set(m.get("best") or [])
        lows, highs = [], []
        for x, y in zip(models, ys):
            s = m["stats"].get(x) or {}
            if s.get("mean") is None:
                ax.text(0.02, y, "n/a", transform=ax.get_yaxis_transform(), va="center", fontsize=7, color="#888")
                continue
            mean = s["mean"] * m["scale"]
            lo = s["lo"] * m["scale"] if s.get("lo") is not None else mean
            hi = s["hi"] * m["scale"] if s.get("hi") is not None else mean
            lows.append(min(lo, mean))
            highs.append(max(hi, mean))
            ax.plot([lo, hi], [y, y], color=colors[x], linewidth=2.2, solid_capstyle="butt")
            still = x in (m.get("still") or ())
            ax.plot([mean], [y], "o", color=colors[x], markersize=6.5, markerfacecolor="white" if still else colors[x],
                    markeredgecolor="black" if x in best else colors[x], markeredgewidth=1.6 if x in best else 1.2)
        lows = [v for v in lows if math.isfinite(v)]
        highs = [v for v in highs if math.isfinite(v)]
        if lows and highs:
            lo_all, hi_all = min(lows), max(highs)
            pad = (hi_all - lo_all) * 0.12 or (abs(hi_all) * 0.01 or 0.01)
            if math.isfinite(lo_all - pad) and math.isfinite(hi_all + pad):
                ax.set_xlim(lo_all - pad, hi_all + pad)
        ax.set_ylim(-0.7, len(models) - 0.3)
        ax.set_yticks(ys, [f"{x} (still)" if x in (m.get("still") or ()) else x for x in models], fontsize=8)
        arrow = {True: " \u2191", False: " \u2193"}.get(m.get("higher"), "")
        ax.set_title(m["label"] + arrow, fontsize=9)
        ax.tick_params(axis="x", labelsize=7.5)
        from matplotlib.ticker import MaxNLocator, ScalarFormatter

        fmt = ScalarFormatter(useOffset=False)
        fmt.set_scientific(False)
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    fig.suptitle("mean per model with 95% bootstrap CI; each axis spans the values, not 0 to max "
                 "(\u2191 higher is better, \u2193 lower; best outlined; hollow: still clips, not ranked)", fontsize=9)
    fig.tight_layout()
    return _uri(fig)


def radar(models: list[str], metrics: list[dict[str, Any]], colors: dict[str, str]) -> str | None:
    """Spider chart over metrics with a direction; needs 3+ such metrics with a mean for 2+ models."""
    axes_m = []
    for m in metrics:
        if m.get("higher") is None:
            continue
        vals = {x: (m["stats"].get(x) or {}).get("mean") for x in models}
        vals = {x: v for x, v in vals.items() if v is not None}
        if len(vals) >= 2:
            axes_m.append((m, vals))
    if len(axes_m) < 3 or len(models) < 2:
        return None
    import numpy as np

    plt = _plt()
    angles = np.linspace(0, 2 * np.pi, len(axes_m), endpoint=False).tolist()
    fig = plt.figure(figsize=(4.6, 4.2))
    ax = fig.add_subplot(111, polar=True)
    for x in models:
        r = []
        for m, vals in axes_m:
            v = vals.get(x)
            if v is None:
                r.append(np.nan)
                continue
            lo, hi = min(vals.values()), max(vals.values())
            t = 0.5 if hi == lo else (v - lo) / (hi - lo)
            r.append(t if m["higher"] else 1.0 - t)
        ax.plot(angles + angles[:1], r + r[:1], color=colors[x], linewidth=1.8, label=x)
        ax.fill(angles + angles[:1], [0 if v != v else v for v in r + r[:1]], color=colors[x], alpha=0.08)
    ax.set_xticks(angles, [m["name"] for m, _ in axes_m], fontsize=8)
    ax.set_yticks([0, 0.5, 1], ["worst", "", "best"], fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.legend(loc="upper right", bbox_to_anchor=(1.35, 1.12), fontsize=8, frameon=False)
    ax.set_title("models over metrics (each axis: worst model at the centre, best at the rim)", fontsize=9, pad=18)
    return _uri(fig)


def gain_curve(points: list[dict[str, Any]], formula: str) -> str | None:
    """Best-of-N gain over one sample against N: mean with its bootstrap CI band. `points` are
    `GainPoint.to_dict()` rows (n, mean_gain, lo, hi, ...); None when fewer than two N have a mean."""
    pts = [p for p in points if p.get("mean_gain") is not None]
    if len(pts) < 2:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 2.8))
    ns = [p["n"] for p in pts]
    ax.plot(ns, [p["mean_gain"] for p in pts], "o-", color="#1f77b4", linewidth=1.6, label="mean gain")
    band = [p for p in pts if p.get("lo") is not None and p.get("hi") is not None]
    if band:
        ax.fill_between([p["n"] for p in band], [p["lo"] for p in band], [p["hi"] for p in band], color="#1f77b4",
                        alpha=0.18, linewidth=0, label="95% bootstrap CI")
    ax.axhline(0.0, color="#888", linewidth=0.8)
    ax.set_xticks(ns)
    ax.set_xlabel("N (samples per request, best one kept)", fontsize=8)
    ax.set_ylabel("objective gain\nover one sample", fontsize=8)
    ax.set_title(f"best-of-N: {formula}", fontsize=9)
    ax.tick_params(labelsize=8)
    plain_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="upper left")
    fig.tight_layout()
    return _uri(fig)


def cost_quality(panels: list[dict[str, Any]], colors: dict[str, str]) -> str | None:
    """Quality against cost per clip, one panel per score: `panels` = [{"label", "higher", "points":
    {model: (usd_per_clip, mean)}, "front": {models on the Pareto front}}]. Front models are outlined and
    joined; local models sit at 0 USD."""
    panels = [p for p in panels if len(p["points"]) >= 2]
    if not panels:
        return None
    plt = _plt()
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.9 * rows), squeeze=False)
    for ax, p in zip(axes.flat, panels):
        for m, (c, q) in p["points"].items():
            front = m in p["front"]
            ax.plot([c], [q], "o", color=colors[m], markersize=7, markeredgecolor="black" if front else colors[m],
                    markeredgewidth=1.5 if front else 0.5)
            ax.annotate(m, (c, q), textcoords="offset points", xytext=(4, 4), fontsize=7)
        line = sorted(p["points"][m] for m in p["front"])
        if len(line) > 1:
            ax.plot([c for c, _ in line], [q for _, q in line], color="#444", linewidth=0.8, linestyle="--")
        arrow = {True: " \u2191", False: " \u2193"}.get(p.get("higher"), "")
        ax.set_title(p["label"] + arrow, fontsize=9)
        ax.set_xlabel("USD per clip", fontsize=8)
        ax.tick_params(labelsize=7.5)
        plain_axis(ax)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle("quality against cost per clip (outlined and joined: no model is both cheaper and better)", fontsize=9)
    fig.tight_layout()
    return _uri(fig)
