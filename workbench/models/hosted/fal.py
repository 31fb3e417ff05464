"""fal (official client `fal-client`): Kling, MiniMax Hailuo, Seedance and Wan image-to-video, and
Seedream 4 and FLUX text-to-image (a source picture for image-to-video, chained with `image_from:`),
through fal's queue, one table row per model (fal's endpoint ids are data).

Protocol (what fal-client speaks, and tests/fakes/fal.py answers): `Authorization: Key <FAL_KEY>`;
`POST {queue}/<endpoint id>` with the arguments as JSON -> `{request_id, status_url, response_url,
cancel_url}`; `GET {queue}/<owner>/<alias>/requests/<id>/status` -> `{status: IN_QUEUE | IN_PROGRESS |
COMPLETED, logs}`; `GET {queue}/<owner>/<alias>/requests/<id>` -> the result (`{"video": {"url": ...}}`;
text-to-image: `{"images": [{"url", "width", "height", "content_type"}], "seed", "has_nsfw_concepts"}`,
where a flagged image comes back blank and is recorded as refused), or a 4xx with `{"detail": ...}`; a
content-policy refusal is a 422 whose detail has type `content_policy_violation` (or an
`x-fal-error-type` header / `error_type` saying so). Inputs go as base64 data URIs (no upload step).
fal does not report a charge per request: the record's cost is the estimate from prices.yaml.

Key: FAL_KEY (or FAL_KEY_ID + FAL_KEY_SECRET as fal-client reads them). Base URL of the queue:
WORKBENCH_FAL_BASE_URL (default https://queue.fal.run); fal-client builds queue URLs from a module
constant, which `make_client` points at this URL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.media import data_uri
from workbench.models.base import GenerationError, GenerationRequest
from workbench.models.hosted.base import Fault, HostedGenerator, Poll, encoded_image, make_generator, status_fault
from workbench.models.hosted.keys import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="fal", title="fal", key_env="FAL_KEY", base_url_env="WORKBENCH_FAL_BASE_URL",
    default_base_url="https://queue.fal.run", client_package="fal-client",
    docs="https://docs.fal.ai/model-apis/model-endpoints/queue"))

REFUSAL_TYPES = {"content_policy_violation", "content_moderation", "nsfw", "safety_check_failed"}


@dataclass(frozen=True)
class FalModel:
    """One fal endpoint as data: our name, fal's endpoint id, how duration is passed, fixed arguments."""

    name: str
    endpoint: str
    description: str
    defaults: dict[str, Any]
    durations: tuple[str, ...] = ()  # accepted `duration` values (fal takes them as strings)
    arguments: dict[str, Any] = field(default_factory=dict)  # passed as they are
    seed: bool = False  # the endpoint takes a seed
    negative_prompt: bool = True


MODELS: tuple[FalModel, ...] = (
    FalModel("fal-kling-2.1-standard-i2v", "fal-ai/kling-video/v2.1/standard/image-to-video",
             "Kling 2.1 Standard image-to-video on fal (hosted)", {"duration": 5.0, "cfg_scale": 0.5},
             durations=("5", "10")),
    FalModel("fal-kling-2.1-pro-i2v", "fal-ai/kling-video/v2.1/pro/image-to-video",
             "Kling 2.1 Pro image-to-video on fal (hosted)", {"duration": 5.0, "cfg_scale": 0.5},
             durations=("5", "10")),
    FalModel("fal-hailuo-02-standard-i2v", "fal-ai/minimax/hailuo-02/standard/image-to-video",
             "MiniMax Hailuo-02 Standard (768p) image-to-video on fal (hosted)",
             {"duration": 6.0, "prompt_optimizer": True}, durations=("6", "10"), negative_prompt=False),
    FalModel("fal-seedance-1-lite-i2v", "fal-ai/bytedance/seedance/v1/lite/image-to-video",
             "ByteDance Seedance 1.0 Lite image-to-video on fal (hosted)", {"duration": 5.0, "resolution": "720p"},
             durations=("5", "10"), seed=True, negative_prompt=False),
    FalModel("fal-wan-2.1-i2v", "fal-ai/wan-i2v", "Wan 2.1 image-to-video (480p) on fal (hosted)",
             {"num_frames": 81, "frames_per_second": 16, "resolution": "480p"}, seed=True),
)


