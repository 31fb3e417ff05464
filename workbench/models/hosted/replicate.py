"""Replicate (official client `replicate`): image-to-video models by their Replicate id, one table row
per model (ids are data).

Protocol (what the client speaks, and tests/fakes/replicate.py answers): `Authorization: Bearer
<token>`; `POST /v1/models/<owner>/<name>/predictions` with `{"input": {...}}` -> a prediction `{id,
status: starting, urls}`; `GET /v1/predictions/<id>` -> `{status: starting | processing | succeeded |
failed | canceled, output, error, metrics}`. A refusal is a failed prediction whose error says the
input or output was flagged (E005 / NSFW). File inputs go as data URIs. Replicate does not report a
charge per prediction in the API: the record's cost is the estimate from prices.yaml.

Key: REPLICATE_API_TOKEN. Base URL: WORKBENCH_REPLICATE_BASE_URL (default https://api.replicate.com).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from workbench.media import data_uri
from workbench.models.base import GenerationRequest
from workbench.models.hosted.base import Fault, HostedGenerator, Poll, encoded_image, make_generator, status_fault
from workbench.models.hosted.keys import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="replicate", title="Replicate", key_env="REPLICATE_API_TOKEN", base_url_env="WORKBENCH_REPLICATE_BASE_URL",
    default_base_url="https://api.replicate.com", client_package="replicate",
    docs="https://replicate.com/docs/reference/http"))

REFUSAL = re.compile(r"(?i)\bE005\b|flagged as sensitive|nsfw|content polic|safety (check|filter)")


@dataclass(frozen=True)
class ReplicateModel:
    name: str
    model: str  # owner/name on Replicate
    description: str
    defaults: dict[str, Any]
    image_field: str = "image"


MODELS: tuple[ReplicateModel, ...] = (
    ReplicateModel("replicate-wan-2.2-i2v-fast", "wan-video/wan-2.2-i2v-fast",
                   "Wan 2.2 image-to-video (fast, 480p) on Replicate (hosted)",
                   {"num_frames": 81, "frames_per_second": 16, "resolution": "480p", "go_fast": True}),
)


class ReplicateGenerator(HostedGenerator):
    provider = "replicate"
    spec: ReplicateModel
    task = "image-to-video"
    requires = frozenset({"image", "prompt"})
    accepts = frozenset({"image", "prompt"})

    def make_client(self, key: str, base_url: str) -> Any:
        import httpx
        import replicate

        return replicate.Client(api_token=key, base_url=base_url, timeout=httpx.Timeout(60.0))

    def submit(self, client: Any, request: GenerationRequest, idempotency_key: str) -> dict[str, Any]:
        data, mime = encoded_image(request)
        inp = {self.spec.image_field: data_uri(data, mime), "prompt": request.prompt,
               "seed": int(request.seed), **self.params}
        pred = client.models.predictions.create(model=self.spec.model, input=inp)
        return {"id": pred.id, "model": self.spec.model}

    def poll(self, client: Any, handle: dict[str, Any]) -> Poll:
        pred = client.predictions.get(handle["id"])
        if pred.status in ("starting", "processing"):
            return Poll("queued" if pred.status == "starting" else "running")
        if pred.status in ("failed", "canceled"):
            why = pred.error or pred.status
            return Poll("refused" if REFUSAL.search(str(why)) else "failed", error=str(why))
        out = pred.output
        urls = [out] if isinstance(out, str) else [u for u in (out or []) if isinstance(u, str)]
        return Poll("done", progress=1.0, outputs=urls[:1])

    def fault(self, exc: BaseException) -> Fault:
        try:
            from replicate.exceptions import ReplicateError
        except ImportError:  # pragma: no cover
            return Fault("fatal", "the Replicate client is not installed: pip install replicate")
        if isinstance(exc, ReplicateError):
            code = exc.status or 0
            text = f"HTTP {code}: {exc.title or ''} {exc.detail or ''}".strip()
            if REFUSAL.search(f"{exc.title} {exc.detail}"):
                return Fault("refused", str(exc.detail or exc.title))
            return status_fault(code, text)
        return super().fault(exc)


GENERATORS = {spec.name: make_generator(ReplicateGenerator, "Replicate", spec, __name__, remote_model=spec.model)
              for spec in MODELS}
