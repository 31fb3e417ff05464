"""SyncNet (Chung & Zisserman, "Out of time", ACCV-W 2016) for the LSE-D / LSE-C lip-sync scores.

A PyTorch port of the network used by joonson/syncnet_python and by Wav2Lip's evaluation
(`evaluation/scores_LSE`). The module names and layer order follow that network, so the public
`syncnet_v2.model` state dict loads unchanged. The conventions reproduced here:

- video at 25 fps, audio at 16 kHz; MFCC as python_speech_features' defaults (25 ms rectangular
  window, 10 ms step, 26 mel filters, 512-point FFT, pre-emphasis 0.97, lifter 22, c0 replaced by the
  log frame energy) on int16-scaled samples;
- one audio window = 13 MFCC x 20 steps (0.2 s), one video window = 5 consecutive 224x224 BGR face crops
  (pixel values 0..255, no normalisation), window v covers video frames v..v+4 and MFCC steps 4v..4v+19;
- offsets searched over +-vshift (15) windows; per offset the mean embedding distance over the clip;
  LSE-D = minimum of those means, LSE-C = their median minus the minimum, offset = vshift - argmin
  (positive: audio leads video).

Face crops follow syncnet_python's `crop_video`: a square of side 2.8 x half the face-box size, centred
horizontally on the face and extending 1.8 half-sizes below its centre, padded with grey 110, with the
box median-filtered over 13 frames. Our face boxes come from the dlib landmarks (see `face_box`).
"""
from __future__ import annotations

import os
from collections import deque
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

SYNCNET_FPS = 25.0
SYNCNET_SAMPLE_RATE = 16000
MFCC_STEPS_PER_FRAME = 4  # 100 MFCC steps/s over 25 frames/s
WINDOW_FRAMES = 5
MFCC_WINDOW = 20
CROP_SIZE = 224
CROP_SCALE = 0.40  # syncnet_python --crop_scale
BOX_SMOOTH = 13  # median filter length of the crop box (frames)
PAD_VALUE = 110
DEFAULT_VSHIFT = 15
WEIGHTS_ENV = "WORKBENCH_SYNCNET_WEIGHTS"


class SyncNetWeightsError(RuntimeError):
    """The SyncNet weights file is missing or does not fit the architecture."""


# --------------------------------------------------------------------------------------------------
# MFCC (python_speech_features-compatible, numpy only)
# --------------------------------------------------------------------------------------------------
def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray | float:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def _mel_to_hz(mel: np.ndarray | float) -> np.ndarray | float:
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