class FalGenerator(HostedGenerator):
    provider = "fal"
    spec: FalModel
    requires = frozenset({"image", "prompt"})
    accepts = frozenset({"image", "prompt", "negative_prompt"})
    task = "image-to-video"

    def make_client(self, key: str, base_url: str) -> Any:
        import fal_client
        import fal_client.client as fc

        fc.QUEUE_URL_FORMAT = base_url.rstrip("/") + "/"  # fal-client's queue host (tests: the local fake)
        fc.MAX_ATTEMPTS = 2  # fal-client's own retries (up to 10, 30 s apart): ours are bounded and configurable
        return fal_client.SyncClient(key=key, default_timeout=60.0)

    def arguments(self, request: GenerationRequest) -> dict[str, Any]:
        spec = self.spec
        data, mime = encoded_image(request)
        args: dict[str, Any] = {"prompt": request.prompt, "image_url": data_uri(data, mime), **spec.arguments}
        for k, v in self.params.items():
            if k == "duration":
                d = f"{float(v):g}"
                args["duration"] = d if not spec.durations or d in spec.durations else spec.durations[0]
            else:
                args[k] = v
        if spec.negative_prompt and request.negative_prompt:
            args["negative_prompt"] = request.negative_prompt
        if spec.seed:
            args["seed"] = int(request.seed)
        return args

    def submit(self, client: Any, request: GenerationRequest, idempotency_key: str) -> dict[str, Any]:
        # fal's queue has no idempotency key: the stored request id (and the clip's lock) keep it to one
        handle = client.submit(self.spec.endpoint, self.arguments(request))
        return {"id": handle.request_id, "endpoint": self.spec.endpoint}

    def poll(self, client: Any, handle: dict[str, Any]) -> Poll:
        import fal_client

        status = client.status(handle["endpoint"], handle["id"])
        if isinstance(status, fal_client.Queued):
            return Poll("queued")
        if isinstance(status, fal_client.InProgress):
            return Poll("running")
        if getattr(status, "error", None):
            kind = "refused" if (getattr(status, "error_type", None) or "") in REFUSAL_TYPES else "failed"
            return Poll(kind, error=str(status.error))
        return self.finished(client.result(handle["endpoint"], handle["id"]))

    def finished(self, result: dict[str, Any]) -> Poll:
        """A finished request's result as a Poll: the output's URL and what fal says about it."""
        media = result.get("video") or result.get("image") or (result.get("images") or [None])[0] or {}
        url = media.get("url") if isinstance(media, dict) else None
        meta = {k: media[k] for k in ("width", "height", "fps") if isinstance(media, dict) and media.get(k)}
        if isinstance(media, dict) and media.get("duration"):
            meta["seconds"] = float(media["duration"])
        return Poll("done", progress=1.0, outputs=[url] if url else [], meta=meta)

    def fault(self, exc: BaseException) -> Fault:
        try:
            from fal_client.client import FalClientHTTPError
        except ImportError:  # pragma: no cover
            return Fault("fatal", "the fal client is not installed: pip install fal-client")
        if isinstance(exc, FalClientHTTPError):
            detail = exc.message
            types = {exc.error_type or ""}
            if isinstance(detail, list):
                types |= {str(d.get("type", "")) for d in detail if isinstance(d, dict)}
                detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
            if types & REFUSAL_TYPES:
                return Fault("refused", str(detail))
            return status_fault(exc.status_code, f"HTTP {exc.status_code}: {detail}", exc.response_headers)
        return super().fault(exc)


GENERATORS = {spec.name: make_generator(FalGenerator, "Fal", spec, __name__, remote_model=spec.endpoint)
              for spec in MODELS}


# --------------------------------------------------------------------------------------------------
# text-to-image (a source picture for image-to-video: chain it with `image_from:`)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FalImageModel:
    """One fal text-to-image endpoint as data. `edit_endpoint`: where a case with an image goes (the image
    as `image_urls`, the prompt saying what to make of it); without one the model takes no image."""

    name: str
    endpoint: str
    description: str
    defaults: dict[str, Any]  # width/height go as fal's `image_size`; the rest as they are
    edit_endpoint: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)  # passed as they are


