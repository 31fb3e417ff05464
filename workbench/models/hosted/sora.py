"""OpenAI Sora (official client `openai`, the Videos API): image-to-video and text-to-video, one
table row per model (OpenAI's model ids are data).

Protocol (what openai speaks, and tests/fakes/sora.py answers): `Authorization: Bearer <key>`;
`POST {base}/videos` (multipart: prompt, model, seconds, size, input_reference = the first frame,
which must have the output's exact size) -> a Video `{id, object: "video", status: queued, progress,
seconds, size, model, created_at}`; `GET /videos/<id>` -> the same with status in_progress |
completed | failed and `error: {code, message}`; `GET /videos/<id>/content` -> the mp4. A refusal is
a 400 whose error code names moderation (`moderation_blocked`, ...) at submit, or a failed video
with such a code. Each submit carries an `Idempotency-Key` header.

NOTE: openai 2.x marks the Sora endpoints deprecated ("The Sora API is scheduled to permanently shut
down on September 24, 2026"); the provider stays for accounts and gateways that still serve it.

Key: OPENAI_API_KEY. Base URL: WORKBENCH_OPENAI_BASE_URL (default https://api.openai.com/v1).
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.models.base import GenerationError, GenerationRequest
from workbench.models.hosted.base import Fault, FixedDurations, HostedGenerator, Poll, make_generator, status_fault
from workbench.models.hosted.keys import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="openai", title="OpenAI Sora", key_env="OPENAI_API_KEY", base_url_env="WORKBENCH_OPENAI_BASE_URL",
    default_base_url="https://api.openai.com/v1", client_package="openai",
    docs="https://platform.openai.com/docs/guides/video-generation",
    notes="the client marks the Sora API as shutting down on 2026-09-24"))

REFUSAL_CODES = {"moderation_blocked", "content_policy_violation", "content_filter", "safety_violation",
                 "input_moderation", "output_moderation"}
SIZES = {"sora-2": ("1280x720", "720x1280"), "sora-2-pro": ("1280x720", "720x1280", "1792x1024", "1024x1792")}


@dataclass(frozen=True)
class SoraModel:
    """One Sora model as data."""

    name: str
    remote_model: str
    task: str
    description: str
    defaults: dict[str, Any]
    durations: tuple[int, ...] = (4, 8, 12)
    fps: float = 30.0


MODELS: tuple[SoraModel, ...] = (
    SoraModel("sora-2-i2v", "sora-2", "image-to-video",
              "OpenAI Sora 2 image-to-video with its own sound, 720p (hosted)", {"duration": 4.0, "size": "auto"}),
    SoraModel("sora-2-pro-i2v", "sora-2-pro", "image-to-video",
              "OpenAI Sora 2 Pro image-to-video, 720p or 1792x1024 (hosted)", {"duration": 4.0, "size": "auto"}),
    SoraModel("sora-2-t2v", "sora-2", "text-to-video",
              "OpenAI Sora 2 text-to-video with its own sound, 720p (hosted)", {"duration": 4.0, "size": "1280x720"}),
)


class SoraGenerator(FixedDurations, HostedGenerator):
    """A Sora model; `spec` (a SoraModel row) says which."""

    provider = "openai"
    idempotent_submit = True  # an Idempotency-Key on every submit: a retried one is one job
    spec: SoraModel

    @classmethod
    def price_variant(cls, params: dict[str, Any]) -> str:
        """Sora 2 Pro above 720p is its own rule (`<name>@hd` in prices.yaml)."""
        return "@hd" if str(params.get("size", "auto")) in ("1792x1024", "1024x1792") else ""

    @classmethod
    def check_request(cls, request: Any, params: dict[str, Any] | None = None, strict: bool = True) -> None:
        super().check_request(request, params, strict)
        p = cls.request_params(request, params)
        size = str(p.get("size", "auto"))
        allowed = SIZES.get(cls.spec.remote_model, SIZES["sora-2"])
        if size != "auto" and size not in allowed:
            raise GenerationError(f"model '{cls.name}': size {size!r} is not one {cls.spec.remote_model} makes; "
                                  f"use auto or one of {', '.join(allowed)}")

    def _size(self, request: GenerationRequest) -> str:
        size = str(self.params.get("size", "auto"))
        if size != "auto":
            return size
        img = request.image
        portrait = img is not None and img.shape[0] > img.shape[1]
        return "720x1280" if portrait else "1280x720"

    def asked(self, request: GenerationRequest) -> dict[str, float]:
        w, h = (int(v) for v in self._size(request).split("x"))
        return {"seconds": float(self.duration_for(self.params)), "width": w, "height": h}

    # ---- the provider hooks --------------------------------------------------------------------------
    def make_client(self, key: str, base_url: str) -> Any:
        import openai

        return openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=120.0)  # ours are bounded

    def _reference(self, request: GenerationRequest, size: str) -> tuple[str, bytes, str]:
        """The first frame at the output's exact size (Sora refuses any other), as a PNG upload."""
        from PIL import Image

        from workbench.media import fit_image

        w, h = (int(v) for v in size.split("x"))
        buf = io.BytesIO()
        Image.fromarray(fit_image(request.image, w, h)).save(buf, format="PNG")
        return ("reference.png", buf.getvalue(), "image/png")

    def submit(self, client: Any, request: GenerationRequest, idempotency_key: str) -> dict[str, Any]:
        size = self._size(request)
        kwargs: dict[str, Any] = {"model": self.spec.remote_model, "prompt": request.prompt,
                                  "seconds": str(self.duration_for(self.params)), "size": size,
                                  "extra_headers": {"Idempotency-Key": idempotency_key}}
        if self.spec.task == "image-to-video":
            kwargs["input_reference"] = self._reference(request, size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            video = client.videos.create(**kwargs)
        return {"id": video.id}

    def poll(self, client: Any, handle: dict[str, Any]) -> Poll:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            video = client.videos.retrieve(handle["id"])
        if video.status == "queued":
            return Poll("queued", progress=(video.progress or 0) / 100)
        if video.status == "in_progress":
            return Poll("running", progress=(video.progress or 0) / 100)
        if video.status == "failed":
            err = video.error
            code = getattr(err, "code", "") or ""
            msg = f"{code}: {getattr(err, 'message', '') or 'no reason given'}" if code else \
                (getattr(err, "message", None) or "no reason given")
            return Poll("refused" if code in REFUSAL_CODES else "failed", error=msg)
        meta: dict[str, Any] = {}
        try:
            meta["seconds"] = float(video.seconds)
        except (TypeError, ValueError):
            pass
        if isinstance(video.size, str) and "x" in video.size:
            w, h = video.size.split("x")
            meta.update(width=int(w), height=int(h))
        return Poll("done", progress=1.0, outputs=[f"openai-video:{video.id}"], meta=meta)

    def fetch(self, client: Any, handle: dict[str, Any], url: str, dest: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            content = client.videos.download_content(handle["id"], variant="video")
        content.write_to_file(dest)

    def fault(self, exc: BaseException) -> Fault:
        try:
            import openai
        except ImportError:  # pragma: no cover
            return Fault("fatal", "the OpenAI client is not installed: pip install openai")
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            err = (exc.body.get("error", exc.body) if isinstance(exc.body, dict) else {}) or {}
            ecode = str(err.get("code") or "") if isinstance(err, dict) else ""
            message = (err.get("message") if isinstance(err, dict) else None) or exc.message
            if ecode in REFUSAL_CODES:
                return Fault("refused", f"{ecode}: {message}")
            return status_fault(code, f"HTTP {code}{' ' + ecode if ecode else ''}: {message}", exc.response.headers,
                                transient=frozenset({408, 409, 429}))
        if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError)):
            return Fault("transient", type(exc).__name__)
        return super().fault(exc)


def _make(spec: SoraModel) -> type[SoraGenerator]:
    takes = frozenset({"image", "prompt"}) if spec.task == "image-to-video" else frozenset({"prompt"})
    return make_generator(SoraGenerator, "Sora", spec, __name__, remote_model=spec.remote_model, task=spec.task,
                          requires=takes, accepts=takes)


GENERATORS = {spec.name: _make(spec) for spec in MODELS}
