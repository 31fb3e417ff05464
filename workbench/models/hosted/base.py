"""The hosted-generator contract: a model that runs on a provider's servers, behind `Generator`.

A hosted model is a registered `Generator` like any other (same Suite, Runner, Studio, report, W&B).
`HostedGenerator.generate` does the provider-independent work; a provider file implements five hooks.

What a provider file implements (see hedra.py, fal.py, replicate.py)::

    register_provider(Provider(name="acme", title="Acme", key_env="ACME_API_KEY",
                               base_url_env="WORKBENCH_ACME_BASE_URL", default_base_url="https://api.acme.ai",
                               client_package="acme"))

    class AcmeModel(HostedGenerator):          # one class (or a table of rows -> classes) per model
        provider = "acme"                      # key into keys.PROVIDERS
        remote_model = "acme/video-1"          # the provider's own model id (data, not code)
        name = "acme-video-1"; task = "image-to-video"; requires = frozenset({"image"})
        defaults = {"duration": 5.0, "resolution": "720p"}   # go into the clip id: they shape the output

        def make_client(self, key, base_url):  # the OFFICIAL client, pointed at base_url, its own
            return acme.Client(api_key=key, base_url=base_url, max_retries=0)  # retries off (ours are bounded)
        def submit(self, client, request, idempotency_key) -> dict:
            job = client.jobs.create(..., idempotency_key=idempotency_key)
            return {"id": job.id, ...}          # JSON-able: all a later process needs to poll/download
        def poll(self, client, handle) -> Poll:  # one status call; never waits
            return Poll("running", progress=0.4) | Poll("done", outputs=[url], charged=..., meta={...})
                   | Poll("failed", error=...) | Poll("refused", error=reason)
        def fault(self, exc) -> Fault:          # classify a client exception (super() handles httpx)
            return Fault("transient" | "refused" | "fatal", message, retry_after)
        # optional: fetch(client, handle, url, dest) (default: plain GET, no key sent), output_seconds(),
        #           asked(request) -> {"width", "height", "fps", "seconds"} to warn on mismatches

What the base does, in order: refuse without the key (one line naming the variable); under the
clip's lock, load the stored remote job (`RemoteJob`, claims/<clip id>.remote.json) and, when none is
stored or the stored one failed, submit once (idempotency key from the clip id and attempt) and save
the handle *before* waiting; poll until done, failed, refused or `timeout_s` (a timed-out job keeps
its handle: the next run polls it again); download to claims/<clip id>.download.<ext>; verify it
(decodable by PyAV, not shorter than the provider says); return the clip. 429, 5xx and connection
faults are retried with exponential backoff and jitter (`backoff_s` doubling, capped at
`backoff_cap_s`, at most `retries` times); a refusal is never retried. Every message that leaves here
is scrubbed of keys. `request.remote.info` collects the record's `remote`, `cost` and `warnings`.

Run options (suite `options:`; they do not change the clip id, so raising `timeout_s` resumes the same
remote job): timeout_s, poll_s, retries, backoff_s, backoff_cap_s.
"""
from __future__ import annotations

import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, TypeVar

from workbench.media import Clip, MediaError
from workbench.models.base import GenerationError, GenerationRequest, Generator, ProgressFn, register
from workbench.models.hosted.keys import Provider, get_provider, scrub
from workbench.models.hosted.pricing import PriceRule, cost_record, price_rule
from workbench.retry import (_NOT_SENT, TRANSIENT_STATUS, Fault, RetryPolicy, _httpx_kind, _retry_after,  # noqa: F401
                             sdk_fault, status_fault, transport_fault)  # (moved to the foundation; re-exported)
from workbench.store import RemoteJob

T = TypeVar("T")

RUN_OPTIONS: dict[str, float] = {"timeout_s": 1800.0, "poll_s": 5.0, "retries": 4.0, "backoff_s": 1.0,
                                 "backoff_cap_s": 30.0}