IMAGE_MODELS: tuple[FalImageModel, ...] = (
    FalImageModel("fal-seedream-4", "fal-ai/bytedance/seedream/v4/text-to-image",
                  "ByteDance Seedream 4.0 text-to-image on fal, or the case's image edited by the prompt "
                  "(fal-ai/bytedance/seedream/v4/edit) (hosted)",
                  {"width": 2048, "height": 2048}, edit_endpoint="fal-ai/bytedance/seedream/v4/edit",
                  arguments={"enable_safety_checker": True}),
    FalImageModel("fal-flux-dev", "fal-ai/flux/dev", "FLUX.1 [dev] text-to-image on fal (hosted)",
                  {"width": 1024, "height": 768, "num_inference_steps": 28, "guidance_scale": 3.5},
                  arguments={"enable_safety_checker": True}),
    FalImageModel("fal-flux-pro-1.1", "fal-ai/flux-pro/v1.1", "FLUX1.1 [pro] text-to-image on fal (hosted)",
                  {"width": 1024, "height": 768, "safety_tolerance": "2"}, arguments={"enable_safety_checker": True}),
)


class FalImageGenerator(FalGenerator):
    """A fal text-to-image endpoint; `spec` (a FalImageModel row) says which."""

    spec: FalImageModel  # type: ignore[assignment]
    task = "text-to-image"
    requires = frozenset({"prompt"})
    accepts = frozenset({"prompt"})
    output_kind = "image"
    output_suffix = ".png"  # what fal returns (png or jpeg) is decoded by content, not by name

    @classmethod
    def check_request(cls, request: Any, params: dict[str, Any] | None = None, strict: bool = True) -> None:
        super().check_request(request, params, strict)
        p = cls.request_params(request, params)
        for k in ("width", "height"):
            if not isinstance(p.get(k), int) or isinstance(p.get(k), bool) or not 64 <= p[k] <= 4096:
                raise GenerationError(f"model '{cls.name}': {k} {p.get(k)!r}; use a whole number of pixels, 64..4096")

    @classmethod
    def estimate_cost(cls, params: dict[str, Any], audio_seconds: float | None = None,
                      characters: int | None = None) -> tuple[float | None, Any]:
        """Per image, or per megapixel of the size asked (FLUX)."""
        rule = cls.price(params)
        if rule is None:
            return None, None
        p = {**cls.defaults, **(params or {})}
        pixels = int(p["width"]) * int(p["height"]) if p.get("width") and p.get("height") else None
        return rule.estimate(None, None, pixels), rule

    def endpoint_for(self, request: GenerationRequest) -> str:
        return self.spec.edit_endpoint if self.spec.edit_endpoint and request.image is not None else self.spec.endpoint

    def arguments(self, request: GenerationRequest) -> dict[str, Any]:
        p = dict(self.params)
        args: dict[str, Any] = {"prompt": request.prompt, "num_images": 1, "seed": int(request.seed),
                                "image_size": {"width": int(p.pop("width")), "height": int(p.pop("height"))},
                                **self.spec.arguments, **p}
        if self.spec.edit_endpoint and request.image is not None:
            data, mime = encoded_image(request)
            args["image_urls"] = [data_uri(data, mime)]
        return args

    def submit(self, client: Any, request: GenerationRequest, idempotency_key: str) -> dict[str, Any]:
        endpoint = self.endpoint_for(request)
        handle = client.submit(endpoint, self.arguments(request))
        return {"id": handle.request_id, "endpoint": endpoint}

    def finished(self, result: dict[str, Any]) -> Poll:
        flagged = result.get("has_nsfw_concepts")
        if isinstance(flagged, list) and flagged and flagged[0] is True:
            return Poll("refused", error="fal's safety checker flagged the image (has_nsfw_concepts; it comes back blank)")
        if not result.get("images"):
            return Poll("failed", error="the result holds no image")
        return super().finished(result)


def _make_image(spec: FalImageModel) -> type[FalImageGenerator]:
    accepts = frozenset({"prompt", "image"}) if spec.edit_endpoint else frozenset({"prompt"})
    return make_generator(FalImageGenerator, "FalImage", spec, __name__, remote_model=spec.endpoint, accepts=accepts)


GENERATORS.update({spec.name: _make_image(spec) for spec in IMAGE_MODELS})

