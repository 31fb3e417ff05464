"""Runway (official client `runwayml`): image-to-video tasks, one table row per model (Runway's
model ids are data).

Protocol (what runwayml speaks, and tests/fakes/runway.py answers): `Authorization: Bearer <key>`
and `X-Runway-Version: 2024-11-06`; `POST {base}/v1/image_to_video` with `{model, promptImage (a
base64 data URI up to 5 MB), promptText, ratio ("1280:720"), duration, seed}` -> `{id}`;
`GET /v1/tasks/<id>` -> `{id, status: PENDING | THROTTLED | RUNNING | SUCCEEDED | FAILED | CANCELLED,
progress, output: [url], failure, failureCode, cost: {credits}}`. The output URL is presigned
(downloaded without the key). A refusal is a FAILED task whose failureCode starts with `SAFETY`
(or a 400 at submit that names content moderation). What the task says it cost (credits) is the
record's `charged`; a credit is 0.01 USD.

Key: RUNWAYML_API_SECRET. Base URL: WORKBENCH_RUNWAY_BASE_URL (default https://api.dev.runwayml.com).
Runway takes no idempotency key: the stored task id (and the clip's lock) keep a clip to one task.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.media import data_uri
from workbench.models.base import GenerationError, GenerationRequest
from workbench.models.hosted.base import (Fault, FixedDurations, HostedGenerator, Poll, encoded_image,
                                       make_generator, sdk_fault)
from workbench.models.hosted.keys import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="runway", title="Runway", key_env="RUNWAYML_API_SECRET", base_url_env="WORKBENCH_RUNWAY_BASE_URL",
    default_base_url="https://api.dev.runwayml.com", client_package="runwayml",
    docs="https://docs.dev.runwayml.com/api/"))

MAX_IMAGE_BYTES = 5 * 1024 * 1024
REFUSAL_WORDS = ("safety", "moderation", "content policy")


@dataclass(frozen=True)
class RunwayModel:
    """One Runway model as data."""

    name: str
    remote_model: str
    description: str
    ratios: tuple[str, ...]
    durations: tuple[int, ...]
    defaults: dict[str, Any]
    fps: float = 24.0


MODELS: tuple[RunwayModel, ...] = (
    RunwayModel("runway-gen4-turbo-i2v", "gen4_turbo", "Runway Gen-4 Turbo image-to-video, 720p (hosted)",
                ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672"), (5, 10),
                {"duration": 5.0, "ratio": "auto"}),
)


class RunwayGenerator(FixedDurations, HostedGenerator):
    """A Runway model; `spec` (a RunwayModel row) says which."""

    provider = "runway"
    spec: RunwayModel
    task = "image-to-video"
    requires = frozenset({"image"})
    accepts = frozenset({"image", "prompt"})

    @classmethod
    def check_request(cls, request: Any, params: dict[str, Any] | None = None, strict: bool = True) -> None:
        super().check_request(request, params, strict)
        p = cls.request_params(request, params)
        r = str(p.get("ratio", "auto"))
        if r != "auto" and r not in cls.spec.ratios:
            raise GenerationError(f"model '{cls.name}': ratio {r!r}; use auto or one of {', '.join(cls.spec.ratios)}")

    def asked(self, request: GenerationRequest) -> dict[str, float]:
        w, h = (int(v) for v in self.aspect_for(request, self.spec.ratios, "ratio").split(":"))
        return {"seconds": float(self.duration_for(self.params)), "width": w, "height": h, "fps": self.spec.fps}

    # ---- the provider hooks --------------------------------------------------------------------------
    def make_client(self, key: str, base_url: str) -> Any:
        import runwayml

        return runwayml.RunwayML(api_key=key, base_url=base_url, max_retries=0, timeout=120.0)

    def submit(self, client: Any, request: GenerationRequest, idempotency_key: str) -> dict[str, Any]:
        data, mime = encoded_image(request)
        if len(data) * 4 / 3 > MAX_IMAGE_BYTES:  # a data URI is base64: 4/3 of the bytes
            data, mime = encoded_image(request, fmt="JPEG")
        kwargs: dict[str, Any] = {"model": self.spec.remote_model, "prompt_image": data_uri(data, mime),
                                  "ratio": self.aspect_for(request, self.spec.ratios, "ratio"),
                                  "duration": self.duration_for(self.params),
                                  "seed": int(request.seed) % 4294967295}
        if request.prompt:
            kwargs["prompt_text"] = request.prompt[:1000]
        task = client.image_to_video.create(**kwargs)
        return {"id": task.id}

    def poll(self, client: Any, handle: dict[str, Any]) -> Poll:
        task = client.tasks.retrieve(handle["id"])
        status = task.status
        if status in ("PENDING", "THROTTLED"):
            return Poll("queued")
        if status == "RUNNING":
            return Poll("running", progress=float(getattr(task, "progress", 0) or 0))
        cost = getattr(task, "cost", None)
        charged = float(cost.credits) if cost is not None and getattr(cost, "credits", None) is not None else None
        if status == "SUCCEEDED":
            return Poll("done", progress=1.0, outputs=list(task.output or []), charged=charged,
                        currency="credits" if charged is not None else None)
        if status == "CANCELLED":
            return Poll("failed", error="the task was cancelled", charged=charged,
                        currency="credits" if charged is not None else None)
        code = getattr(task, "failure_code", None) or ""
        reason = f"{code}: {task.failure}" if code else (getattr(task, "failure", None) or "no reason given")
        return Poll("refused" if code.upper().startswith("SAFETY") else "failed", error=reason, charged=charged,
                    currency="credits" if charged is not None else None)

    def fault(self, exc: BaseException) -> Fault:
        try:
            import runwayml
        except ImportError:  # pragma: no cover
            return Fault("fatal", "the Runway client is not installed: pip install runwayml")
        return sdk_fault(runwayml, exc, ("error", "message"), REFUSAL_WORDS) or super().fault(exc)


GENERATORS = {spec.name: make_generator(RunwayGenerator, "Runway", spec, __name__, remote_model=spec.remote_model)
              for spec in MODELS}
