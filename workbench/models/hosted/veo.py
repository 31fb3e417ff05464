"""Google Veo (official client `google-genai`): image-to-video and text-to-video as a long-running
operation, one table row per model (Google's model ids are data).

Protocol (what google-genai speaks, and tests/fakes/veo.py answers). google-genai 3.x runs Veo on
Vertex AI only (its Gemini Developer API path raises), so the default backend is Vertex AI in express
mode (an API key, no project): `x-goog-api-key: <key>`;
`POST {base}/v1beta1/publishers/google/models/<model>:predictLongRunning` with
`{"instances": [{"prompt", "image": {"bytesBase64Encoded", "mimeType"}}], "parameters":
{"durationSeconds", "aspectRatio", "resolution", "generateAudio", "negativePrompt", "seed",
"sampleCount"}}` -> `{"name": "<model path>/operations/<id>"}`; then
`POST .../<model>:fetchPredictOperation` with `{"operationName": name}` -> `{"name", "done",
"error": {code, message}, "response": {"videos": [{"bytesBase64Encoded", "mimeType"}],
"raiMediaFilteredCount", "raiMediaFilteredReasons"}}`. With no `storageUri` the video comes back
inline (base64) in the finished operation; it is fetched again on download, so nothing big is stored
in the remote-job file. A refusal is a finished operation whose videos were filtered
(`raiMediaFilteredCount` > 0, the reasons say which usage guideline) or a 400 naming the guidelines.

With `WORKBENCH_VEO_BACKEND=gemini` (google-genai < 3 only) the Gemini Developer API is used instead:
`POST /v1beta/models/<model>:predictLongRunning`, `GET /v1beta/<operation name>`, and the video is a
file URI downloaded through `client.files.download`.

Key: GOOGLE_API_KEY (or GEMINI_API_KEY): a Vertex AI API key (express mode) for the default backend,
an AI Studio key for the gemini one. Base URL: WORKBENCH_VEO_BASE_URL (default: the client's own,
https://aiplatform.googleapis.com). Veo takes no idempotency key: the stored operation name (and the
clip's lock) keep a clip to one submission.
"""
from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.models.base import GenerationError, GenerationRequest
from workbench.models.hosted.base import (Fault, FixedDurations, HostedGenerator, Poll, encoded_image,
                                          make_generator, status_fault)
from workbench.models.hosted.keys import Provider, register_provider

PROVIDER = register_provider(Provider(
    name="google-veo", title="Google Veo", key_env="GOOGLE_API_KEY", alt_key_envs=("GEMINI_API_KEY",),
    base_url_env="WORKBENCH_VEO_BASE_URL", default_base_url="https://aiplatform.googleapis.com",
    client_package="google-genai",
    docs="https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/veo-video-generation",
    notes="Vertex AI express mode (API key); WORKBENCH_VEO_BACKEND=gemini for the Gemini API (google-genai<3)"))

BACKEND_ENV = "WORKBENCH_VEO_BACKEND"
# words in a refusal: Vertex's "violates ... usage guidelines", RAI filtering, safety
REFUSAL_WORDS = ("usage guideline", "responsible ai", "safety", "filtered", "prohibited", "policy")
RESOLUTION_HEIGHT = {"720p": 720, "1080p": 1080}


@dataclass(frozen=True)
class VeoModel:
    """One Veo model as data: our name, Google's model id, the task, what the model takes."""

    name: str
    remote_model: str
    task: str  # image-to-video | text-to-video
    description: str
    durations: tuple[int, ...]  # seconds Veo accepts
    defaults: dict[str, Any]
    resolution: bool = True  # takes `resolution` (Veo 3)
    audio: bool = True  # takes `generateAudio` (Veo 3)
    fps: float = 24.0


_V3 = {"duration": 8.0, "aspect_ratio": "auto", "resolution": "720p", "generate_audio": False,
       "person_generation": ""}
