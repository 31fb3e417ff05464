"""Lip-sync: does the mouth move with the speech, and at what audio-video offset?

Two backends, one metric group ("lipsync"):

- ``syncnet_v2`` (learned, the reference): SyncNet (Chung & Zisserman 2016) as in Wav2Lip's
  evaluation, giving LSE-D / LSE-C and the offset; used when the weights are given
  (``syncnet_weights=`` or $WORKBENCH_SYNCNET_WEIGHTS). See `workbench.metrics.syncnet`.
- ``mouth-ridge`` (offline, no weights): two mouth signals per frame, both independent of the
  footage's size (the dlib inner-lip opening over the eye distance, and the mean brightness of the
  mouth region cut out level and scaled to the eye distance: an open mouth shows its dark inside);
  for each audio lag within +-`MAX_OFFSET_SECONDS` (so 25 and 30 fps search the same time span), a
  ridge regression from the lagged frame's speech-band log energies to each mouth signal is fitted
  with 5-fold blocked cross-validation on the voiced stretches (speech activity) only; the best
  held-out correlation of the two signals per lag forms the sync curve. The best lag is the offset,
  and `sync_confidence` = best correlation minus the median over lags. Signals are high-passed
  (~0.45 s) so that slow drifts (posture, light, loudness) do not masquerade as sync.

The design was chosen on the 15 real clips of ../shared/media (talking/ + talking_wild/) by
`benchmarks/bench_lipsync.py`, which scores every clip with its own audio, delayed by 5 frames, and
with every other clip's audio (leave-one-clip-out for the threshold): adding the mouth brightness to
the lip opening lifted own-vs-foreign ROC AUC from 0.94 to 0.99 and recovered the 5-frame delay on
15 of 15 clips (14 before); jaw drop, outer-lip height, lip width, mouth-patch motion, spectral flux,
wider audio context and mouth->audio regression were each tried and did worse.

A score is only given when the inputs can support one; otherwise it is null with the reason:
fewer than `MIN_FPS` frames per second or `MIN_FACE_SECONDS` of visible face, a mouth that does not
move (`NO_MOUTH_MOTION`: a still image, held or panned, has no lip motion to sync), less than `MIN_VOICED_SECONDS` of voiced audio overlapping the video. `sync_offset` is null
("no clear audio-visual sync peak") when the curve's peak is at the edge of the searched range or
rises less than `PEAK_MIN_GAIN` above the median (a flat curve). `sync_confidence` >= `SYNC_THRESHOLD`
is the one threshold that separates a clip's own audio from another clip's audio on the dev set.

Offsets follow SyncNet's sign: positive = audio leads video; delaying the audio by k frames moves the
offset by -k. Frames without a face are masked.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation, uniform_filter1d

from workbench.faces import LEFT_EYE, RIGHT_EYE, mouth_opening
from workbench.metrics.base import EvalInputs, FrameStep, Metric, MetricUnavailable, ScoreSpec

SAMPLE_RATE = 16000
MAX_OFFSET_SECONDS = 0.6  # lags searched either way (SyncNet's +-15 frames at 25 fps)
MAX_OFFSET = 15  # SyncNet's vshift in frames (the learned backend's search range)
MIN_FACE_SECONDS = 2.0
MIN_FPS = 10.0  # syllables come at 4-6 Hz: below ~10 fps the mouth's motion is not sampled
MIN_VOICED_SECONDS = 1.5  # voiced audio that must overlap frames with a face
# spread (5th-95th percentile) of the lip opening / eye distance below which the mouth is still: landmark
# jitter on a still portrait panned and zoomed (the `kenburns` baseline) spreads 0.020-0.024, speech on the
# 15 real dev clips 0.062-0.37 (8 s windows), the `puppet` baseline 0.27; at 0.02 a pan could read as in sync
STATIC_MOUTH = 0.04
NO_MOUTH_MOTION = "no mouth motion: lip-sync is undefined"
VOICE_LEVEL = 0.2  # a frame is voiced when its log energy is above floor + 0.2 * (loud - floor)
SYNC_THRESHOLD = 0.33  # sync_confidence above it: the clip's own audio, below: foreign (dev set, bench_lipsync.py)
PEAK_MIN_GAIN = 0.25  # a curve whose peak rises less than this above its median is flat: no offset
BAND_EDGES_HZ = (80, 300, 800, 1600, 3200, 7600)  # speech bands whose log energies drive the regression
HIGHPASS_SECONDS = 0.45
AUDIO_CONTEXT = 0  # audio frames either side of the lagged one fed to the regression (0 measured best)
RIDGE_ALPHA = 10.0
CV_FOLDS = 5
SERIES_SECONDS = 1.0  # window of the per-frame sync series
PATCH_W, PATCH_H = 48, 32  # mouth patch: 1.5 x 1.0 eye distances around the mouth centre
OFFLINE_BACKEND = "mouth-ridge"
LEARNED_BACKEND = "syncnet_v2"
NO_PEAK = "no clear audio-visual sync peak"


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


def voiced_frames(audio_feats: np.ndarray, level: float = VOICE_LEVEL) -> np.ndarray:
    """Speech activity per video frame: total log energy (last column) above the clip's quiet floor
    (10th percentile) by `level` of the way to its loud level (95th percentile). Frames past the end
    of the audio (log 1e-8) are never voiced."""
    total = np.asarray(audio_feats, dtype=np.float64)[:, -1]
    real = total > np.log(1e-8) + 1.0
    if not real.any():
        return np.zeros(len(total), bool)
    floor, loud = np.percentile(total[real], 10), np.percentile(total[real], 95)
    if loud - floor < 1.0:  # under 1 neper (~4 dB) of dynamics: no speech rhythm to find
        return np.zeros(len(total), bool)
    return real & (total > floor + level * (loud - floor))


def mouth_patch_brightness(gray: np.ndarray, landmarks: np.ndarray) -> float:
    """Mean grey level of the mouth's inside: the mouth region cut out level (by the eye line),
    scaled so the eye distance spans `PATCH_W` / 1.5 px, centre half of the patch. Dark when open."""
    import cv2

    lm = np.asarray(landmarks, dtype=np.float64)
    le, re = lm[LEFT_EYE].mean(axis=0), lm[RIGHT_EYE].mean(axis=0)
    d = float(np.linalg.norm(re - le)) + 1e-6
    angle = math.degrees(math.atan2(re[1] - le[1], re[0] - le[0]))
    c = lm[48:68].mean(axis=0)
    m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), angle, PATCH_W / (1.5 * d))
    m[0, 2] += PATCH_W / 2 - c[0]
    m[1, 2] += PATCH_H / 2 - c[1]
    patch = cv2.warpAffine(gray, m, (PATCH_W, PATCH_H), flags=cv2.INTER_AREA)
    return float(patch[PATCH_H // 4: 3 * PATCH_H // 4, PATCH_W // 4: 3 * PATCH_W // 4].mean())


def _highpass(x: np.ndarray, size: int) -> np.ndarray:
    if size < 3:
        return x
    return x - uniform_filter1d(x, size, axis=0, mode="nearest")


# --------------------------------------------------------------------------------------------------
# the sync curve
# --------------------------------------------------------------------------------------------------
def _cv_predict(X: np.ndarray, Y: np.ndarray, alpha: float, folds: int) -> np.ndarray:
    """Ridge predictions of Y (n, k) from X (n, f), each block predicted by a model fitted on the others."""
    n = len(Y)
    pred = np.zeros_like(Y)
    edges = np.linspace(0, n, folds + 1).astype(int)
    eye = alpha * np.eye(X.shape[1])
    for lo, hi in zip(edges[:-1], edges[1:]):
        train = np.ones(n, bool)
        train[lo:hi] = False
        mx, sx = X[train].mean(0), X[train].std(0) + 1e-8
        Xt = (X[train] - mx) / sx
        my = Y[train].mean(0)
        w = np.linalg.solve(Xt.T @ Xt + eye, Xt.T @ (Y[train] - my))
        pred[lo:hi] = (X[lo:hi] - mx) / sx @ w + my
    return pred


def _column_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a * a).sum(0) * (b * b).sum(0))
    return np.where(den > 1e-12, (a * b).sum(0) / np.maximum(den, 1e-12), 0.0)


def _prepare(mouth: np.ndarray, audio_feats: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """High-passed, standardised mouth signals (T, k) and audio features (T, F), and the usable rows."""
    M = np.asarray(mouth, dtype=np.float64)
    if M.ndim == 1:
        M = M[:, None]
    T = len(M)
    ok = np.all(np.isfinite(M), axis=1)
    fill = np.nanmean(M[ok], axis=0) if ok.any() else np.zeros(M.shape[1])
    M = np.where(np.isfinite(M), M, fill)
    size = max(3, int(round(HIGHPASS_SECONDS * fps)) | 1)
    M = _highpass(M, size)
    A = _highpass(np.asarray(audio_feats, dtype=np.float64)[:T], size)
    M = (M - M.mean(0)) / (M.std(0) + 1e-8)
    A = (A - A.mean(0)) / (A.std(0) + 1e-8)
    return M, A, ok


def lags_for(fps: float, max_offset_seconds: float = MAX_OFFSET_SECONDS) -> np.ndarray:
    """Audio lags (frames) searched: every frame within +-max_offset_seconds."""
    n = max(1, int(round(max_offset_seconds * fps)))
    return np.arange(-n, n + 1)


def sync_curve(mouth: np.ndarray, audio_feats: np.ndarray, fps: float, max_offset: int | None = None,
               context: int = AUDIO_CONTEXT, alpha: float = RIDGE_ALPHA, folds: int = CV_FOLDS,
               rows: np.ndarray | None = None, return_pred: int | str | None = None):
    """Cross-validated audio->mouth correlation for each audio lag k in -max_offset..max_offset
    (default: `MAX_OFFSET_SECONDS` at this fps).

    `mouth` is (T,) or (T, k) with NaN where no face was found; `audio_feats` is (T, F), frame-aligned.
    Lag k predicts mouth[t] from audio frames t+k-context .. t+k+context (zero past the ends). `rows`
    (bool, T) restricts the fit to some frames (voiced ones). With k mouth signals the curve holds the
    best of their k correlations. Index j of the result is lag j - max_offset; the SyncNet offset is
    -(lag). With `return_pred=lag` (or "best": the lag of the curve's maximum), also returns (rows used,
    held-out prediction, target) at that lag.
    """
    M, A, ok = _prepare(mouth, audio_feats, fps)
    T = len(M)
    if rows is not None:
        ok = ok & np.asarray(rows, bool)[:T]
    max_offset = int(lags_for(fps)[-1]) if max_offset is None else int(max_offset)
    reach = max_offset + context
    padded = np.concatenate([np.zeros((reach, A.shape[1])), A, np.zeros((reach, A.shape[1]))])
    taps = np.arange(-context, context + 1)
    idx = np.arange(T)[ok]
    curve = np.zeros(2 * max_offset + 1)
    if len(idx) < 2 * folds:
        return (curve, None) if return_pred is not None else curve
    y = M[idx]
    extra = None
    for j, lag in enumerate(range(-max_offset, max_offset + 1)):
        X = padded[idx[:, None] + reach + lag + taps[None, :]].reshape(len(idx), -1)
        pred = _cv_predict(X, y, alpha, folds)
        curve[j] = float(np.max(_column_corr(pred, y)))
        if return_pred == lag or (return_pred == "best" and curve[j] >= curve[: j + 1].max()):
            extra = (idx, pred, y)
    return (curve, extra) if return_pred is not None else curve


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


def clear_peak(curve: np.ndarray, confidence: float, threshold: float = PEAK_MIN_GAIN) -> str | None:
    """Why the curve's best lag is not a trustworthy offset (None when it is): a peak on the edge of
    the searched range (the true one may lie beyond it) or one that does not rise above the curve's
    median by `threshold` (a flat curve: no lag lines the mouth up with the audio)."""
    best = int(np.argmax(curve))
    if best == 0 or best == len(curve) - 1:
        return f"{NO_PEAK} (best lag at the edge of the +-{(len(curve) - 1) // 2}-frame search)"
    if not np.isfinite(confidence) or confidence < threshold:
        return f"{NO_PEAK} (peak {confidence:.2f} above the median, needs {threshold:g})"
    return None


def local_sync_series(idx: np.ndarray, pred: np.ndarray, target: np.ndarray, n_frames: int, fps: float,
                      seconds: float = SERIES_SECONDS) -> list[float | None]:
    """Sync over time: correlation of the held-out audio prediction with the mouth signal in a window
    of `seconds` centred on each frame (best of the mouth signals); None where the window holds fewer
    than half its frames of voiced, faced video."""
    half = max(2, int(round(seconds * fps / 2)))
    out: list[float | None] = [None] * n_frames
    pos = np.searchsorted(idx, np.arange(n_frames))
    for t in range(n_frames):
        lo, hi = np.searchsorted(idx, t - half), np.searchsorted(idx, t + half + 1)
        if hi - lo < half or not (pos[t] < len(idx) and idx[pos[t]] == t):
            continue
        c = _column_corr(pred[lo:hi], target[lo:hi])
        out[t] = float(np.max(c))
    return out


# --------------------------------------------------------------------------------------------------
# the metric
# --------------------------------------------------------------------------------------------------
def still_mouth(opening: np.ndarray) -> str | None:
    """The reason lip-sync is undefined when the lip opening (over the eye distance, faced frames only)
    spreads less than `STATIC_MOUTH` (5th to 95th percentile): a still image, held or panned, whose
    landmark jitter would otherwise correlate with the audio by chance. None when the mouth moves."""
    opening = np.asarray(opening, dtype=np.float64)
    opening = opening[np.isfinite(opening)]
    if opening.size == 0:
        return None
    spread = float(np.percentile(opening, 95) - np.percentile(opening, 5))
    if spread >= STATIC_MOUTH:
        return None
    return (f"{NO_MOUTH_MOTION} (the lip opening varies by {spread:.3f} of the eye distance, speech moves it by "
            f"{STATIC_MOUTH:g} or more; a still or panned image has no lip motion to sync)")


def score_sync(mouth: np.ndarray, samples_16k: np.ndarray, fps: float,
               max_offset_seconds: float = MAX_OFFSET_SECONDS, threshold: float = PEAK_MIN_GAIN) -> dict:
    """The offline lip-sync scores of one clip from its per-frame mouth signals (T, k) (NaN rows: no
    face) and its audio (16 kHz mono). Returns {"offset", "confidence", "reasons", "series", "curve",
    "lags"}; offset and confidence are None, with a one-line reason per score, when the inputs
    cannot support them. Shared by the metric and benchmarks/bench_lipsync.py."""
    M = np.asarray(mouth, dtype=np.float64)
    M = M[:, None] if M.ndim == 1 else M
    T = len(M)
    out: dict = {"offset": None, "confidence": None, "reasons": {}, "series": None, "curve": None, "lags": None}

    def null(why: str) -> dict:
        out["reasons"] = {"sync_offset": why, "sync_confidence": why}
        return out

    if fps < MIN_FPS:
        return null(f"video is {fps:g} fps; lip motion (4-6 syllables/s) needs at least {MIN_FPS:g} fps")
    faced = np.all(np.isfinite(M), axis=1)
    if faced.sum() / fps < MIN_FACE_SECONDS:
        return null(f"only {int(faced.sum())} of {T} frames ({faced.sum() / fps:.1f} s) show a face with landmarks; "
                    f"lip-sync needs at least {MIN_FACE_SECONDS:g} s of a visible, roughly frontal face")
    why = still_mouth(M[faced, 0])
    if why:
        return null(why)
    n_audio = int(math.ceil(len(samples_16k) / SAMPLE_RATE * fps))
    feats = speech_band_features(samples_16k, fps, max(T, n_audio, 1))[:T]
    voiced = voiced_frames(feats)
    usable = voiced & faced
    if usable.sum() / fps < MIN_VOICED_SECONDS:
        return null(f"only {usable.sum() / fps:.1f} s of voiced audio ({len(samples_16k) / SAMPLE_RATE:.1f} s of audio "
                    f"in all) overlaps {T / fps:.1f} s of video with a face; lip-sync needs {MIN_VOICED_SECONDS:g} s")
    # frames near speech: the voiced ones widened by half the searched lag, so every lag sees the same rows
    lags = lags_for(fps, max_offset_seconds)
    near = binary_dilation(voiced, iterations=max(1, len(lags) // 4)) & faced
    curve, extra = sync_curve(M, feats, fps, int(lags[-1]), rows=near, return_pred="best")
    offset, conf = offset_and_confidence(curve)
    out.update(confidence=conf, curve=curve, lags=lags)
    if extra is not None:
        out["series"] = local_sync_series(*extra, n_frames=T, fps=fps)
    why = clear_peak(curve, conf, threshold)
    if why:
        out["reasons"]["sync_offset"] = why
    else:
        out["offset"] = float(offset)
    return out


class LipSync(Metric):
    """Audio-visual synchronisation of the main face's mouth with the speech track."""

    name = "lipsync"
    # 2: mouth-ridge backend (lip opening + mouth brightness, voiced frames, lags in seconds, nulls);
    # 3: no score without mouth motion (STATIC_MOUTH 0.02 -> 0.04, both backends): a panned still is not in sync
    version = "3"
    requires = frozenset({"audio"})
    scores = (
        ScoreSpec("sync_offset", None, f"[-{MAX_OFFSET}, {MAX_OFFSET}] frames (+-{MAX_OFFSET_SECONDS:g} s)",
                  "audio-video offset at the best match, frames; positive = audio leads video, 0 = in sync; null "
                  "when no lag stands out (no clear audio-visual sync peak)",
                  "SyncNet offset (Chung & Zisserman 2016)"),
        ScoreSpec("sync_confidence", True, f"{OFFLINE_BACKEND}: [0, 2], in sync above {SYNC_THRESHOLD:g}; "
                  f"{LEARNED_BACKEND}: [0, ~12]",
                  f"how much better the best offset matches than a typical one ({OFFLINE_BACKEND}: CV correlation "
                  f"gain over the median lag, own vs foreign audio separated at {SYNC_THRESHOLD:g}; "
                  f"{LEARNED_BACKEND}: LSE-C)",
                  "SyncNet confidence (Chung & Zisserman 2016); LSE-C (Prajwal et al. 2020, Wav2Lip)"),
        ScoreSpec("lse_d", False, "[0, ~15]", "SyncNet embedding distance at the best offset (syncnet_v2 only)",
                  "LSE-D (Prajwal et al. 2020, Wav2Lip)"),
        ScoreSpec("lse_c", True, "[0, ~12]", "SyncNet confidence: median minus minimum distance (syncnet_v2 only)",
                  "LSE-C (Prajwal et al. 2020, Wav2Lip)"),
    )
    # listed by `workbench metrics`; measured by benchmarks/bench_lipsync.py (asserted by a slow test)
    calibration = {"backend": OFFLINE_BACKEND, "score": "sync_confidence", "threshold": SYNC_THRESHOLD,
                   "auc_own_vs_foreign": 0.985, "dev_set": "15 real clips (talking/ + talking_wild/), "
                   "15 own and 210 foreign clip-audio pairs", "measured_by": "benchmarks/bench_lipsync.py"}

    def __init__(self, syncnet_weights: str | Path | None = None, backend: str = "auto",
                 max_offset_seconds: float = MAX_OFFSET_SECONDS, device: str = "cpu"):
        """backend: "auto" (SyncNet when its weights are found, else landmarks), "syncnet" or "landmarks"."""
        from workbench.metrics.syncnet import WEIGHTS_ENV, resolve_weights

        if backend not in ("auto", "syncnet", "landmarks"):
            raise ValueError(f"lipsync backend must be auto, syncnet or landmarks, got {backend!r}")
        self.max_offset_seconds = float(max_offset_seconds)
        self.device = device
        self.requested = backend
        self.weights = resolve_weights(syncnet_weights)
        self._missing: str | None = None  # why an explicitly requested SyncNet cannot run
        self._use_syncnet = backend != "landmarks" and self.weights is not None and self.weights.is_file()
        if self.weights is not None and not self.weights.is_file() and backend != "landmarks":
            if backend == "syncnet":
                self._missing = f"SyncNet weights not found at {self.weights}; pass syncnet_weights= an existing syncnet_v2.model"
            else:
                warnings.warn(f"lipsync: SyncNet weights not found at {self.weights}; using '{OFFLINE_BACKEND}'",
                              stacklevel=2)
        if backend == "syncnet" and self.weights is None:
            self._missing = f"SyncNet backend asked for but no weights given; set {WEIGHTS_ENV} to syncnet_v2.model"
        # the learned-only scores, when SyncNet does not run, are labelled by what they lack (not the offline backend)
        self.score_backends = {} if self._use_syncnet else {
            "lse_d": f"{LEARNED_BACKEND} (weights missing)", "lse_c": f"{LEARNED_BACKEND} (weights missing)"}

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
        self.fps = float(inputs.video.fps)
        if not self._use_syncnet and self.fps < MIN_FPS:
            raise MetricUnavailable(f"video is {self.fps:g} fps; lip motion (4-6 syllables/s) needs at least "
                                    f"{MIN_FPS:g} fps")
        from workbench.faces import dlib_available

        if not dlib_available():
            raise MetricUnavailable("lip-sync needs dlib face landmarks; run `pip install dlib-bin face-recognition-models`")
        self._samples = audio.resample(SAMPLE_RATE).samples
        self._mouth: list[tuple[float, float]] = []
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
            self._scorer.start(self._samples)

    def update(self, step: FrameStep) -> None:
        face = step.face
        if face is None:
            self._mouth.append((math.nan, math.nan))
        else:  # SyncNet reads only the lip opening (to count faced frames): the brightness is the offline signal
            bright = math.nan if self._scorer is not None else mouth_patch_brightness(step.gray, face.landmarks)
            self._mouth.append((mouth_opening(face.landmarks), bright))
        if self._scorer is not None:  # crops come from the analysis frame, where the landmarks live
            self._scorer.add(step.frame, None if face is None else face.landmarks)

    def finish(self) -> dict[str, float | None]:
        mouth = np.asarray(self._mouth, dtype=np.float64).reshape(-1, 2)
        if self._scorer is not None:
            faced = int(np.isfinite(mouth[:, 0]).sum())
            if faced / self.fps < MIN_FACE_SECONDS:
                raise MetricUnavailable(
                    f"only {faced} of {len(mouth)} frames ({faced / self.fps:.1f} s) show a face with landmarks; "
                    f"lip-sync needs at least {MIN_FACE_SECONDS:g} s of a visible, roughly frontal face")
            why = still_mouth(mouth[:, 0])
            if why:  # SyncNet's LSE-C on a still mouth is a number about nothing too
                raise MetricUnavailable(why)
            try:
                s = self._scorer.finish()
            except ValueError as e:
                raise MetricUnavailable(f"SyncNet: {e}") from None
            return {"sync_offset": s["offset"], "sync_confidence": s["lse_c"], "lse_d": s["lse_d"], "lse_c": s["lse_c"]}
        r = score_sync(mouth, self._samples, self.fps, self.max_offset_seconds)
        self.curve = r["curve"]  # kept for plots / inspection
        if r["series"] is not None:
            self.series = {"sync_confidence": r["series"]}
        if self.weights is not None and not self.weights.is_file():
            why = f"SyncNet weights not found at {self.weights}; set WORKBENCH_SYNCNET_WEIGHTS to an existing syncnet_v2.model"
        else:
            why = f"needs SyncNet weights: set WORKBENCH_SYNCNET_WEIGHTS to syncnet_v2.model ({OFFLINE_BACKEND} gives sync_offset and sync_confidence only)"
        self.reasons = {"lse_d": why, "lse_c": why, **r["reasons"]}
        return {"sync_offset": r["offset"], "sync_confidence": r["confidence"], "lse_d": None, "lse_c": None}


METRICS = [LipSync]
