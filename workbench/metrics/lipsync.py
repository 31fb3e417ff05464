"""Lip-sync: does the mouth move with the speech, and at what audio-video offset?

Two backends, one metric group ("lipsync"):

- ``syncnet_v2`` (learned): SyncNet (Chung & Zisserman 2016) as in Wav2Lip's evaluation, giving
  LSE-D / LSE-C and the offset; used when the weights are given (``syncnet_weights=`` or
  $WORKBENCH_SYNCNET_WEIGHTS). See `workbench.metrics.syncnet`.
- ``landmark-xcorr`` (offline, no weights): for each audio lag in +-15 frames, a ridge regression from the
  lagged frame's speech band energies (5 bands + total, log) to the mouth opening (dlib landmarks) is
  fitted with 5-fold blocked cross-validation; the held-out correlation per lag forms a sync curve. The best lag is the
  offset and `sync_confidence` = best correlation minus the median over lags (SyncNet's
  "min vs median" idea, on correlations). Both signals are high-passed (~0.45 s) first so that slow
  drifts (posture, loudness) do not masquerade as sync.

Design measured on the real clips in ../shared/media/talking (see tests/test_lipsync.py): one audio
frame beat 3- and 5-frame windows (wider windows fit neighbouring lags too and blur the peak), band
energies beat 13 MFCCs, and the high-pass was needed to find 00373 in sync.

Offsets follow SyncNet's sign: positive = audio leads video; delaying the audio by k frames moves the
offset by -k. Frames without a face are masked.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from workbench.faces import mouth_opening
from workbench.metrics.base import EvalInputs, FrameStep, Metric, MetricUnavailable, ScoreSpec

SAMPLE_RATE = 16000
MAX_OFFSET = 15  # frames searched either way (SyncNet's vshift)
MIN_FACE_SECONDS = 2.0
BAND_EDGES_HZ = (80, 300, 800, 1600, 3200, 7600)  # speech bands whose log energies drive the regression
HIGHPASS_SECONDS = 0.45
AUDIO_CONTEXT = 0  # audio frames either side of the lagged one fed to the regression (0 measured best)
RIDGE_ALPHA = 10.0
CV_FOLDS = 5
OFFLINE_BACKEND = "landmark-xcorr"
LEARNED_BACKEND = "syncnet_v2"


# --------------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------------
def speech_band_features(samples_16k: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """Log energies of the speech bands `BAND_EDGES_HZ` plus the total, averaged per video frame.

    25 ms Hann windows every 10 ms; each window counts towards the video frame its centre falls in.
    Returns (n_frames, len(BAND_EDGES_HZ)); frames past the end of the audio are silence (-18.4).
    """
    x = np.asarray(samples_16k, dtype=np.float64)
    win, hop, nfft = 400, 160, 512
    n = 1 + max(0, (len(x) - win) // hop)
    x = np.concatenate([x, np.zeros(win)])
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * np.hanning(win), nfft)) ** 2
    freqs = np.fft.rfftfreq(nfft, 1.0 / SAMPLE_RATE)
    bands = [power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in zip(BAND_EDGES_HZ[:-1], BAND_EDGES_HZ[1:])]
    logs = np.log(np.stack([*bands, power.sum(axis=1)], axis=1) + 1e-8)
    frame_of = np.floor((np.arange(n) * hop + win / 2) / SAMPLE_RATE * fps).astype(int)
    ok = (frame_of >= 0) & (frame_of < n_frames)
    out = np.zeros((n_frames, logs.shape[1]))
    count = np.zeros(n_frames)
    np.add.at(out, frame_of[ok], logs[ok])
    np.add.at(count, frame_of[ok], 1)
    out[count > 0] /= count[count > 0, None]
    out[count == 0] = np.log(1e-8)
    return out


def _highpass(x: np.ndarray, size: int) -> np.ndarray:
    from scipy.ndimage import uniform_filter1d

    if size < 3:
        return x
    return x - uniform_filter1d(x, size, axis=0, mode="nearest")


# --------------------------------------------------------------------------------------------------
# the sync curve
# --------------------------------------------------------------------------------------------------
def _cv_correlation(X: np.ndarray, y: np.ndarray, alpha: float, folds: int) -> float:
    """Correlation of y with ridge predictions from X, each block predicted by a model fitted on the others."""
    n = len(y)
    pred = np.zeros(n)
    edges = np.linspace(0, n, folds + 1).astype(int)
    for lo, hi in zip(edges[:-1], edges[1:]):
        train = np.ones(n, bool)
        train[lo:hi] = False
        mx, sx = X[train].mean(0), X[train].std(0) + 1e-8
        Xt = (X[train] - mx) / sx
        my = y[train].mean()
        w = np.linalg.solve(Xt.T @ Xt + alpha * np.eye(X.shape[1]), Xt.T @ (y[train] - my))
        pred[lo:hi] = (X[lo:hi] - mx) / sx @ w + my
    if pred.std() < 1e-12 or y.std() < 1e-12:
        return 0.0
    return float(np.corrcoef(pred, y)[0, 1])


def sync_curve(mouth: np.ndarray, audio_feats: np.ndarray, fps: float, max_offset: int = MAX_OFFSET,
               context: int = AUDIO_CONTEXT, alpha: float = RIDGE_ALPHA, folds: int = CV_FOLDS) -> np.ndarray:
    """Cross-validated audio->mouth correlation for each audio lag k in -max_offset..max_offset.

    `mouth` is (T,) with NaN where no face was found; `audio_feats` is (T, F), frame-aligned. Lag k
    predicts mouth[t] from audio frames t+k-context .. t+k+context (zero-padded past the ends).
    Index j of the result is lag j - max_offset; the SyncNet offset is -(lag).
    """
    T = len(mouth)
    ok = np.isfinite(mouth)
    y = np.where(ok, mouth, np.nanmean(mouth) if ok.any() else 0.0)
    size = max(3, int(round(HIGHPASS_SECONDS * fps)) | 1)
    y = _highpass(y, size)[ok]
    A = _highpass(np.asarray(audio_feats, dtype=np.float64)[:T], size)
    A = (A - A.mean(0)) / (A.std(0) + 1e-8)
    reach = max_offset + context
    padded = np.concatenate([np.zeros((reach, A.shape[1])), A, np.zeros((reach, A.shape[1]))])
    taps = np.arange(-context, context + 1)
    rows = np.arange(T)[ok]
    curve = np.empty(2 * max_offset + 1)
    for j, lag in enumerate(range(-max_offset, max_offset + 1)):
        X = padded[rows[:, None] + reach + lag + taps[None, :]].reshape(len(rows), -1)
        curve[j] = _cv_correlation(X, y, alpha, folds)
    return curve


def offset_and_confidence(curve: np.ndarray, context: int = AUDIO_CONTEXT) -> tuple[int, float]:
    """(SyncNet-convention offset, best correlation minus the median over lags).

    A regression over +-`context` audio frames fits nearly as well `context` lags either side of the
    true one, so the curve has a flat top; the offset is the peak of the curve box-smoothed over that
    width, which lands in the middle of the top instead of on a random edge of it.
    """
    max_offset = (len(curve) - 1) // 2
    width = 2 * context + 1
    smooth = np.convolve(np.pad(curve, context, mode="edge"), np.ones(width) / width, mode="valid")
    best = int(np.argmax(smooth))
    return -(best - max_offset), float(np.max(curve) - np.median(curve))


# --------------------------------------------------------------------------------------------------
# the metric
# --------------------------------------------------------------------------------------------------
class LipSync(Metric):
    """Audio-visual synchronisation of the main face's mouth with the speech track."""

    name = "lipsync"
    requires = frozenset({"audio"})
    scores = (
        ScoreSpec("sync_offset", None, f"[-{MAX_OFFSET}, {MAX_OFFSET}] frames",
                  "audio-video offset at the best match, frames; positive = audio leads video, 0 = in sync",
                  "SyncNet offset (Chung & Zisserman 2016)"),
        ScoreSpec("sync_confidence", True, "landmark-xcorr: [0, 2]; syncnet_v2: [0, ~12]",
                  "how much better the best offset matches than a typical one (landmark-xcorr: CV correlation "
                  "gain over the median lag; syncnet_v2: LSE-C)",
                  "SyncNet confidence (Chung & Zisserman 2016); LSE-C (Prajwal et al. 2020, Wav2Lip)"),
        ScoreSpec("lse_d", False, "[0, ~15]", "SyncNet embedding distance at the best offset (syncnet_v2 only)",
                  "LSE-D (Prajwal et al. 2020, Wav2Lip)"),
        ScoreSpec("lse_c", True, "[0, ~12]", "SyncNet confidence: median minus minimum distance (syncnet_v2 only)",
                  "LSE-C (Prajwal et al. 2020, Wav2Lip)"),
    )

    def __init__(self, syncnet_weights: str | Path | None = None, backend: str = "auto",
                 max_offset: int = MAX_OFFSET, device: str = "cpu"):
        """backend: "auto" (SyncNet when its weights are found, else landmarks), "syncnet" or "landmarks"."""
        from workbench.metrics.syncnet import resolve_weights

        if backend not in ("auto", "syncnet", "landmarks"):
            raise ValueError(f"lipsync backend must be auto, syncnet or landmarks, got {backend!r}")
        self.max_offset = int(max_offset)
        self.device = device
        self.requested = backend
        self.weights = resolve_weights(syncnet_weights)
        self._missing: str | None = None  # why an explicitly requested SyncNet cannot run
        self._use_syncnet = backend != "landmarks" and self.weights is not None and self.weights.is_file()
        if self.weights is not None and not self.weights.is_file() and backend != "landmarks":
            if backend == "syncnet":
                self._missing = f"SyncNet weights not found at {self.weights}; pass syncnet_weights= an existing syncnet_v2.model"
            else:
                warnings.warn(f"lipsync: SyncNet weights not found at {self.weights}; using the offline "
                              f"'{OFFLINE_BACKEND}' backend", stacklevel=2)
        if backend == "syncnet" and self.weights is None:
            self._missing = ("SyncNet backend asked for but no weights given; pass syncnet_weights= or set "
                             "WORKBENCH_SYNCNET_WEIGHTS to syncnet_v2.model")

    def backend(self) -> str:
        return LEARNED_BACKEND if self._use_syncnet else OFFLINE_BACKEND

    @classmethod
    def backends_available(cls) -> dict[str, bool]:
        from workbench.faces import dlib_available
        from workbench.metrics.syncnet import available_weights

        return {OFFLINE_BACKEND: dlib_available(), LEARNED_BACKEND: available_weights() is not None}

    # streaming ------------------------------------------------------------------------------------
    def start(self, inputs: EvalInputs) -> None:
        super().start(inputs)
        if self._missing:
            raise MetricUnavailable(self._missing)
        audio = inputs.audio
        if audio is None or len(audio.samples) == 0:
            raise MetricUnavailable("no audio to sync against; pass --audio or a clip with a soundtrack")
        if audio.is_silent:
            raise MetricUnavailable(f"audio is silent (rms {audio.rms:.1e}); pass the speech track the clip should lip-sync to")
        from workbench.faces import dlib_available

        if not dlib_available():
            raise MetricUnavailable("lip-sync needs dlib face landmarks; run `pip install dlib-bin face-recognition-models`")
        self.fps = float(inputs.video.fps)
        samples = audio.resample(SAMPLE_RATE).samples
        n_audio_frames = int(math.ceil(len(samples) / SAMPLE_RATE * self.fps))
        self._audio_feats = speech_band_features(samples, self.fps, max(n_audio_frames, inputs.video.num_frames, 1))
        self._mouth: list[float] = []
        self._scorer = None
        if self._use_syncnet:
            from workbench.metrics.syncnet import SYNCNET_FPS, SyncNetScorer, SyncNetWeightsError, cached_syncnet

            if abs(self.fps - SYNCNET_FPS) > 0.01:
                raise MetricUnavailable(f"SyncNet scores 25 fps video, this clip is {self.fps:g} fps; "
                                        "resample it to 25 fps (or use the landmarks backend)")
            try:
                net = cached_syncnet(self.weights, self.device)
            except SyncNetWeightsError as e:
                raise MetricUnavailable(str(e)) from None
            self._scorer = SyncNetScorer(net, device=self.device)
            self._scorer.start(samples)

    def update(self, step: FrameStep) -> None:
        face = step.face
        self._mouth.append(mouth_opening(face.landmarks) if face is not None else float("nan"))
        if self._scorer is not None:  # crops come from the analysis frame, where the landmarks live
            self._scorer.add(step.frame, None if face is None else face.landmarks)

    def finish(self) -> dict[str, float | None]:
        mouth = np.asarray(self._mouth, dtype=np.float64)
        faced = int(np.isfinite(mouth).sum())
        if faced / self.fps < MIN_FACE_SECONDS:
            raise MetricUnavailable(
                f"only {faced} of {len(mouth)} frames ({faced / self.fps:.1f} s) show a face with landmarks; "
                f"lip-sync needs at least {MIN_FACE_SECONDS:g} s of a visible, roughly frontal face")
        if self._scorer is not None:
            try:
                s = self._scorer.finish()
            except ValueError as e:
                raise MetricUnavailable(f"SyncNet: {e}") from None
            return {"sync_offset": s["offset"], "sync_confidence": s["lse_c"], "lse_d": s["lse_d"], "lse_c": s["lse_c"]}
        feats = self._audio_feats
        if len(feats) < len(mouth):
            feats = np.concatenate([feats, np.full((len(mouth) - len(feats), feats.shape[1]), np.log(1e-8))])
        curve = sync_curve(mouth, feats[: len(mouth)], self.fps, self.max_offset)
        self.curve = curve  # kept for plots / inspection
        offset, conf = offset_and_confidence(curve)
        why = ("needs SyncNet weights (syncnet_v2.model): pass syncnet_weights=PATH or set WORKBENCH_SYNCNET_WEIGHTS; "
               "the landmark-xcorr backend reports sync_offset and sync_confidence only")
        self.reasons = {"lse_d": why, "lse_c": why}
        return {"sync_offset": float(offset), "sync_confidence": conf, "lse_d": None, "lse_c": None}


METRICS = [LipSync]
