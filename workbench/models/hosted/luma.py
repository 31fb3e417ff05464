"""Luma Dream Machine (official client `lumaai`): Ray 2 image-to-video and text-to-video generations,
one table row per model (Luma's model ids are data).

Protocol (what lumaai speaks, and tests/fakes/luma.py answers): `Authorization: Bearer <key>`;
`POST {base}/generations/video` with `{model, prompt, keyframes: {frame0: {type: "image", url}},
aspect_ratio, duration: "5s" | "9s", resolution: "540p" | "720p" | ...}` -> a Generation `{id,
state: queued}`; `GET /generations/<id>` -> `{state: queued | dreaming | completed | failed,
failure_reason, assets: {video: url}}`. The video URL is public (downloaded without the key). A
refusal is a failed generation (or a 400 at submit) whose reason names moderation.

Luma takes the first frame **by URL only** (no upload endpoint): the image-to-video rows need
`params.image_url`, a public https URL of the case's image (the case `image:` still feeds the
metrics). Luma reports no charge per generation: the record's cost is the estimate.

Key: LUMAAI_API_KEY. Base URL: WORKBENCH_LUMA_BASE_URL (default https://api.lumalabs.ai/dream-machine/v1).
Luma takes no idempotency key: the stored generation id (and the clip's lock) keep a clip to one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.models.base import GenerationError, GenerationRequest
from workbench.models.hosted.base import (Fault, FixedDurations, HostedGenerator, Poll, make_generator,
                                          sdk_fault)
from workbench.models.hosted.keys import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="luma", title="Luma", key_env="LUMAAI_API_KEY", base_url_env="WORKBENCH_LUMA_BASE_URL",
    default_base_url="https://api.lumalabs.ai/dream-machine/v1", client_package="lumaai",
    docs="https://docs.lumalabs.ai/docs/python-video-generation"))

RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9", "9:21")
HEIGHT = {"540p": 540, "720p": 720, "1080p": 1080}
REFUSAL_WORDS = ("moderation", "content policy", "not allowed", "safety")


@dataclass(frozen=True)
class LumaModel:
    """One Luma model as data."""

    name: str
    remote_model: str
    task: str
    description: str
    defaults: dict[str, Any]
    durations: tuple[int, ...] = (5, 9)
    fps: float = 24.0


_I2V = {"duration": 5.0, "resolution": "720p", "aspect_ratio": "auto", "image_url": ""}
MODELS: tuple[LumaModel, ...] = (
    LumaModel("luma-ray-2-i2v", "ray-2", "image-to-video",
              "Luma Ray 2 image-to-video (hosted; the first frame by public URL: params.image_url)", _I2V),
    LumaModel("luma-ray-flash-2-i2v", "ray-flash-2", "image-to-video",
              "Luma Ray 2 Flash image-to-video (hosted; the first frame by public URL: params.image_url)", _I2V),
    LumaModel("luma-ray-2-t2v", "ray-2", "text-to-video", "Luma Ray 2 text-to-video (hosted)",
              {"duration": 5.0, "resolution": "720p", "aspect_ratio": "16:9"}),
)


class LumaGenerator(FixedDurations, HostedGenerator):
    """A Luma model; `spec` (a LumaModel row) says which."""

    provider = "luma"
    spec: LumaModel

    @classmethod
    def check_request(cls, request: Any, params: dict[str, Any] | None = None, strict: bool = True) -> None:
        super().check_request(request, params, strict)
        p = cls.request_params(request, params)
        if cls.spec.task == "image-to-video":
            url = str(p.get("image_url") or "")
            if not url.startswith("https://"):
                raise GenerationError(f"model '{cls.name}': Luma takes the first frame by URL only; set "
                                      "params.image_url to a public https URL of the case's image")
        a = str(p.get("aspect_ratio", "auto"))
        if a != "auto" and a not in RATIOS:
            raise GenerationError(f"model '{cls.name}': aspect_ratio {a!r}; use auto or one of {', '.join(RATIOS)}")
        if str(p.get("resolution")) not in HEIGHT:
            raise GenerationError(f"model '{cls.name}': resolution {p.get('resolution')!r}; use 540p, 720p or 1080p")

    def check_inputs(self, request: GenerationRequest) -> None:
        type(self).check_request(request, self.params, strict=False)

    def asked(self, request: GenerationRequest) -> dict[str, float]:
        h = HEIGHT[str(self.params["resolution"])]
        x, y = (int(v) for v in self.aspect_for(request, RATIOS).split(":"))
        size = {"width": round(h * x / y), "height": h} if x >= y else {"width": h, "height": round(h * y / x)}
        return {"seconds": float(self.duration_for(self.params)), **size}

    # ---- the provider hooks --------------------------------------------------------------------------
    def make_client(self, key: str, base_url: str) -> Any:
        import lumaai

        return lumaai.LumaAI(auth_token=key, base_url=base_url, max_retries=0, timeout=120.0)

    def submit(self, client: Any, request: GenerationRequest, idempotency_key: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.spec.remote_model, "prompt": request.prompt,
                                  "aspect_ratio": self.aspect_for(request, RATIOS),
                                  "duration": f"{self.duration_for(self.params)}s",
                                  "resolution": self.params["resolution"]}
        if self.spec.task == "image-to-video":
            kwargs["keyframes"] = {"frame0": {"type": "image", "url": self.params["image_url"]}}
        gen = client.generations.create(**kwargs)
        if not gen.id:
            raise GenerationError("Luma returned a generation without an id")
        return {"id": gen.id}

    def poll(self, client: Any, handle: dict[str, Any]) -> Poll:
        gen = client.generations.get(handle["id"])
        if gen.state == "queued":
            return Poll("queued")
        if gen.state == "dreaming":
            return Poll("running")
        if gen.state == "failed":
            reason = gen.failure_reason or "no reason given"
            return Poll("refused" if any(w in reason.lower() for w in REFUSAL_WORDS) else "failed", error=reason)
        url = gen.assets.video if gen.assets is not None else None
        return Poll("done", progress=1.0, outputs=[url] if url else [])

    def fault(self, exc: BaseException) -> Fault:
        try:
            import lumaai
        except ImportError:  # pragma: no cover
            return Fault("fatal", "the Luma client is not installed: pip install lumaai")
        return sdk_fault(lumaai, exc, ("detail", "error"), REFUSAL_WORDS) or super().fault(exc)


def _make(spec: LumaModel) -> type[LumaGenerator]:
    i2v = spec.task == "image-to-video"
    takes = frozenset({"image", "prompt"}) if i2v else frozenset({"prompt"})
    return make_generator(LumaGenerator, "Luma", spec, __name__, remote_model=spec.remote_model, task=spec.task,
                          requires=takes, accepts=takes, needs_params=("image_url",) if i2v else ())


GENERATORS = {spec.name: _make(spec) for spec in MODELS}