_V2 = {"duration": 5.0, "aspect_ratio": "auto", "person_generation": ""}
MODELS: tuple[VeoModel, ...] = (
    VeoModel("veo-3-i2v", "veo-3.0-generate-001", "image-to-video",
             "Google Veo 3 image-to-video (hosted; generate_audio adds Veo's own sound at a higher price)",
             (4, 6, 8), _V3),
    VeoModel("veo-3-fast-i2v", "veo-3.0-fast-generate-001", "image-to-video",
             "Google Veo 3 Fast image-to-video (hosted)", (4, 6, 8), _V3),
    VeoModel("veo-2-i2v", "veo-2.0-generate-001", "image-to-video",
             "Google Veo 2 image-to-video, 720p, silent (hosted)", (5, 6, 7, 8), _V2, resolution=False, audio=False),
    VeoModel("veo-3-t2v", "veo-3.0-generate-001", "text-to-video",
             "Google Veo 3 text-to-video (hosted)", (4, 6, 8), _V3),
)


def backend() -> str:
    """"vertex" (default; what google-genai 3.x supports) or "gemini" (Gemini Developer API)."""
    b = os.environ.get(BACKEND_ENV, "vertex").strip().lower() or "vertex"
    if b not in ("vertex", "gemini"):
        raise GenerationError(f"{BACKEND_ENV}={b!r}: use vertex or gemini")
    return b


class VeoGenerator(FixedDurations, HostedGenerator):
    """A Veo model; `spec` (a VeoModel row) says which."""

    provider = "google-veo"
    spec: VeoModel

    default_longest = longer_on_tie = True  # FixedDurations: Veo's default is its longest clip

    @classmethod
    def price_variant(cls, params: dict[str, Any]) -> str:
        """Veo 3 with sound is its own rule (`<name>+audio` in prices.yaml)."""
        return "+audio" if params.get("generate_audio") else ""

    @classmethod
    def check_request(cls, request: Any, params: dict[str, Any] | None = None, strict: bool = True) -> None:
        super().check_request(request, params, strict)
        p = cls.request_params(request, params)
        a = str(p.get("aspect_ratio", "auto"))
        if a not in ("auto", "16:9", "9:16"):
            raise GenerationError(f"model '{cls.name}': aspect_ratio {a!r} is not one Veo makes; use auto, 16:9 or 9:16")
        if cls.spec.resolution and str(p.get("resolution")) not in RESOLUTION_HEIGHT:
            raise GenerationError(f"model '{cls.name}': resolution {p.get('resolution')!r}; use 720p or 1080p")

    def asked(self, request: GenerationRequest) -> dict[str, float]:
        out: dict[str, float] = {"seconds": float(self.duration_for(self.params)), "fps": self.spec.fps}
        h = RESOLUTION_HEIGHT.get(str(self.params.get("resolution", "720p")), 720)
        x, y = (float(v) for v in self.aspect_for(request, ("16:9", "9:16")).split(":"))
        out.update(width=round(h * x / y) if x >= y else h, height=h if x >= y else round(h * y / x))
        return out

    # ---- the provider hooks --------------------------------------------------------------------------
    def make_client(self, key: str, base_url: str) -> Any:
        from google import genai
        from google.genai import types

        http = types.HttpOptions(base_url=base_url, timeout=120_000)  # ms; no retry_options: ours are bounded
        if backend() == "gemini":
            return genai.Client(api_key=key, http_options=http)
        return genai.Client(vertexai=True, api_key=key, http_options=http)

    def submit(self, client: Any, request: GenerationRequest, idempotency_key: str) -> dict[str, Any]:
        from google.genai import types

        spec = self.spec
        cfg: dict[str, Any] = {"number_of_videos": 1, "duration_seconds": self.duration_for(self.params),
                               "aspect_ratio": self.aspect_for(request, ("16:9", "9:16")),
                               "seed": int(request.seed) % (2 ** 32)}
        if spec.resolution:
            cfg["resolution"] = self.params["resolution"]
        if spec.audio:
            cfg["generate_audio"] = bool(self.params.get("generate_audio"))
        if request.negative_prompt:
            cfg["negative_prompt"] = request.negative_prompt
        if self.params.get("person_generation"):
            cfg["person_generation"] = self.params["person_generation"]
        image = None
        if spec.task == "image-to-video":
            data, mime = encoded_image(request)
            image = types.Image(image_bytes=data, mime_type=mime)
        source = types.GenerateVideosSource(prompt=request.prompt or None, image=image)
        op = client.models.generate_videos(model=spec.remote_model, source=source,
                                           config=types.GenerateVideosConfig(**cfg))
        if not op.name:
            raise GenerationError("Veo returned an operation without a name")
        return {"id": op.name, "backend": backend()}

    def _operation(self, client: Any, handle: dict[str, Any]) -> Any:
        from google.genai import types

        return client.operations.get(types.GenerateVideosOperation(name=handle["id"]))

    def poll(self, client: Any, handle: dict[str, Any]) -> Poll:
        op = self._operation(client, handle)
        if not op.done:
            return Poll("running")
        if op.error:
            msg = str(op.error.get("message") or op.error) if isinstance(op.error, dict) else str(op.error)
            return Poll("refused" if _is_refusal(msg) else "failed", error=msg)
        res = op.result or op.response
        videos = list(getattr(res, "generated_videos", None) or [])
        if not videos:
            reasons = list(getattr(res, "rai_media_filtered_reasons", None) or [])
            if getattr(res, "rai_media_filtered_count", None) or reasons:
                return Poll("refused", error="; ".join(reasons) or "the video was filtered by Veo's safety filters")
            return Poll("failed", error="the operation finished without a video")
        video = videos[0].video
        # inline bytes (Vertex without storageUri): fetched again by `fetch`; a URI: downloaded there
        out = video.uri if getattr(video, "uri", None) else f"veo-inline:{handle['id']}#0"
        return Poll("done", progress=1.0, outputs=[out])  # Veo reports no length: the container's is checked

    def fetch(self, client: Any, handle: dict[str, Any], url: str, dest: Path) -> None:
        from google.genai import types

        if url.startswith("veo-inline:"):
            op = self._operation(client, handle)
            res = op.result or op.response
            videos = list(getattr(res, "generated_videos", None) or [])
            data = videos[0].video.video_bytes if videos and videos[0].video else None
            if not data:
                raise GenerationError(f"Veo operation {handle['id']} holds no video bytes any more")
            dest.write_bytes(data if isinstance(data, bytes) else base64.b64decode(data))
            return
        if url.startswith("gs://"):
            raise GenerationError(f"Veo wrote the video to Cloud Storage ({url}); the workbench reads inline "
                                  "results only: do not set a storage URI")
        dest.write_bytes(client.files.download(file=types.Video(uri=url)))

    def fault(self, exc: BaseException) -> Fault:
        known = genai_fault(exc, REFUSAL_WORDS)
        if known is not None:
            return known
        if isinstance(exc, ValueError) and "only supported in" in str(exc):
            return Fault("fatal", "this google-genai runs Veo on Vertex AI only; unset WORKBENCH_VEO_BACKEND "
                                  "(use a Vertex AI API key) or install google-genai<3 for the Gemini API")
        return super().fault(exc)


