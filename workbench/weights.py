"""Weights a user can actually get: what each model and metric backend needs, whether it is here, and the
one command that downloads it (`workbench weights fetch NAME`).

Nothing else in the workbench downloads: generators and metrics read the local hub / torch caches (or a
folder the user names) and fail at once with the fetch command when weights are absent. `check` reads
caches only and imports neither torch nor diffusers.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# pickled formats left out of hub downloads unless asked for (safetensors first)
PICKLE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl", "*.msgpack", "*.h5", "*.ot"]


class WeightsError(RuntimeError):
    """A fetch or check cannot go on; one line naming the weights and the fix."""


@dataclass(frozen=True)
class Weights:
    """One thing to download: a hub repo, a file at a URL, or a model's own repository (external)."""

    name: str
    kind: str  # hub | url | repo
    source: str  # hub id, URL, or git URL
    used_by: str
    note: str = ""  # licence / gating
    env: str | None = None  # environment variable naming a local copy
    filename: str = ""  # url kind: the file name as the metric looks for it
    torch_cache: bool = False  # url kind: lands in the torch hub checkpoints folder (where torchvision looks)
    member: str = ""  # url kind: the file to extract from a zip
    gated: bool = False  # hub kind: the repo asks users to accept a licence before downloading


def torch_hub_checkpoints() -> Path:
    """torch.hub.get_dir()/checkpoints without importing torch ($TORCH_HOME, else $XDG_CACHE_HOME/torch)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(home).expanduser() / "hub" / "checkpoints"


def workbench_cache() -> Path:
    """Where URL weights that no library cache claims are kept ($WORKBENCH_CACHE, else ~/.cache/workbench)."""
    return Path(os.environ.get("WORKBENCH_CACHE", "~/.cache/workbench")).expanduser() / "weights"


METRIC_WEIGHTS: tuple[Weights, ...] = (
    Weights("dino", "hub", "facebook/dino-vitb16", "subject_consistency, i2v_subject", "Apache-2.0", "WORKBENCH_DINO"),
    Weights("clip", "hub", "openai/clip-vit-base-patch32", "background_consistency", "MIT", "WORKBENCH_CLIP"),
    Weights("lpips-alex", "url", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth", "lpips, lpips_temporal",
            "BSD (torchvision)", "WORKBENCH_LPIPS_BACKBONE", "alexnet-owt-7be5be79.pth", torch_cache=True),
    Weights("raft", "url", "https://download.pytorch.org/models/raft_large_C_T_SKHT_V2-ff5fadd5.pth", "warp_error (raft)",
            "BSD (torchvision)", "WORKBENCH_RAFT_WEIGHTS", "raft_large_C_T_SKHT_V2-ff5fadd5.pth", torch_cache=True),
    Weights("syncnet", "url", "http://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",
            "sync_offset, sync_confidence, lse_d, lse_c", "research use (VGG)", "WORKBENCH_SYNCNET_WEIGHTS",
            "syncnet_v2.model"),
    Weights("i3d", "url", "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1", "fvd",
            "Apache-2.0 (StyleGAN-V export of Kinetics I3D)", "WORKBENCH_I3D", "i3d_torchscript.pt"),
    Weights("arcface", "url", "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
            "identity scores (arcface-onnx)", "non-commercial research (insightface buffalo_l)", "WORKBENCH_ARCFACE",
            "w600k_r50.onnx", member="w600k_r50.onnx"),
)


def model_weights() -> list[Weights]:
    """One entry per registered model that needs weights (diffusers families and external repos)."""
    from workbench.models import registry
    from workbench.models.families import FamilySpec

    out = []
    for cls in registry().values():
        spec = getattr(cls, "spec", None)  # hosted providers have a spec of their own: not hub weights
        recipe = getattr(cls, "recipe", None)
        if isinstance(spec, FamilySpec):
            out.append(Weights(cls.name, "hub", spec.model_id, f"model {cls.name} ({spec.task})", spec.licence,
                               gated=spec.gated))
        elif recipe is not None:
            out.append(Weights(cls.name, "repo", recipe.repo, f"model {cls.name} ({recipe.task})", recipe.licence,
                               recipe.env_var))
    return out


def catalogue() -> dict[str, Weights]:
    """Every fetchable name: models first, then metric backends."""
    return {w.name: w for w in [*model_weights(), *METRIC_WEIGHTS]}


def local_path(w: Weights) -> Path | None:
    """Where the weights are on this machine (None when absent); reads caches and env vars only."""
    if w.env and os.environ.get(w.env):
        p = Path(os.environ[w.env]).expanduser()
        return p if p.exists() else None
    if w.kind == "hub":
        from workbench.models.diffusers_pipeline import cached_snapshot, folder_problem

        if w.name in METRIC_NAMES:  # a transformers model: config + safetensors in the snapshot
            snap = cached_snapshot(w.source, "config.json")
            if snap is None:
                return None
            return snap if any(snap.glob("*.safetensors")) or any(snap.glob("*.bin")) else None
        snap = cached_snapshot(w.source)
        return snap if snap is not None and folder_problem(snap) is None else None
    if w.kind == "url":
        p = (torch_hub_checkpoints() if w.torch_cache else workbench_cache()) / w.filename
        return p if p.is_file() else None
    return None


METRIC_NAMES = {w.name for w in METRIC_WEIGHTS}


def _entry(name: str, cat: dict[str, Weights] | None = None) -> Weights:
    """The catalogue entry `name` (from `cat` when given), or WeightsError listing the known names."""
    cat = catalogue() if cat is None else cat
    if name not in cat:
        raise WeightsError(f"no weights named '{name}'; known: {', '.join(cat)}")
    return cat[name]


def status(names: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per asked-for name (all when None): name, kind, source, used_by, note, present, path, env."""
    cat = catalogue()
    rows = []
    for name in names or list(cat):
        w = _entry(name, cat)
        path = local_path(w)
        rows.append({"name": w.name, "kind": w.kind, "source": w.source, "used_by": w.used_by, "note": w.note,
                     "present": path is not None, "path": str(path) if path else None, "env": w.env})
    return rows


