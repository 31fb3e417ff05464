"""Hedra (API v3, official client `hedra-sdk`): Character-3 talking avatars and the partner video
models Hedra brokers (Kling, Veo, ...), one table row per model.

Protocol (what hedra-sdk speaks, and tests/fakes/hedra.py answers): `Authorization: Bearer <key>`;
`POST /v3/files` (multipart) -> a presigned `url` to pass as `{"source": "url", "url": ...}`;
`POST /v3/models/<model id>` with `{"input": {...}}` and an `Idempotency-Key` header -> 202
`{job_id, status, status_url, result_url}`; `GET /v3/jobs/<id>/status` -> `{status: IN_QUEUE |
IN_PROGRESS | COMPLETED | FAILED, progress}`; `GET /v3/jobs/<id>` -> `{outputs: [{url, width, height,
duration_ms, fps}], cost, currency, error: {code, message}}`. A refusal is error code
`MODERATION_FAILED` (at submit: a 4xx with that code; later: a FAILED job with it).

Key: HEDRA_API_KEY. Base URL: WORKBENCH_HEDRA_BASE_URL (default https://api.hedra.com/v3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.models.base import GenerationRequest
from workbench.models.hosted.base import (Fault, HostedGenerator, Poll, encoded_audio, encoded_image,
                                          make_generator, status_fault)
from workbench.models.hosted.keys import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="hedra", title="Hedra", key_env="HEDRA_API_KEY", base_url_env="WORKBENCH_HEDRA_BASE_URL",
    default_base_url="https://api.hedra.com/v3", client_package="hedra-sdk",
    docs="hedra-sdk on PyPI; API v3 at https://api.hedra.com/v3 (models: GET /v3/models, prices: POST /v3/models/<id>/estimate)"))

REFUSAL_CODES = {"MODERATION_FAILED"}
RESOLUTION_HEIGHT = {"540p": 540, "720p": 720, "1080p": 1080, "4K": 2160}


@dataclass(frozen=True)
class HedraModel:
    """One Hedra model as data: our name, Hedra's model id, the client's submit method, the inputs."""

    name: str
    remote_model: str  # Hedra's model id (GET /v3/models)
    submit_method: str  # hedra-sdk's `client.jobs.<method>`
    task: str
    requires: frozenset[str]
    accepts: frozenset[str]
    aspect_ratios: tuple[str, ...]
    defaults: dict[str, Any]
    description: str
    duration_field: bool = True  # the input takes duration_ms from `duration` (else: the audio's length)


MODELS: tuple[HedraModel, ...] = (
    HedraModel("hedra-character-3", "hedra-character-3", "submit_hedra_character3", "audio-to-video",
               frozenset({"image", "audio"}), frozenset({"image", "audio", "prompt"}),
               ("1:1", "4:3", "3:4", "16:9", "9:16"),
               {"resolution": "720p", "aspect_ratio": "auto", "default_prompt": "a person speaking to the camera"},
               "Hedra Character-3 talking avatar (hosted): a portrait + speech -> a talking clip as long as the "
               "audio. With a case `text:` + `voice:` the speech is made first (workbench.speech)",
               duration_field=False),
    HedraModel("hedra-kling-2.1-master", "kling-21-master", "submit_kling21master", "image-to-video",
               frozenset({"image", "prompt"}), frozenset({"image", "prompt", "negative_prompt"}),
               ("16:9", "9:16", "1:1"), {"duration": 5.0, "aspect_ratio": "auto", "resolution": "720p"},
               "Kling 2.1 Master image-to-video, brokered by Hedra (hosted)"),
    HedraModel("hedra-veo-3", "veo-3", "submit_veo3", "image-to-video",
               frozenset({"image", "prompt"}), frozenset({"image", "prompt", "negative_prompt"}),
               ("16:9", "9:16"), {"duration": 8.0, "aspect_ratio": "auto", "resolution": "720p",
                                  "quality": "fast", "generate_audio": False},
               "Google Veo 3 image-to-video, brokered by Hedra (hosted)"),
)


def _error_envelope(body: Any) -> tuple[str | None, str | None]:
    """(code, message) from an ErrorResponse (pydantic or dict) or an ErrorEnvelope."""
    if body is None:
        return None, None
    if isinstance(body, dict):
        env = body.get("error", body)
        if isinstance(env, dict):
            return env.get("code"), env.get("message")
        return None, str(env)
    env = getattr(body, "error", body)
    return getattr(env, "code", None), getattr(env, "message", None)


class HedraGenerator(HostedGenerator):
    """A Hedra model; `spec` (a HedraModel row) says which."""

    provider = "hedra"
    idempotent_submit = True  # an Idempotency-Key on every submit: a retried one is one job
    spec: HedraModel

    def make_client(self, key: str, base_url: str) -> Any:
        from hedra import Hedra

        return Hedra(api_key=key, base_url=base_url, max_retries=0, timeout=60.0)  # retries: ours, bounded

    def asked(self, request: GenerationRequest) -> dict[str, float]:
        out = super().asked(request)
        h = RESOLUTION_HEIGHT.get(str(self.params.get("resolution")))
        if h:
            x, y = (float(v) for v in self.aspect_for(request, self.spec.aspect_ratios).split(":"))
            short = h  # "720p" names the short side
            out.update(width=round(short * x / y) if x >= y else short, height=short if x >= y else round(short * y / x))
        return out

    def _upload(self, client: Any, data: bytes, name: str, mime: str) -> dict[str, str]:
        res = self._call(lambda: client.files.upload(file=(name, data, mime)), "upload")
        return {"source": "url", "url": res.url}

    def submit(self, client: Any, request: GenerationRequest, idempotency_key: str) -> dict[str, Any]:
        spec = self.spec
        inp: dict[str, Any] = {"aspect_ratio": self.aspect_for(request, spec.aspect_ratios),
                               "resolution": self.params["resolution"]}
        if request.image is not None and "image" in spec.accepts:
            data, mime = encoded_image(request)
            inp["start_image"] = self._upload(client, data, "image.png", mime)
        if request.audio is not None and "audio" in spec.accepts:
            data, mime = encoded_audio(request)
            inp["audio"] = self._upload(client, data, "audio.wav", mime)
            inp["duration_ms"] = int(round(request.audio.duration * 1000))
        prompt = request.prompt or self.params.get("default_prompt", "")
        if prompt:
            inp["prompt"] = prompt
        if request.negative_prompt and "negative_prompt" in spec.accepts:
            inp["negative_prompt"] = request.negative_prompt
        if spec.duration_field:
            inp["duration_ms"] = int(round(float(self.params["duration"]) * 1000))
        for k in ("quality", "generate_audio"):
            if k in self.params:
                inp[k] = self.params[k]
        if "seed" in spec.defaults or spec.remote_model.startswith("veo"):
            inp["seed"] = int(request.seed)
        submit = getattr(client.jobs, spec.submit_method)
        ack = submit(input=inp, idempotency_key=idempotency_key)
        return {"id": ack.job_id, "model": ack.model, "status_url": ack.status_url, "result_url": ack.result_url}

    def poll(self, client: Any, handle: dict[str, Any]) -> Poll:
        st = client.jobs.get_status(handle["id"])
        status = str(st.status)
        if status in ("IN_QUEUE", "IN_PROGRESS"):
            return Poll("queued" if status == "IN_QUEUE" else "running", progress=st.progress)
        res = client.jobs.get(handle["id"])  # the result envelope: outputs, cost, error
        if str(res.status) == "FAILED" or status == "FAILED":
            code, message = _error_envelope(res.error)
            state = "refused" if code in REFUSAL_CODES else "failed"
            return Poll(state, error=f"{message or 'failed'} ({code})" if code else (message or "failed"),
                        charged=res.cost, currency=res.currency)
        outputs = [o for o in (res.outputs or []) if getattr(o, "url", None)]
        if not outputs:
            failed = [o for o in (res.outputs or []) if getattr(o, "error", None)]
            if failed:
                code, message = _error_envelope(failed[0].error)
                return Poll("refused" if code in REFUSAL_CODES else "failed", error=f"{message} ({code})",
                            charged=res.cost, currency=res.currency)
        meta: dict[str, Any] = {}
        if outputs:
            o = outputs[0]
            meta = {k: v for k, v in {"width": o.width, "height": o.height, "fps": o.fps,
                                      "seconds": (o.duration_ms / 1000.0) if o.duration_ms else None}.items()
                    if v is not None}
        return Poll("done", progress=1.0, outputs=[o.url for o in outputs], charged=res.cost,
                    currency=res.currency, meta=meta)

    def fault(self, exc: BaseException) -> Fault:
        try:
            from hedra.core.api_error import ApiError
            from hedra.core.parse_error import ParsingError
        except ImportError:  # pragma: no cover
            ApiError = ParsingError = ()  # type: ignore[assignment,misc]
        if isinstance(exc, (ApiError, ParsingError)):  # ParsingError: an error body of another shape
            code, message = _error_envelope(exc.body)
            status = exc.status_code or 0
            text = f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
            if code in REFUSAL_CODES:
                return Fault("refused", f"{message or 'content policy'} ({code})")
            return status_fault(status, text, exc.headers or {})
        if isinstance(exc, ImportError):
            return Fault("fatal", "the Hedra client is not installed: pip install hedra-sdk")
        return super().fault(exc)


GENERATORS = {spec.name: make_generator(HedraGenerator, "Hedra", spec, __name__, task=spec.task,
                                        remote_model=spec.remote_model, requires=spec.requires, accepts=spec.accepts)
              for spec in MODELS}

