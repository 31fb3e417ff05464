"""What the suite check asks of the models (the `suite_check` hook, workbench.hooks): every model entry
names a registered model whose parameters and options resolve, within the generic bounds every video
model shares (`suite.PARAM_LIMITS`), and an `image_from` names a text-to-image model."""
from __future__ import annotations

import math

from workbench import hooks
from workbench.models.base import GenerationError, UnknownModel, get_generator
from workbench.suite import MAX_FRAME_BYTES, PARAM_LIMITS, Suite


@hooks.register("suite_check", order=20)
def model_problems(suite: Suite) -> list[str]:
    problems: list[str] = []
    for i, m in enumerate(suite.models):
        where = f"models.{i}"
        if m.name == "auto":  # picked per case by the router (workbench.workflow.agent)
            if m.image_from is not None or m.options:
                problems.append(f"{where}: an `auto` model takes no image_from or options; name a model instead")
            continue
        try:
            cls = get_generator(m.name)
        except UnknownModel as e:
            problems.append(f"{where}.name: {e}")
            continue
        try:
            params = cls.resolve_params(m.params)
        except GenerationError as e:
            problems.append(f"{where}.params: {e}")
            params = {}
        try:
            cls.resolve_options(m.options)
        except GenerationError as e:
            problems.append(f"{where}.options: {e}")
        bad = set()
        for key, (lo, hi) in PARAM_LIMITS.items():
            v = params.get(key)
            if isinstance(v, float) and not math.isfinite(v):
                problems.append(f"{where}.params.{key}: {v} is not a number; use a value in [{lo:g}, {hi:g}]")
                bad.add(key)
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and not lo <= v <= hi:
                problems.append(f"{where}.params.{key}: {v} is outside [{lo:g}, {hi:g}]; use a value in range")
        w, h = params.get("width"), params.get("height")
        n = 0
        if not bad:
            try:
                n = params.get("num_frames") or round(float(params.get("seconds") or 0) * float(params.get("fps") or 0))
            except (TypeError, ValueError, OverflowError):
                n = 0  # a parameter of the wrong type: the model's own check names it
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in (w, h, n)) \
                and w * h * 3 * n > MAX_FRAME_BYTES:
            problems.append(f"{where}.params: {w}x{h} x {n} frames is {w * h * 3 * n / 2**30:.0f} GiB of frames; "
                            f"lower the size or the frame count")
        if m.image_from is not None:
            up = next(x for x in suite.models if x.display == m.image_from)
            try:
                if get_generator(up.name).task != "text-to-image":
                    problems.append(f"{where}.image_from: '{m.image_from}' is not a text-to-image model")
            except UnknownModel:
                pass
    return problems