def mel_filterbank(n_filters: int, nfft: int, sample_rate: int, low_hz: float = 0.0,
                   high_hz: float | None = None) -> np.ndarray:
    """Triangular mel filters on FFT bins, (n_filters, nfft // 2 + 1), bins placed as
    python_speech_features does (floor of (nfft + 1) * f / sr)."""
    high_hz = high_hz or sample_rate / 2.0
    mels = np.linspace(_hz_to_mel(low_hz), _hz_to_mel(high_hz), n_filters + 2)
    bins = np.floor((nfft + 1) * _mel_to_hz(mels) / sample_rate).astype(int)
    fb = np.zeros((n_filters, nfft // 2 + 1))
    for j in range(n_filters):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        for i in range(lo, mid):
            fb[j, i] = (i - lo) / max(mid - lo, 1)
        for i in range(mid, hi):
            fb[j, i] = (hi - i) / max(hi - mid, 1)
    return fb


def mfcc(signal: np.ndarray, sample_rate: int = SYNCNET_SAMPLE_RATE, winlen: float = 0.025,
         winstep: float = 0.01, numcep: int = 13, nfilt: int = 26, nfft: int = 512,
         preemph: float = 0.97, ceplifter: int = 22) -> np.ndarray:
    """MFCCs (n_steps, numcep) with python_speech_features' defaults (what SyncNet was trained on).

    `signal` is in the units the reference used: int16 sample values (scale floats by 32768).
    """
    from scipy.fft import dct

    x = np.asarray(signal, dtype=np.float64).reshape(-1)
    x = np.append(x[:1], x[1:] - preemph * x[:-1])
    frame_len = int(round(winlen * sample_rate))
    step = int(round(winstep * sample_rate))
    n = len(x)
    n_frames = 1 if n <= frame_len else 1 + int(np.ceil((n - frame_len) / step))
    x = np.concatenate([x, np.zeros(max(0, (n_frames - 1) * step + frame_len - n))])
    idx = np.arange(frame_len)[None, :] + step * np.arange(n_frames)[:, None]
    power = np.abs(np.fft.rfft(x[idx], nfft)) ** 2 / nfft
    eps = np.finfo(float).eps
    energy = power.sum(axis=1)
    energy = np.where(energy == 0, eps, energy)
    feat = power @ mel_filterbank(nfilt, nfft, sample_rate).T
    feat = np.log(np.where(feat == 0, eps, feat))
    cep = dct(feat, type=2, axis=1, norm="ortho")[:, :numcep]
    lift = 1.0 + (ceplifter / 2.0) * np.sin(np.pi * np.arange(numcep) / ceplifter)
    cep = cep * lift
    cep[:, 0] = np.log(energy)
    return cep


# --------------------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------------------
def _build_network(embed_dim: int = 1024):
    import torch.nn as nn

    def conv2(cin, cout, k, pad=(1, 1)):
        return [nn.Conv2d(cin, cout, kernel_size=k, stride=(1, 1), padding=pad), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    def conv3(cin, cout, k, stride=(1, 1, 1), pad=(0, 1, 1)):
        return [nn.Conv3d(cin, cout, kernel_size=k, stride=stride, padding=pad), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)]

    def head():
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))

    class SyncNetV2(nn.Module):
        """Two towers: MFCC (1x13x20) -> embedding, and 5 face crops (3x5x224x224) -> embedding."""

        def __init__(self) -> None:
            super().__init__()
            # module indices matter: they are the state-dict keys of syncnet_v2.model
            self.netcnnaud = nn.Sequential(
                *conv2(1, 64, (3, 3)), nn.MaxPool2d((1, 1), (1, 1)),
                *conv2(64, 192, (3, 3)), nn.MaxPool2d((3, 3), (1, 2)),
                *conv2(192, 384, (3, 3)),
                *conv2(384, 256, (3, 3)),
                *conv2(256, 256, (3, 3)), nn.MaxPool2d((3, 3), (2, 2)),
                *conv2(256, 512, (5, 4), pad=(0, 0)),
            )
            self.netfcaud = head()
            self.netfclip = head()
            self.netcnnlip = nn.Sequential(
                *conv3(3, 96, (5, 7, 7), stride=(1, 2, 2), pad=(0, 0, 0)), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
                *conv3(96, 256, (1, 5, 5), stride=(1, 2, 2)), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
                *conv3(256, 256, (1, 3, 3)),
                *conv3(256, 256, (1, 3, 3)),
                *conv3(256, 256, (1, 3, 3)), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
                *conv3(256, 512, (1, 6, 6), pad=(0, 0, 0)),
            )

        def forward_aud(self, x):
            """(N, 1, 13, 20) MFCC windows -> (N, embed_dim)."""
            return self.netfcaud(self.netcnnaud(x).flatten(1))

        def forward_lip(self, x):
            """(N, 3, 5, 224, 224) BGR 0..255 crops -> (N, embed_dim)."""
            return self.netfclip(self.netcnnlip(x).flatten(1))

    return SyncNetV2()


def build_syncnet(embed_dim: int = 1024):
    """A randomly initialised SyncNet in eval mode (load weights with `load_syncnet`)."""
    return _build_network(embed_dim).eval()


def resolve_weights(path: str | Path | None = None) -> Path | None:
    """The weights file to use: `path`, else $WORKBENCH_SYNCNET_WEIGHTS, else None."""
    p = path or os.environ.get(WEIGHTS_ENV) or None
    return Path(p).expanduser() if p else None