def require(name: str) -> Path:
    """The local path of `name`'s weights, or WeightsError with the command that fetches them (for metric
    backends and generators: check here first, never wait on the network)."""
    w = _entry(name)
    path = local_path(w)
    if path is None:
        alt = f" (or set {w.env} to a local copy)" if w.env else ""
        raise WeightsError(f"{name} weights ({w.source}) are not on this machine; run `workbench weights fetch "
                           f"{name}`{alt}")
    return path


def _causes(e: BaseException) -> list[BaseException]:
    """`e` and the exceptions it was raised from (or while handling), outermost first."""
    out: list[BaseException] = []
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


def _status(e: BaseException) -> int | None:
    """The HTTP status code an exception carries (huggingface_hub / httpx / urllib), if any."""
    response = getattr(e, "response", None)
    code = getattr(response, "status_code", None) if response is not None else getattr(e, "code", None)
    return code if isinstance(code, int) else None


_NETWORK_ERRORS = ("ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "NetworkError",
                   "ConnectionError", "ProxyError", "gaierror", "timeout", "URLError", "RemoteProtocolError")


def download_failure(w: Weights, e: BaseException) -> str:
    """What went wrong with a download, in one line with the fix: offline mode, the network or hub
    unreachable, a gated repo without access (401/403), a repo not found (404) or anything else. The
    licence advice is given only where it applies (a gated repo, or a refusal of one marked gated)."""
    chain = _causes(e)
    names = {type(c).__name__ for c in chain}
    where = w.source
    if w.kind == "hub":
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
        page = f"{endpoint}/{w.source}"
    else:
        endpoint = page = w.source
    if "OfflineModeIsEnabled" in names:
        return (f"{w.name}: offline mode is on (HF_HUB_OFFLINE): nothing was downloaded; run `HF_HUB_OFFLINE=0 "
                f"workbench weights fetch {w.name}` on a machine with network")
    status = next((code for code in map(_status, chain) if code is not None), None)
    if "GatedRepoError" in names or (status in (401, 403) and w.gated):
        return (f"{w.name}: {where} is gated (HTTP {status or 401}): accept its licence at {page} and log in "
                f"(`hf auth login` or HF_TOKEN), then retry")
    if status in (401, 403) or "RepositoryNotFoundError" in names:
        return (f"{w.name}: the hub refused {where} (HTTP {status or 404}: not found, or private and you are not "
                f"logged in); check the id, or log in (`hf auth login`) if it is private")
    if status == 404:
        return f"{w.name}: {where} not found (HTTP 404); check the source or update the workbench"
    if status is not None:
        return f"{w.name}: {endpoint} answered HTTP {status} for {where}; retry later"
    network = next((c for c in chain if type(c).__name__ in _NETWORK_ERRORS or isinstance(c, (ConnectionError,
                                                                                               TimeoutError))), None)
    if network is not None or "LocalEntryNotFoundError" in names:
        why = _one_line(chain[-1])
        return (f"{w.name}: network unreachable: could not reach {endpoint} to download {where} ({why}); check the "
                f"connection or proxy (HF_ENDPOINT, HTTPS_PROXY) and retry")
    return f"{w.name}: download of {where} failed: {_one_line(e)}"


