"""Google's image models (official client `google-genai`): Imagen 4 text-to-image and Gemini 2.5 Flash
Image ("Nano Banana", text-to-image or a reference image edited by the prompt), one table row per model
(Google's model ids are data). A source portrait for image-to-video: chain one into an I2V model with
`image_from:`.

Protocol (what google-genai speaks, and tests/fakes/google_image.py answers). As for Veo, google-genai
3.x runs these on Vertex AI (its `generate_images` raises on the Gemini Developer API), in express mode
(an API key, no project): `x-goog-api-key: <key>`;

- Imagen: `POST {base}/v1beta1/publishers/google/models/<model>:predict` with `{"instances": [{"prompt"}],
  "parameters": {"sampleCount": 1, "aspectRatio", "sampleImageSize", "addWatermark", "seed",
  "personGeneration", "includeRaiReason": true}}` -> `{"predictions": [{"bytesBase64Encoded", "mimeType"} |
  {"raiFilteredReason"}]}`. Vertex refuses a seed on a watermarked image: the seed is sent only with
  `add_watermark: false`.
- Gemini image: `POST .../<model>:generateContent` with `{"contents": [{"role": "user", "parts": [{"inlineData":
  <reference image>}, {"text": prompt}]}], "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
  "seed", "imageConfig": {"aspectRatio"}}}` -> `{"candidates": [{"content": {"parts": [{"text"},
  {"inlineData": {"mimeType", "data"}}]}, "finishReason"}], "promptFeedback": {"blockReason"},
  "usageMetadata", "responseId"}`.

Both answer synchronously: there is no remote job to poll, and the picture is in the answer that was
paid for. So the submit writes the picture at once to `claims/<clip id>.result.<ext>` and the handle
(kept in `claims/<clip id>.remote.json` like every hosted job's) names it: a resumed or re-run job reads
that file and never asks (or pays) again; the file stays after the clip is saved (it is what was paid
for). A kept picture without a handle (killed between the two writes) is used, not asked for again: to
pay for a new picture, delete both files. A safety block (Imagen's `raiFilteredReason`, Gemini's
`blockReason` or an IMAGE_SAFETY / PROHIBITED_CONTENT finish) is recorded as `refused`; an answer with
no picture as `failed`.

Key: GOOGLE_API_KEY (or GEMINI_API_KEY): a Vertex AI API key (express mode), the one Veo uses. Base URL:
WORKBENCH_GOOGLE_IMAGE_BASE_URL (default: the client's own, https://aiplatform.googleapis.com). No
idempotency key: a submit that may have reached Google is not sent again (hosted/base.py).
"""
from __future__ import annotations

import base64
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.models.base import GenerationError, GenerationRequest, ProgressFn
from workbench.models.hosted.base import Fault, HostedGenerator, Poll, ProviderError, encoded_image, make_generator
from workbench.models.hosted.keys import Provider, register_provider
from workbench.models.hosted.veo import genai_fault

PROVIDER = register_provider(Provider(
    name="google-image", title="Google Imagen/Gemini", key_env="GOOGLE_API_KEY", alt_key_envs=("GEMINI_API_KEY",),
    base_url_env="WORKBENCH_GOOGLE_IMAGE_BASE_URL", default_base_url="https://aiplatform.googleapis.com",
    client_package="google-genai",
    docs="https://cloud.google.com/vertex-ai/generative-ai/docs/image/overview",
    notes="Vertex AI express mode (API key): Imagen 4 (`:predict`), Gemini image (`:generateContent`)"))

REFUSAL_WORDS = ("usage guideline", "responsible ai", "safety", "filtered", "prohibited", "policy", "blocked")
# Gemini finish reasons that mean the picture was withheld for policy (not a fault to retry)
BLOCKED_FINISH = frozenset({"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST",
                            "SPII", "RECITATION", "IMAGE_RECITATION"})
IMAGEN_ASPECTS = ("1:1", "3:4", "4:3", "9:16", "16:9")
GEMINI_ASPECTS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
EXT = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}


@dataclass(frozen=True)
class GoogleImageModel:
    """One Google image model as data: our name, Google's model id, which API it speaks."""

    name: str
    remote_model: str
    api: str  # "imagen" (:predict) | "gemini" (:generateContent, takes a reference image)
    description: str
    defaults: dict[str, Any]
    sizes: tuple[str, ...] = ()  # `image_size` values the model takes (Imagen 4 standard / Ultra: 1K, 2K)