def load_syncnet(path: str | Path, device: str = "cpu"):
    """Load a syncnet_v2-layout state dict (e.g. syncnet_python's `data/syncnet_v2.model`)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise SyncNetWeightsError(
            f"{path}: SyncNet weights not found; download syncnet_v2.model (joonson/syncnet_python, "
            f"download_model.sh) and pass syncnet_weights= or set {WEIGHTS_ENV}")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise SyncNetWeightsError(f"{path}: not a readable PyTorch state dict ({type(e).__name__}: {e}); "
                                  "pass syncnet_python's syncnet_v2.model") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise SyncNetWeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
    state = {k.removeprefix("module.").removeprefix("__S__."): v for k, v in state.items()}
    embed_dim = int(state["netfcaud.3.weight"].shape[0]) if "netfcaud.3.weight" in state else 1024
    net = build_syncnet(embed_dim)
    own = net.state_dict()
    unexpected = sorted(set(state) - set(own))
    missing = sorted(k for k in set(own) - set(state) if not k.endswith("num_batches_tracked"))
    if unexpected or missing:
        raise SyncNetWeightsError(
            f"{path}: does not match the syncnet_v2 layout (missing {missing[:3]}, unexpected {unexpected[:3]}); "
            "pass syncnet_python's syncnet_v2.model")
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        raise SyncNetWeightsError(f"{path}: tensor shapes differ from syncnet_v2 at {bad[:3]}; wrong checkpoint")
    net.load_state_dict(state, strict=False)
    return net.to(device).eval()


@lru_cache(maxsize=2)
def _cached_syncnet(path: str, mtime: float, device: str):
    return load_syncnet(path, device)


def cached_syncnet(path: str | Path, device: str = "cpu"):
    """`load_syncnet`, cached per file (and its modification time) so repeated evaluations share it."""
    p = Path(path)
    if not p.is_file():
        return load_syncnet(p, device)  # raises the clear error
    return _cached_syncnet(str(p.resolve()), p.stat().st_mtime, device)


# --------------------------------------------------------------------------------------------------
# offsets, LSE-D and LSE-C
# --------------------------------------------------------------------------------------------------
def mean_distances(video_emb, audio_emb, vshift: int = DEFAULT_VSHIFT, valid: np.ndarray | None = None):
    """Mean distance, per offset, between video window i and audio window i + (j - vshift).

    Audio embeddings are zero-padded by `vshift` at both ends, as in syncnet_python's `calc_pdist`,
    and distances use torch's `pairwise_distance` (eps 1e-6). `valid` masks video windows (no face).
    Returns a (2 * vshift + 1,) tensor.
    """
    import torch
    import torch.nn.functional as F

    v = torch.as_tensor(video_emb, dtype=torch.float32)
    a = torch.as_tensor(audio_emb, dtype=torch.float32)
    n = min(len(v), len(a))
    v, a = v[:n], a[:n]
    keep = torch.ones(n, dtype=torch.bool) if valid is None else torch.as_tensor(np.asarray(valid)[:n], dtype=torch.bool)
    if int(keep.sum()) == 0:
        raise ValueError("no valid video windows to compare")
    padded = F.pad(a, (0, 0, vshift, vshift))
    win = 2 * vshift + 1
    rows = [F.pairwise_distance(v[i:i + 1].expand(win, -1), padded[i:i + win]) for i in range(n) if keep[i]]
    return torch.stack(rows, 1).mean(1)


def sync_scores(video_emb, audio_emb, vshift: int = DEFAULT_VSHIFT, valid: np.ndarray | None = None) -> dict[str, float]:
    """{"offset", "lse_d", "lse_c"} from per-window embeddings, as Wav2Lip's evaluation computes them."""
    import torch

    mdist = mean_distances(video_emb, audio_emb, vshift, valid)
    minval, minidx = torch.min(mdist, 0)
    return {"offset": float(vshift - int(minidx)), "lse_d": float(minval),
            "lse_c": float(torch.median(mdist) - minval)}


# --------------------------------------------------------------------------------------------------
# face crops, streamed
# --------------------------------------------------------------------------------------------------
def face_box(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(centre x, centre y, half size) of a face box like S3FD's (forehead to chin, ear to ear),
    estimated from 68 dlib landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64)
    left, right = lm[0:17, 0].min(), lm[0:17, 0].max()
    brow, chin = lm[17:27, 1].min(), lm[0:17, 1].max()
    top = brow - 0.25 * (chin - brow)  # the detector box reaches into the forehead
    return (left + right) / 2.0, (top + chin) / 2.0, max(right - left, chin - top) / 2.0