def _one_line(e: BaseException) -> str:
    text = str(getattr(e, "reason", None) or e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def fetch(name: str, dest: str | Path | None = None, allow_pickle: bool = False) -> Path:
    """Download `name` into the hub cache / torch cache / workbench cache (or into `dest/NAME`); returns the path.

    A model's own repository (external recipes) is not downloaded: the error carries its install note.
    """
    w = _entry(name)
    if w.kind == "repo":
        from workbench.models import get_generator

        install = " ".join(getattr(get_generator(name), "recipe").install.split())
        raise WeightsError(f"{name} runs from its own repository: {install}; then set {w.env}")
    if _offline():
        raise WeightsError(f"{name}: HF_HUB_OFFLINE=1 forbids downloads; run `HF_HUB_OFFLINE=0 workbench weights "
                           f"fetch {name}` on a machine with network")
    if w.kind == "hub":
        from huggingface_hub import snapshot_download

        ignore = None if allow_pickle else PICKLE_PATTERNS
        kwargs: dict[str, Any] = {"ignore_patterns": ignore}
        if dest is not None:
            kwargs["local_dir"] = str(Path(dest).expanduser() / name)
        try:
            return Path(snapshot_download(w.source, **kwargs))
        except Exception as e:  # no network, offline mode, gated or private repo, unknown id
            raise WeightsError(download_failure(w, e)) from None
    folder = Path(dest).expanduser() if dest is not None else (
        torch_hub_checkpoints() if w.torch_cache else workbench_cache())
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / w.filename
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        part = Path(tmp) / "download"
        try:
            with urllib.request.urlopen(w.source, timeout=60) as r, open(part, "wb") as f:
                shutil.copyfileobj(r, f)
        except Exception as e:
            raise WeightsError(f"{download_failure(w, e)}; or fetch it by hand and set {w.env}") from None
        if w.member:
            with zipfile.ZipFile(part) as z:
                member = next((m for m in z.namelist() if m.endswith(w.member)), None)
                if member is None:
                    raise WeightsError(f"{name}: {w.member} not in {w.source}; fetch it by hand and set {w.env}")
                with z.open(member) as src, open(Path(tmp) / "member", "wb") as out:
                    shutil.copyfileobj(src, out)
                part = Path(tmp) / "member"
        os.replace(part, target)
    return target