# --------------------------------------------------------------------------------------------------
# errors (error_type is what the record's `error_type` shows)
# --------------------------------------------------------------------------------------------------
class ProviderError(GenerationError):
    """A provider call failed for good (after retries); one scrubbed line."""

    error_type = "provider"


class Refused(ProviderError):
    """The provider refused the request (content policy, moderation). Recorded, never retried."""

    error_type = "refused"


class RemoteTimeout(ProviderError):
    """The remote job did not finish within `timeout_s`; its id is kept, the next run polls it."""

    error_type = "timeout"


class KeyMissing(GenerationError):
    """The provider's key is not in the environment; the message names the variable."""

    error_type = "key_missing"


# --------------------------------------------------------------------------------------------------
# what provider hooks return
# --------------------------------------------------------------------------------------------------
@dataclass
class Poll:
    """One look at a remote job."""

    state: Literal["queued", "running", "done", "failed", "refused"]
    progress: float | None = None  # 0..1 when the provider says
    outputs: list[str] = field(default_factory=list)  # download URLs (done)
    charged: float | None = None  # what the provider says it charged
    currency: str | None = None
    error: str | None = None  # failed / refused: the provider's reason
    meta: dict[str, Any] = field(default_factory=dict)  # width, height, fps, seconds the provider reports


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------------------
class HostedGenerator(Generator):
    """A model on a provider's servers. Subclasses set `provider`, `remote_model` and the Generator
    class attributes, and implement make_client / submit / poll (fault, fetch optional)."""

    provider: ClassVar[str]
    remote_model: ClassVar[str]
    output_kind: ClassVar[str] = "video"  # "video" | "image"
    output_suffix: ClassVar[str] = ".mp4"
    # the submit carries an idempotency key the provider honours (Hedra, Sora): sending it again after a
    # dropped connection cannot start a second job, so such a submit is retried like any transient fault
    idempotent_submit: ClassVar[bool] = False
    weights = None
    # run options: how to wait, not what to make; left out of the clip id (experiment.py)
    volatile_options: ClassVar[frozenset[str]] = frozenset(RUN_OPTIONS)
    length_tolerance_s: ClassVar[float] = 0.5  # a download this much shorter than reported is truncated

    # ---- class-level facts (registry, models --json, dry-run) ---------------------------------------
    @classmethod
    def provider_info(cls) -> Provider:
        return get_provider(cls.provider)

    @classmethod
    def weights_available(cls) -> bool:
        """A hosted model is usable here when its provider's key is set."""
        return cls.provider_info().key_present()

    @classmethod
    def price_variant(cls, params: dict[str, Any]) -> str:
        """The suffix of a priced variant these params ask for (`<name><suffix>` in prices.yaml, e.g. Veo's
        `+audio`); "" for the model's own rule."""
        return ""

    @classmethod
    def price(cls, params: dict[str, Any] | None = None) -> PriceRule | None:
        """The price rule for these params: the variant's rule when prices.yaml has one, else the model's."""
        variant = cls.price_variant(params) if params else ""
        return (price_rule(cls.name + variant) if variant else None) or price_rule(cls.name)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        p = cls.provider_info()
        rule = cls.price()
        return {**super().describe(), "hosted": True, "provider": p.name, "provider_title": p.title,
                "remote_model": cls.remote_model, "key_env": p.key_env, "key_present": p.key_present(),
                "price": rule.as_dict() if rule else None,
                "estimate_default": cls.estimate_cost(dict(cls.defaults), audio_seconds=None)[0]}

    @classmethod
    def resolve_options(cls, options: dict[str, Any] | None) -> dict[str, Any]:
        out = dict(RUN_OPTIONS)
        for k, v in (options or {}).items():
            if k not in RUN_OPTIONS:
                raise GenerationError(f"model '{cls.name}': unknown option {k}; known: {', '.join(sorted(RUN_OPTIONS))}")
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or v != v:
                raise GenerationError(f"model '{cls.name}': option {k} must be a number >= 0, got {v!r}")
            out[k] = float(v)
        return out

    @classmethod
    def request_params(cls, request: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """The model's defaults with the request's overrides (`params`, else `request.params`)."""
        return {**cls.defaults, **(params if params is not None else getattr(request, "params", {}) or {})}

    @classmethod
    def output_seconds(cls, params: dict[str, Any], audio_seconds: float | None) -> float | None:
        """Seconds of output a request makes (for the estimate): `num_frames` / `frames_per_second` when the
        model takes those, else `duration` when it has one, else the driving audio's length."""
        if params.get("num_frames") and params.get("frames_per_second"):
            return float(params["num_frames"]) / float(params["frames_per_second"])
        if "duration" in params and isinstance(params["duration"], (int, float)):
            return float(params["duration"])
        return audio_seconds

    @classmethod
    def estimate_cost(cls, params: dict[str, Any], audio_seconds: float | None = None,
                      characters: int | None = None) -> tuple[float | None, PriceRule | None]:
        """(estimate in the rule's currency, rule) for one output; (None, rule) when unknown."""
        rule = cls.price(params)
        if rule is None:
            return None, None
        return rule.estimate(cls.output_seconds(params, audio_seconds), characters), rule

    # ---- provider hooks ----------------------------------------------------------------------------
    def make_client(self, key: str, base_url: str) -> Any:
        raise NotImplementedError

    def submit(self, client: Any, request: GenerationRequest, idempotency_key: str) -> dict[str, Any]:
        raise NotImplementedError

    def poll(self, client: Any, handle: dict[str, Any]) -> Poll:
        raise NotImplementedError

    def fault(self, exc: BaseException) -> Fault:
        """Default reading of an exception: transport faults of httpx (or a client's vendored copy of it,
        such as google-genai's `httpx2`) and 408/429/5xx are transient."""
        transport = transport_fault(exc)
        if transport is not None:
            return transport
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if _httpx_kind(exc, ("HTTPStatusError",)) and isinstance(status, int):
            return status_fault(status, f"HTTP {status}", exc.response.headers)
        return Fault("fatal", f"{type(exc).__name__}: {exc}")

    def aspect_for(self, request: GenerationRequest, allowed: tuple[str, ...], param: str = "aspect_ratio") -> str:
        """The aspect ratio to ask for: the `param` the suite set, or with `auto` the allowed one nearest the
        case's image (the first allowed without one)."""
        a = str(self.params.get(param, "auto"))
        if a != "auto":
            return a
        img = request.image
        return closest_aspect((img.shape[1], img.shape[0]) if img is not None else None, allowed)

    def fetch(self, client: Any, handle: dict[str, Any], url: str, dest: Path) -> None:
        """Download `url` to `dest` (no key is sent: output URLs are presigned or public)."""
        download(url, dest)

    def asked(self, request: GenerationRequest) -> dict[str, float]:
        """What the request asked for (any of width, height, fps, seconds), to warn on mismatches."""
        seconds = self.output_seconds(self.params, request.audio.duration if request.audio is not None else None)
        out = {"seconds": seconds} if seconds else {}
        if self.params.get("frames_per_second"):
            out["fps"] = float(self.params["frames_per_second"])
        return out

    # ---- the generic lifecycle ---------------------------------------------------------------------
    def generate(self, request: GenerationRequest, progress: ProgressFn | None = None) -> Clip:
        self.check_inputs(request)
        prov = self.provider_info()
        key = prov.key()
        if key is None:
            raise KeyMissing(prov.missing_key_message(self.name))
        remote = request.remote if request.remote is not None else RemoteJob(None, "local")
        info = remote.info
        info.update(remote={"provider": prov.name, "model": self.remote_model, "job_id": None,
                            "status": None, "resumed": False, "attempt": None, "retries": 0},
                    warnings=[])
        audio_s = request.audio.duration if request.audio is not None else None
        estimate, rule = self.estimate_cost(self.params, audio_s)
        info["cost"] = cost_record(rule, estimate, charged=0.0, currency=rule.currency if rule else None) \
            | {"source": "not submitted"}
        self._policy = RetryPolicy(int(self.options["retries"]), self.options["backoff_s"], self.options["backoff_cap_s"])
        self._title = prov.title
        self._info = info
        client = self._call(lambda: self.make_client(key, prov.base_url()), "client setup")

        with remote.submitting():
            state = remote.load()
            if state and state.get("handle") and state.get("status") not in ("failed", "refused"):
                info["remote"]["resumed"] = True
            else:
                attempt = int((state or {}).get("attempt", 0)) + 1
                idem = remote.idempotency_key(attempt)
                handle = self._call(lambda: self.submit(client, request, idem), "submit")
                if not isinstance(handle, dict) or not handle.get("id"):
                    raise ProviderError(f"{prov.title}: submit returned no job id")
                state = {"provider": prov.name, "model": self.name, "remote_model": self.remote_model,
                         "handle": handle, "attempt": attempt, "idempotency_key": idem, "status": "submitted",
                         "submitted_at": _now(), "estimate": estimate}
                remote.save(state)  # before any waiting: a kill from here on resumes, never resubmits
        handle = state["handle"]
        info["remote"].update(job_id=handle["id"], attempt=state.get("attempt"), submitted_at=state.get("submitted_at"),
                              status=state.get("status"))
        info["cost"] = cost_record(rule, estimate) | {"charged": None, "usd": None, "source": "pending"}

        result = self._wait(client, handle, remote, progress)
        charged = result.charged
        info["cost"] = cost_record(rule, estimate, charged, result.currency)
        if not result.outputs:
            raise ProviderError(f"{prov.title} job {handle['id']} finished with no output")
        dest = remote.download_path(self.output_suffix)
        if dest is None:
            import tempfile

            dest = Path(tempfile.mkdtemp(prefix="workbench-hosted-")) / f"output{self.output_suffix}"
        clip = None
        if dest.is_file() and state.get("downloaded"):
            try:
                clip = self.verify(dest, request, result)  # downloaded before a kill: keep it
            except ProviderError:
                clip = None
        if clip is None:
            part = dest.with_name(dest.name + ".part")
            self._call(lambda: self.fetch(client, handle, result.outputs[0], part), "download")
            part.replace(dest)
            remote.update(downloaded=True)
            clip = self.verify(dest, request, result)
        remote.update(status="completed", verified=True)
        info["remote"]["status"] = "completed"
        return clip

    def _wait(self, client: Any, handle: dict[str, Any], remote: Any, progress: ProgressFn | None) -> Poll:
        t0 = time.monotonic()
        timeout = float(self.options["timeout_s"])
        poll_s = float(self.options["poll_s"])
        last = None
        while True:
            try:
                res = self._call(lambda: self.poll(client, handle), "status")
            except Refused as e:  # refused when the result was fetched (fal): the job is over
                res = Poll("refused", error=str(e).split(": ", 1)[-1])
            except ProviderError as e:
                raise ProviderError(f"{e}; the remote job {handle['id']} is kept: run again to poll it again "
                                    f"(delete claims/<clip id>.remote.json to submit anew)") from None
            if res.state != last:
                last = res.state
                self._info["remote"]["status"] = res.state
            if res.state == "done":
                remote.update(status="done", outputs=res.outputs, charged=res.charged, currency=res.currency,
                              meta=res.meta, finished_at=_now())
                return res
            if res.state in ("failed", "refused"):
                reason = scrub(res.error or "no reason given")
                remote.update(status=res.state, error=reason, charged=res.charged, currency=res.currency)
                self._info["cost"] = cost_record(self.price(self.params), self._info["cost"].get("estimated"), res.charged,
                                                 res.currency) | ({} if res.charged is not None else
                                                                  {"charged": None, "usd": None, "source": "unknown"})
                if res.state == "refused":
                    raise Refused(f"refused by {self._title}: {reason}")
                raise ProviderError(f"{self._title} job {handle['id']} failed: {reason}")
            if progress is not None:
                progress(int(round(100 * (res.progress or 0.0))), 100)  # also: cancel point, heartbeat
            waited = time.monotonic() - t0
            if waited >= timeout:
                raise RemoteTimeout(f"{self._title} job {handle['id']} not finished after {waited:.0f} s "
                                    f"(timeout_s {timeout:g}, still {res.state}); run again to resume polling it "
                                    f"(it is not submitted again)")
            time.sleep(min(poll_s, max(0.0, timeout - waited)))

    def _call(self, fn: Callable[[], T], what: str) -> T:
        """Run one provider call with bounded retries; every failure leaves as one scrubbed line."""
        policy = getattr(self, "_policy", RetryPolicy())
        title = getattr(self, "_title", self.provider)
        for attempt in range(policy.retries + 1):
            try:
                return fn()
            except (ProviderError, KeyMissing):
                raise
            except Exception as e:  # noqa: BLE001  a client's own exception types vary by provider
                try:
                    f = self.fault(e)
                except Exception:  # noqa: BLE001
                    f = Fault("fatal", type(e).__name__)
                if f.kind == "refused":
                    raise Refused(f"refused by {title}: {scrub(f.message)}") from None
                if f.kind == "transient" and what == "submit" and f.sent and not self.idempotent_submit:
                    # the request may have reached the provider and started a job; without an idempotency
                    # key a second submit could start (and bill) another one: not retried, said why
                    raise ProviderError(f"{title} submit failed: {scrub(f.message)}; not retried: the request may "
                                        f"have reached {title}, which takes no idempotency key, so sending it again "
                                        f"could start and bill a second job (connection errors before sending, "
                                        f"429 and 5xx are retried); run again to submit once more") from None
                if f.kind == "transient" and attempt < policy.retries:
                    if hasattr(self, "_info"):
                        self._info["remote"]["retries"] = self._info["remote"].get("retries", 0) + 1
                    time.sleep(policy.delay(attempt, f.retry_after))
                    continue
                tries = f" after {attempt + 1} tries" if attempt else ""
                raise ProviderError(f"{title} {what} failed{tries}: {scrub(f.message)}") from None
        raise AssertionError("unreachable")

    # ---- verification ------------------------------------------------------------------------------
    def verify(self, path: Path, request: GenerationRequest, result: Poll) -> Clip:
        """Decode the whole download (PyAV); fail when it does not decode or is shorter than the
        provider reports; warn when size, fps or length differ from what was asked."""
        title = getattr(self, "_title", self.provider)
        if self.output_kind == "image":
            return self._verify_image(path, title)
        try:
            clip = Clip.open(path)
            frames = sum(1 for _ in clip.iter_frames(max_side=64))
        except MediaError as e:
            raise ProviderError(f"the clip {title} returned cannot be decoded ({scrub(str(e).split(': ', 1)[-1])})") from None
        except Exception as e:  # noqa: BLE001
            raise ProviderError(f"the clip {title} returned cannot be decoded ({type(e).__name__})") from None
        seconds = frames / clip.fps
        reported = result.meta.get("seconds")
        stated = clip._info.duration if clip._info else None
        for expect, what in ((reported, f"{title} reports"), (stated, "its container states")):
            if expect and seconds < float(expect) - max(self.length_tolerance_s, 0.1 * float(expect)):
                raise ProviderError(f"the clip {title} returned decodes to {seconds:.2f} s but {what} "
                                    f"{float(expect):.2f} s (a truncated download?); run again to download it again")
        w, h = clip.size
        actual = {"width": w, "height": h, "fps": clip.fps, "seconds": seconds}
        warn = self._info.setdefault("warnings", []) if hasattr(self, "_info") else []
        diffs = []
        for k, want in self.asked(request).items():
            have = actual.get(k)
            if want is None or have is None:
                continue
            tol = max(0.6, 0.1 * want) if k == "seconds" else (0.5 if k == "fps" else 0)
            if abs(float(have) - float(want)) > tol:
                unit = " s" if k == "seconds" else ""
                diffs.append(f"{k} {want:.4g}{unit} -> {have:.4g}{unit}")
        if diffs:
            warn.append(f"{self.name}: {title} returned another clip than asked ({', '.join(diffs)}); "
                        f"the record holds the actual values")
        return clip

    def _verify_image(self, path: Path, title: str) -> Clip:
        import numpy as np
        from PIL import Image

        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except Exception as e:  # noqa: BLE001
            raise ProviderError(f"the image {title} returned cannot be decoded ({type(e).__name__})") from None
        return Clip.from_frames(arr[None], fps=1.0)


def download(url: str, dest: Path, timeout: float = 120.0) -> None:
    """Stream `url` to `dest` (httpx, redirects followed); raises httpx errors for the retry layer."""
    import httpx

    with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as r:
        r.raise_for_status()
        with open(dest, "wb") as f:
            for chunk in r.iter_bytes(1 << 20):
                f.write(chunk)


class FixedDurations:
    """Mixin for models that make clips of a few fixed lengths (`spec.durations`): a request's `duration`
    becomes the nearest one, and that is the output length the estimate prices."""

    spec: Any
    default_longest: ClassVar[bool] = False  # with no `duration` asked: the longest (else the shortest)
    longer_on_tie: ClassVar[bool] = False  # halfway between two lengths: the longer (else the shorter)

    @classmethod
    def duration_for(cls, params: dict[str, Any]) -> int:
        durations = cls.spec.durations
        want = float(params.get("duration", durations[-1] if cls.default_longest else durations[0]))
        return min(durations, key=lambda d: (abs(d - want), -d if cls.longer_on_tie else d))

    @classmethod
    def output_seconds(cls, params: dict[str, Any], audio_seconds: float | None) -> float | None:
        return float(cls.duration_for(params))


def closest_aspect(image_wh: tuple[int, int] | None, allowed: tuple[str, ...]) -> str:
    """The allowed aspect ratio ("16:9") nearest the image's (the first allowed one without an image)."""
    if not image_wh:
        return allowed[0]
    w, h = image_wh

    def ratio(a: str) -> float:
        x, y = (float(v) for v in a.split(":"))
        return x / y
    return min(allowed, key=lambda a: abs(ratio(a) - w / h))


def make_generator(base: type, prefix: str, spec: Any, module: str, **attrs: Any) -> type:
    """Register one model row of a provider file: a subclass of `base` carrying `spec` (name, defaults,
    description) plus `attrs` (remote_model, task, requires, ...)."""
    ns = {"name": spec.name, "defaults": dict(spec.defaults), "description": spec.description, "spec": spec,
          "__doc__": spec.description, "__module__": module, **attrs}
    return register(type(f"{prefix}_{spec.name.replace('-', '_').replace('.', '_')}", (base,), ns))


def encoded_image(request: GenerationRequest, fmt: str = "PNG") -> tuple[bytes, str]:
    """The request's image (already loaded and size-capped by the Runner) as PNG bytes and its MIME."""
    import io

    from PIL import Image

    if request.image is None:
        raise GenerationError("no image in the request")
    buf = io.BytesIO()
    Image.fromarray(request.image).save(buf, format=fmt)
    return buf.getvalue(), f"image/{fmt.lower()}"


def encoded_audio(request: GenerationRequest) -> tuple[bytes, str]:
    """The request's audio as WAV bytes (the original file when the path is known)."""
    import tempfile

    if request.audio_path and Path(request.audio_path).is_file() and request.audio_path.endswith(".wav"):
        return Path(request.audio_path).read_bytes(), "audio/wav"
    if request.audio is None:
        raise GenerationError("no audio in the request")
    with tempfile.TemporaryDirectory() as d:
        p = request.audio.save_wav(Path(d) / "a.wav")
        return Path(p).read_bytes(), "audio/wav"