def crop_face(frame_rgb: np.ndarray, cx: float, cy: float, half: float, cs: float = CROP_SCALE) -> np.ndarray:
    """syncnet_python's crop: grey-padded square around the face, resized to 224x224, BGR uint8."""
    import cv2

    pad = int(half * (1 + 2 * cs))
    img = cv2.copyMakeBorder(np.ascontiguousarray(frame_rgb[..., ::-1]), pad, pad, pad, pad,
                             cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    my, mx = cy + pad, cx + pad
    crop = img[int(my - half):int(my + half * (1 + 2 * cs)), int(mx - half * (1 + cs)):int(mx + half * (1 + cs))]
    if crop.size == 0:
        return np.full((CROP_SIZE, CROP_SIZE, 3), PAD_VALUE, np.uint8)
    return cv2.resize(crop, (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)


class SyncNetScorer:
    """Streams frames (with their faces) through SyncNet and scores them against an audio track.

    `start(audio_16k)` embeds the audio once; `add(frame, face)` buffers 6 frames of look-ahead to
    median-filter the crop box, crops, and embeds 5-frame windows in batches; `finish()` returns
    offset / lse_d / lse_c. Memory stays bounded by the look-ahead and the batch.
    """

    def __init__(self, net, vshift: int = DEFAULT_VSHIFT, batch_size: int = 20, device: str = "cpu"):
        self.net = net
        self.vshift = vshift
        self.batch_size = batch_size
        self.device = device

    def start(self, samples_16k: np.ndarray) -> None:
        import torch

        x = np.asarray(samples_16k, dtype=np.float64) * 32768.0  # reference reads int16 wav samples
        self.n_audio_frames = len(x) // (SYNCNET_SAMPLE_RATE // int(SYNCNET_FPS))  # 640 samples per frame
        cc = mfcc(x, SYNCNET_SAMPLE_RATE).T.astype(np.float32)  # (13, steps)
        n_win = max(0, self.n_audio_frames - WINDOW_FRAMES)
        wins = [cc[:, MFCC_STEPS_PER_FRAME * v: MFCC_STEPS_PER_FRAME * v + MFCC_WINDOW] for v in range(n_win)]
        wins = [w for w in wins if w.shape[1] == MFCC_WINDOW]
        feats = []
        with torch.inference_mode():
            for i in range(0, len(wins), 100):
                batch = torch.from_numpy(np.stack(wins[i:i + 100])[:, None]).to(self.device)
                feats.append(self.net.forward_aud(batch).float().cpu())
        self.audio_emb = torch.cat(feats) if feats else torch.zeros(0, 1)
        self._boxes: list[tuple[float, float, float] | None] = []
        self._pending: deque[tuple[int, np.ndarray]] = deque()
        self._crops: deque[np.ndarray | None] = deque(maxlen=WINDOW_FRAMES)
        self._batch: list[np.ndarray] = []
        self._batch_idx: list[int] = []
        self._emb: dict[int, np.ndarray] = {}
        self._n_frames = 0
        self._n_cropped = 0

    def add(self, frame: np.ndarray, landmarks: np.ndarray | None) -> None:
        self._boxes.append(face_box(landmarks) if landmarks is not None else None)
        self._pending.append((self._n_frames, frame))
        self._n_frames += 1
        half = BOX_SMOOTH // 2
        while self._pending and self._pending[0][0] + half < self._n_frames:
            self._crop_next()

    def _crop_next(self) -> None:
        i, frame = self._pending.popleft()
        half = BOX_SMOOTH // 2
        near = [b for b in self._boxes[max(0, i - half): i + half + 1] if b is not None]
        crop = crop_face(frame, *np.median(np.array(near), axis=0)) if near else None
        self._crops.append(crop)
        self._n_cropped += 1
        if len(self._crops) == WINDOW_FRAMES and all(c is not None for c in self._crops):
            self._batch.append(np.stack(list(self._crops)))  # (5, 224, 224, 3)
            self._batch_idx.append(self._n_cropped - WINDOW_FRAMES)
            if len(self._batch) >= self.batch_size:
                self._flush_batch()

    def _flush_batch(self) -> None:
        import torch

        if not self._batch:
            return
        x = torch.from_numpy(np.stack(self._batch)).float().permute(0, 4, 1, 2, 3).to(self.device)  # N,3,5,H,W
        with torch.inference_mode():
            out = self.net.forward_lip(x).float().cpu().numpy()
        for k, e in zip(self._batch_idx, out):
            self._emb[k] = e
        self._batch, self._batch_idx = [], []

    def finish(self) -> dict[str, float]:
        """Scores over the whole stream; raises ValueError when no window had a face."""
        while self._pending:
            self._crop_next()
        self._flush_batch()
        min_length = min(self._n_frames, self.n_audio_frames)
        last = min_length - WINDOW_FRAMES  # the reference scores windows 0 .. last-1
        if last <= 0 or not self._emb:
            raise ValueError(f"too few frames for SyncNet ({min_length}; needs more than {WINDOW_FRAMES})")
        last = min(last, len(self.audio_emb))
        dim = self.audio_emb.shape[1]
        video = np.zeros((last, dim), np.float32)
        valid = np.zeros(last, bool)
        for k, e in self._emb.items():
            if k < last:
                video[k], valid[k] = e, True
        if not valid.any():
            raise ValueError("no 5-frame window with a face inside the audio's length")
        return sync_scores(video, self.audio_emb[:last], self.vshift, valid)


def available_weights(paths: Iterable[str | Path | None] = ()) -> Path | None:
    """The first existing weights file among `paths` and $WORKBENCH_SYNCNET_WEIGHTS."""
    for p in [*paths, os.environ.get(WEIGHTS_ENV)]:
        if p and Path(p).expanduser().is_file():
            return Path(p).expanduser()
    return None