def genai_fault(exc: BaseException, refusal_words: tuple[str, ...]) -> Fault | None:
    """What a google-genai error means (a 400 naming a policy is a refusal, else by HTTP status); None
    when `exc` is not the client's API error. Veo and the Google image models share it."""
    try:
        from google.genai import errors
    except ImportError:  # pragma: no cover
        return Fault("fatal", "the Google client is not installed: pip install google-genai")
    if not isinstance(exc, errors.APIError):
        return None
    code = int(exc.code or 0)
    msg = f"HTTP {code} {exc.status or ''}: {exc.message or ''}".strip()
    if code == 400 and _is_refusal(exc.message or "", refusal_words):
        return Fault("refused", exc.message or msg)
    return status_fault(code, msg, getattr(exc.response, "headers", None))


def _is_refusal(message: str, words: tuple[str, ...] = REFUSAL_WORDS) -> bool:
    m = message.lower()
    return any(w in m for w in words)


def _make(spec: VeoModel) -> type[VeoGenerator]:
    i2v = spec.task == "image-to-video"
    return make_generator(VeoGenerator, "Veo", spec, __name__, remote_model=spec.remote_model, task=spec.task,
                          requires=frozenset({"image"}) if i2v else frozenset({"prompt"}),
                          accepts=frozenset({"image", "prompt", "negative_prompt"}) if i2v
                          else frozenset({"prompt", "negative_prompt"}))


GENERATORS = {spec.name: _make(spec) for spec in MODELS}