_IMAGEN = {"aspect_ratio": "1:1", "add_watermark": True, "person_generation": ""}
MODELS: tuple[GoogleImageModel, ...] = (
    GoogleImageModel("imagen-4", "imagen-4.0-generate-001", "imagen",
                     "Google Imagen 4 text-to-image (hosted; a source picture for image-to-video with image_from)",
                     {**_IMAGEN, "image_size": "1K"}, sizes=("1K", "2K")),
    GoogleImageModel("imagen-4-fast", "imagen-4.0-fast-generate-001", "imagen",
                     "Google Imagen 4 Fast text-to-image (hosted)", dict(_IMAGEN)),
    GoogleImageModel("imagen-4-ultra", "imagen-4.0-ultra-generate-001", "imagen",
                     "Google Imagen 4 Ultra text-to-image (hosted)", {**_IMAGEN, "image_size": "1K"}, sizes=("1K", "2K")),
    GoogleImageModel("gemini-2.5-flash-image", "gemini-2.5-flash-image", "gemini",
                     "Google Gemini 2.5 Flash Image (Nano Banana): text-to-image, or the case's image edited by the "
                     "prompt (hosted)", {"aspect_ratio": "auto"}),
)


class GoogleImageGenerator(HostedGenerator):
    """A Google image model; `spec` (a GoogleImageModel row) says which. Synchronous: see the module doc."""

    provider = "google-image"
    spec: GoogleImageModel
    task = "text-to-image"
    output_kind = "image"
    output_suffix = ".png"

    @classmethod
    def aspects(cls) -> tuple[str, ...]:
        return GEMINI_ASPECTS if cls.spec.api == "gemini" else IMAGEN_ASPECTS

    @classmethod
    def check_request(cls, request: Any, params: dict[str, Any] | None = None, strict: bool = True) -> None:
        super().check_request(request, params, strict)
        p = cls.request_params(request, params)
        a = str(p.get("aspect_ratio", "auto"))
        if a != "auto" and a not in cls.aspects():
            raise GenerationError(f"model '{cls.name}': aspect_ratio {a!r} is not one it makes; use auto or "
                                  f"{', '.join(cls.aspects())}")
        if cls.spec.sizes and str(p.get("image_size")) not in cls.spec.sizes:
            raise GenerationError(f"model '{cls.name}': image_size {p.get('image_size')!r}; "
                                  f"use {' or '.join(cls.spec.sizes)}")

    # ---- the lifecycle: the picture of a synchronous answer is kept beside the remote-job file ----------
    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None):
        remote = request.remote
        folder = getattr(remote, "folder", None)
        self._results = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="workbench-google-"))
        self._clip_id = getattr(remote, "clip_id", None) or "local"
        return super().generate(request, progress)

    def _keep(self, data: bytes, mime: str) -> str:
        """Write the paid-for picture durably before the handle is saved; its file name (in the claims folder)."""
        import os

        self._results.mkdir(parents=True, exist_ok=True)
        name = f"{self._clip_id}.result{EXT.get(mime, '.png')}"
        tmp = self._results / f".{name}.part"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self._results / name)
        return name

    # ---- the provider hooks --------------------------------------------------------------------------
    def make_client(self, key: str, base_url: str) -> Any:
        from google import genai
        from google.genai import types

        http = types.HttpOptions(base_url=base_url, timeout=120_000)  # ms; no retry_options: ours are bounded
        return genai.Client(vertexai=True, api_key=key, http_options=http)

    def submit(self, client: Any, request: GenerationRequest, idempotency_key: str) -> dict[str, Any]:
        kept = sorted(self._results.glob(f"{self._clip_id}.result.*")) if self._clip_id != "local" else []
        if kept:  # paid for, then killed before the handle was saved (or the handle deleted): not asked again
            self._info.setdefault("warnings", []).append(
                f"{self.name}: the picture of an earlier paid answer was kept in claims/{kept[0].name} and is used; "
                f"delete it with the .remote.json file to pay for a new one")
            return {"id": f"{self.spec.api}-{idempotency_key}", "api": self.spec.api, "outcome": "done",
                    "result": kept[0].name, "recovered": True}
        aspect = self.aspect_for(request, self.aspects())
        if self.spec.api == "imagen":
            return self._imagen(client, request, aspect, idempotency_key)
        return self._gemini(client, request, aspect, idempotency_key)

    def _imagen(self, client: Any, request: GenerationRequest, aspect: str, idem: str) -> dict[str, Any]:
        from google.genai import types

        p = self.params
        cfg: dict[str, Any] = {"number_of_images": 1, "aspect_ratio": aspect, "include_rai_reason": True,
                               "add_watermark": bool(p.get("add_watermark", True))}
        if self.spec.sizes:
            cfg["image_size"] = p["image_size"]
        if not cfg["add_watermark"]:
            cfg["seed"] = int(request.seed) % 2147483646 + 1  # Vertex takes 1..2**31-1, and only unwatermarked
        if p.get("person_generation"):
            cfg["person_generation"] = p["person_generation"]
        with warnings.catch_warnings():  # google-genai 3.x marks generate_images deprecated (not before 2027-01)
            warnings.simplefilter("ignore")
            resp = client.models.generate_images(model=self.spec.remote_model, prompt=request.prompt,
                                                 config=types.GenerateImagesConfig(**cfg))
        handle: dict[str, Any] = {"id": f"imagen-{idem}", "api": "imagen"}
        images = list(getattr(resp, "generated_images", None) or [])
        for g in images:
            img = getattr(g, "image", None)
            data = getattr(img, "image_bytes", None)
            if data:
                handle.update(outcome="done", result=self._keep(_raw(data), img.mime_type or "image/png"))
                return handle
        reasons = [str(g.rai_filtered_reason) for g in images if getattr(g, "rai_filtered_reason", None)]
        if reasons:
            return handle | {"outcome": "refused", "error": "; ".join(reasons)}
        return handle | {"outcome": "failed", "error": "Imagen answered with no image (filtered, or nothing made); "
                                                         "try another prompt"}

    def _gemini(self, client: Any, request: GenerationRequest, aspect: str, idem: str) -> dict[str, Any]:
        from google.genai import types

        parts = []
        if request.image is not None:  # a reference picture: the prompt says what to make of it
            data, mime = encoded_image(request)
            parts.append(types.Part.from_bytes(data=data, mime_type=mime))
        parts.append(types.Part.from_text(text=request.prompt))
        config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"], candidate_count=1,
                                             seed=int(request.seed) % (2 ** 31),
                                             image_config=types.ImageConfig(aspect_ratio=aspect))
        resp = client.models.generate_content(model=self.spec.remote_model,
                                              contents=[types.Content(role="user", parts=parts)], config=config)
        handle: dict[str, Any] = {"id": getattr(resp, "response_id", None) or f"gemini-{idem}", "api": "gemini"}
        usage = getattr(resp, "usage_metadata", None)
        if usage is not None and getattr(usage, "candidates_token_count", None) is not None:
            handle["output_tokens"] = int(usage.candidates_token_count)
        feedback = getattr(resp, "prompt_feedback", None)
        block = getattr(feedback, "block_reason", None)
        if block:
            why = getattr(feedback, "block_reason_message", None) or _enum(block)
            return handle | {"outcome": "refused", "error": f"the prompt was blocked ({why})"}
        texts: list[str] = []
        finish = None
        for cand in list(getattr(resp, "candidates", None) or [])[:1]:
            finish = _enum(getattr(cand, "finish_reason", None))
            for part in list(getattr(getattr(cand, "content", None), "parts", None) or []):
                inline = getattr(part, "inline_data", None)
                if inline is not None and inline.data:
                    handle.update(outcome="done", result=self._keep(_raw(inline.data), inline.mime_type or "image/png"))
                    return handle
                if getattr(part, "text", None):
                    texts.append(part.text.strip())
        if finish in BLOCKED_FINISH:
            return handle | {"outcome": "refused", "error": f"no image: finish reason {finish}"}
        said = f"; it said: {' '.join(texts)[:200]}" if texts else ""
        return handle | {"outcome": "failed", "error": f"Gemini answered with no image (finish reason {finish or 'none'})"
                                                        f"{said}; try another prompt"}

    def poll(self, client: Any, handle: dict[str, Any]) -> Poll:
        outcome = handle.get("outcome")
        if outcome in ("refused", "failed"):
            return Poll(outcome, error=handle.get("error"))
        path = self._results / str(handle.get("result"))
        if not path.is_file():
            raise ProviderError(f"the picture {self._title} returned for job {handle['id']} is no longer in "
                                f"{path.parent.name}/{path.name}; delete claims/<clip id>.remote.json to pay for a new one")
        return Poll("done", progress=1.0, outputs=[f"result:{path.name}"])

    def fetch(self, client: Any, handle: dict[str, Any], url: str, dest: Path) -> None:
        dest.write_bytes((self._results / url.split(":", 1)[1]).read_bytes())

    def fault(self, exc: BaseException) -> Fault:
        return genai_fault(exc, REFUSAL_WORDS) or super().fault(exc)


def _raw(data: Any) -> bytes:
    return data if isinstance(data, bytes) else base64.b64decode(data)


def _enum(v: Any) -> str | None:
    return None if v is None else str(getattr(v, "value", v))


def _make(spec: GoogleImageModel) -> type[GoogleImageGenerator]:
    gemini = spec.api == "gemini"
    return make_generator(GoogleImageGenerator, "GoogleImage", spec, __name__, remote_model=spec.remote_model,
                          requires=frozenset({"prompt"}),
                          accepts=frozenset({"prompt", "image"}) if gemini else frozenset({"prompt"}))


GENERATORS = {spec.name: _make(spec) for spec in MODELS}
