"""The report's summary figures drawn as SVG by hand: each model's mean with its CI per score, and the radar.

They are redrawn whenever a model's summary changes (one new record in a 10,000-clip run does that), so
they must be cheap: writing SVG text takes milliseconds where matplotlib's import and draw take about a
second. They stay `<img src="data:image/svg+xml;base64,...">` (no script needed, crisp at any zoom,
shown the same by JupyterLab's untrusted viewer). The inputs are the ones `figures.metric_bars` took.
"""
from __future__ import annotations

import base64
import html
import math
from typing import Any

FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\""
MUTED, GRID, INK = "#6b7280", "#e5e7eb", "#111827"


def svg_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """About `count` round tick values (1, 2, 2.5, 5 x 10^k steps) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, count)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def tick_text(v: float, step: float) -> str:
    """A tick label with as many decimals as the step needs (0.25 steps: two), never e-notation."""
    if step <= 0 or not math.isfinite(step):
        return f"{v:.4g}"
    exp = math.floor(math.log10(step))
    places = max(0, -exp + (1 if abs(step / 10.0 ** exp - 2.5) < 1e-6 else 0))
    return f"{v:.{places}f}"


def _text(x: float, y: float, s: str, size: float = 11, anchor: str = "start", color: str = INK,
          weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{color}" '
            f'font-weight="{weight}">{html.escape(s)}</text>')


def score_panels(models: list[str], metrics: list[dict[str, Any]], colors: dict[str, str]) -> str | None:
    """Small multiples, one panel per score: each model's mean (dot) and 95% CI (whisker) on an axis that
    spans the values (0.994 vs 0.996 must look different, so no bars from 0); best models outlined in
    black, still models hollow. `metrics` as `figures.metric_bars` takes them; None when nothing to draw."""
    shown = [m for m in metrics if any((m["stats"].get(x) or {}).get("mean") is not None for x in models)]
    if not models or not shown:
        return None
    cols = min(4, len(shown))
    rows = math.ceil(len(shown) / cols)
    label_w = min(150, 14 + 6.6 * max(len(x) + (8 if any(x in (m.get("still") or ()) for m in shown) else 0)
                                      for x in models))
    pw, row_h = 300, 20
    ph = 46 + row_h * len(models) + 24
    width, height = cols * pw + 10, rows * ph + 34
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'{FONT}>', f'<rect width="{width}" height="{height}" fill="#fff"/>',
           _text(width / 2, 18, "mean per model with 95% bootstrap CI; each axis spans the values, not 0 to max "
                 "(\u2191 higher is better, \u2193 lower; best outlined; hollow: still clips, not ranked)", 11.5,
                 "middle", MUTED)]
    for k, m in enumerate(shown):
        ox, oy = (k % cols) * pw + 5, (k // cols) * ph + 30
        x0, x1 = ox + label_w, ox + pw - 16
        arrow = {True: " \u2191", False: " \u2193"}.get(m.get("higher"), "")
        out.append(_text((x0 + x1) / 2, oy + 14, m["label"] + arrow, 12, "middle", INK, "600"))
        vals = []
        for x in models:
            s = m["stats"].get(x) or {}
            if s.get("mean") is None:
                continue
            mean = s["mean"] * m["scale"]
            lo = s["lo"] * m["scale"] if s.get("lo") is not None else mean
            hi = s["hi"] * m["scale"] if s.get("hi") is not None else mean
            vals += [v for v in (lo, mean, hi) if math.isfinite(v)]
        lo_all, hi_all = (min(vals), max(vals)) if vals else (0.0, 1.0)
        pad = (hi_all - lo_all) * 0.12 or (abs(hi_all) * 0.01 or 0.01)
        lo_ax, hi_ax = lo_all - pad, hi_all + pad
        top, bottom = oy + 26, oy + 26 + row_h * len(models)

        def px(v: float) -> float:
            return x0 + (v - lo_ax) / (hi_ax - lo_ax) * (x1 - x0)

        ticks = nice_ticks(lo_ax, hi_ax)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else abs(ticks[0]) or 1.0
        for t in ticks:
            out.append(f'<line x1="{px(t):.1f}" y1="{top}" x2="{px(t):.1f}" y2="{bottom}" stroke="{GRID}"/>')
            out.append(_text(px(t), bottom + 14, tick_text(t, step), 10, "middle", MUTED))
        out.append(f'<rect x="{x0}" y="{top}" width="{x1 - x0}" height="{bottom - top}" fill="none" stroke="#cbd0d6"/>')
        best, still = set(m.get("best") or []), set(m.get("still") or [])
        for i, x in enumerate(models):
            y = top + row_h * i + row_h / 2
            out.append(_text(x0 - 6, y + 4, f"{x} (still)" if x in still else x, 10.5, "end"))
            s = m["stats"].get(x) or {}
            if s.get("mean") is None:
                out.append(_text(x0 + 4, y + 4, "n/a", 10, "start", MUTED))
                continue
            mean = s["mean"] * m["scale"]
            lo = s["lo"] * m["scale"] if s.get("lo") is not None else mean
            hi = s["hi"] * m["scale"] if s.get("hi") is not None else mean
            if not all(math.isfinite(v) for v in (mean, lo, hi)):
                out.append(_text(x0 + 4, y + 4, "not finite", 10, "start", MUTED))
                continue
            c = colors[x]
            out.append(f'<line x1="{px(lo):.1f}" y1="{y:.1f}" x2="{px(hi):.1f}" y2="{y:.1f}" stroke="{c}" '
                       f'stroke-width="2.4"><title>{html.escape(x)}: 95% CI {lo:.4g} \u2013 {hi:.4g}</title></line>')
            out.append(f'<circle cx="{px(mean):.1f}" cy="{y:.1f}" r="4.6" fill="{"#fff" if x in still else c}" '
                       f'stroke="{"#000" if x in best else c}" stroke-width="{1.8 if x in best else 1.3}">'
                       f'<title>{html.escape(x)}: mean {mean:.4g}</title></circle>')
    out.append("</svg>")
    return svg_uri("".join(out))


def radar(models: list[str], metrics: list[dict[str, Any]], colors: dict[str, str]) -> str | None:
    """Spider chart over scores with a direction (each axis: worst model at the centre, best at the rim);
    needs 3+ such scores with a mean for 2+ models, else None."""
    axes_m = []
    for m in metrics:
        if m.get("higher") is None:
            continue
        vals = {x: (m["stats"].get(x) or {}).get("mean") for x in models}
        vals = {x: v for x, v in vals.items() if v is not None and math.isfinite(v)}
        if len(vals) >= 2:
            axes_m.append((m, vals))
    if len(axes_m) < 3 or len(models) < 2:
        return None
    cx, cy, radius = 320, 215, 150
    width, height = 760, 420
    n = len(axes_m)
    angle = [math.pi / 2 - 2 * math.pi * i / n for i in range(n)]  # first axis up, clockwise

    def point(i: int, t: float) -> tuple[float, float]:
        return cx + radius * t * math.cos(angle[i]), cy - radius * t * math.sin(angle[i])

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'{FONT}>', f'<rect width="{width}" height="{height}" fill="#fff"/>',
           _text(width / 2, 18, "models over scores (each axis: worst model at the centre, best at the rim)", 11.5,
                 "middle", MUTED)]
    for ring in (0.5, 1.0):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, ring) for i in range(n)))
        out.append(f'<polygon points="{pts}" fill="none" stroke="{GRID}"/>')
    out.append(_text(cx + 4, cy - radius - 4, "best", 9.5, "start", MUTED))
    for i, (m, _) in enumerate(axes_m):
        x, y = point(i, 1.0)
        out.append(f'<line x1="{cx}" y1="{cy}" x2="{x:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        lx, ly = point(i, 1.13)
        anchor = "middle" if abs(math.cos(angle[i])) < 0.3 else ("start" if math.cos(angle[i]) > 0 else "end")
        out.append(_text(lx, ly + 4, m["name"], 10.5, anchor))
    for k, x in enumerate(models):
        pts = []
        for i, (m, vals) in enumerate(axes_m):
            v = vals.get(x)
            if v is None:
                continue
            lo, hi = min(vals.values()), max(vals.values())
            t = 0.5 if hi == lo else (v - lo) / (hi - lo)
            pts.append(point(i, t if m["higher"] else 1.0 - t))
        if not pts:
            continue
        c = colors[x]
        shape = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        tag = "polygon" if len(pts) == n else "polyline"
        out.append(f'<{tag} points="{shape}" fill="{c}" fill-opacity="0.08" stroke="{c}" stroke-width="1.8">'
                   f'<title>{html.escape(x)}</title></{tag}>')
        out.append(f'<rect x="{width - 150}" y="{40 + 18 * k}" width="10" height="10" fill="{c}"/>')
        out.append(_text(width - 134, 49 + 18 * k, x, 11))
    out.append("</svg>")
    return svg_uri("".join(out))
