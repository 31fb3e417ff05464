"""Lip-sync: does the mouth move with the speech, and at what audio-video offset?

Two backends, one metric group ("lipsync"):

- ``syncnet_v2`` (learned, the reference): SyncNet (Chung & Zisserman 2016) as in Wav2Lip's
  evaluation, giving LSE-D / LSE-C and the offset; used when the weights are given
  (``syncnet_weights=`` or $WORKBENCH_SYNCNET_WEIGHTS). See `workbench.metrics.syncnet`.
- ``mouth-ridge`` (offline, no weights), version 6. Every face in the shot is followed
  (`workbench.metrics.lipsync_speakers.FaceTracks`, full resolution, small faces included) with two
  mouth signals per frame (inner-lip opening over the eye distance; brightness of the mouth's inside,
  cut out level and scaled to the eyes), each taken twice: band-passed, and that whitened over
  `WHITEN_SECONDS` (`mouth_views`: the movements' onsets, which pin the lag of rhythmic speech).
  Frames are placed at their packet timestamps on the soundtrack's clock (variable frame rate, a video
  stream that starts after its audio), and resampled to a regular grid when the rate varies. The audio is log energies of speech bands (`SPEECH_BANDS_HZ`)
  on a 10 ms grid, averaged over each frame's time; voice activity picks the frames near speech. A map
  fitted across the dev set (`lipsync_model.py`, written by `benchmarks/bench_lipsync.py --fit`;
  without it a ridge fitted on the clip with blocked cross-validation) predicts the mouth from the audio
  frames around each lag within +-`MAX_OFFSET_SECONDS`; its correlation with each face's mouth is
  summed over `WINDOW_SECONDS` windows. In each window the speaking face is the one whose mouth
  follows the audio best (speakers take turns; a split screen is two faces); the clip's sync curve is
  the speaking faces' pooled correlation per lag, the offset its best lag. `sync_confidence` is how
  many standard deviations the curve's best correlation stands above the best correlation of the same
  search with the audio circularly shifted beyond it (`NULL_SHIFTS` shifts: the clip's own no-sync
  distribution; the best of each null search, so a rhythmic mouth that matches any speech at some lag
  is not taken for sync). Digital silence in the audio (padding, a muted lead-in) is raised to the
  recording's quiet level first (`floor_silence`). The interval is the 5th-95th percentile of the best lag over `BOOTSTRAP` resamples
  of the windows.

Abstain rule: `sync_offset` is null ("no clear audio-visual sync peak") when the best lag is at the edge
of the search or `sync_confidence` is below `MIN_NULL_Z`, the level at which 5% of foreign clip-audio
pairs of the dev set get an offset (fitted leave-one-clip-out by the benchmark; its measured
false-offset rate is in the README). A face that leaves the frame is a gap in its signals, not a sync
error. Offsets follow SyncNet's sign (positive = audio leads video; delaying the audio by k frames
moves the offset by -k), in frames of the clip (the median frame gap) and in milliseconds.

A score is only given when the inputs can support one; otherwise it is null with the reason:
fewer than `MIN_FPS` frames per second or `MIN_FACE_SECONDS` of visible face, a mouth that does not
move (`NO_MOUTH_MOTION`), less than `MIN_VOICED_SECONDS` of voiced audio overlapping the video.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation, uniform_filter1d

from workbench.faces import mouth_opening
from workbench.media import MediaError, clip_frame_times
from workbench.metrics.base import EvalInputs, FrameStep, Metric, MetricUnavailable, ScoreSpec
from workbench.metrics.lipsync_speakers import FaceTracks, face_label

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
SYNC_THRESHOLD = 3.5  # sync_confidence (null z) above it: the clip's own audio, below: foreign (dev set, bench_lipsync.py:
# balanced accuracy flat from 3.5 to 4.4, 94.5-94.9% in-sample; the low end keeps a margin to the weakest own clip, 4.5)
HIGHPASS_SECONDS = 0.45
RIDGE_ALPHA = 10.0
CV_FOLDS = 5
OFFLINE_BACKEND = "mouth-ridge"
LEARNED_BACKEND = "syncnet_v2"
NO_PEAK = "no clear audio-visual sync peak"


# --------------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------------
def sounding(total_log_energy: np.ndarray) -> np.ndarray:
    """Which frames hold any sound at all: log energy above digital silence (log 1e-8) by 1 neper."""
    return np.asarray(total_log_energy) > np.log(1e-8) + 1.0


def voiced_frames(audio_feats: np.ndarray, level: float = VOICE_LEVEL) -> np.ndarray:
    """Speech activity per video frame: total log energy (last column) above the clip's quiet floor
    (10th percentile) by `level` of the way to its loud level (95th percentile). Frames past the end
    of the audio (digital silence, or the track's floor) are never voiced."""
    total = np.asarray(audio_feats, dtype=np.float64)[:, -1]
    real = sounding(total)
    if not real.any():
        return np.zeros(len(total), bool)
    floor, loud = np.percentile(total[real], 10), np.percentile(total[real], 95)
    if loud - floor < 1.0:  # under 1 neper (~4 dB) of dynamics: no speech rhythm to find
        return np.zeros(len(total), bool)
    return real & (total > floor + level * (loud - floor))


def _highpass(x: np.ndarray, size: int) -> np.ndarray:
    if size < 3:
        return x
    return x - uniform_filter1d(x, size, axis=0, mode="nearest")


def lags_for(fps: float, max_offset_seconds: float = MAX_OFFSET_SECONDS) -> np.ndarray:
    """Audio lags (frames) searched: every frame within +-max_offset_seconds."""
    n = max(1, int(round(max_offset_seconds * fps)))
    return np.arange(-n, n + 1)


# --------------------------------------------------------------------------------------------------
# the sync analysis: frame times, time windows, several faces
# --------------------------------------------------------------------------------------------------
SPEECH_BANDS_HZ = (80, 300, 800, 1600, 3200, 7600)  # voice bands (F0 up to the fricatives); measured better than from 300 Hz
HOP_SECONDS = 0.01
WINDOW_SECONDS = 2.0  # time windows of the offset's interval and of the speaker search
BOOTSTRAP = 200
MIN_AGREEMENT = 0.5  # clips too short for the null: offset given when this share of window resamples agree (+-1)
MIN_TRACK_SECONDS = 1.0  # a face seen for less than this does not compete for the speaker
SIGNAL_SIGNS = np.array([1.0, -1.0])  # opening grows, brightness falls, as the mouth opens
LOWPASS_SECONDS = 0.04  # Gaussian sigma of the mouth signals' low-pass
MIN_NULL_Z = 2.5  # abstain rule: 5% of foreign pairs get an offset (bench_lipsync.py: 2.52 on all 20 clips, 2.34..2.50 held out)
NULL_GAP_SECONDS = 0.5  # null shifts reach this far beyond the search (a syllable or two)
SILENCE_FLOOR_PERCENTILE = 5  # digital silence is raised to this percentile of each band's hops with sound
NULL_SHIFTS = 24  # audio shifts beyond the search: the clip's own no-sync distribution of the confidence
WHITEN_SECONDS = 0.3  # reach of the prediction-error filter of the mouth's whitened view (AR order at 25 fps: 8)


def audio_band_track(samples_16k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hop centre times (s), log energies (n, B), their running sum (n + 1, B)) on a 10 ms grid, 25 ms
    Hann windows: the bands of `SPEECH_BANDS_HZ`, then the energy of the whole speech range."""
    x = np.asarray(samples_16k, dtype=np.float64)
    win, hop, nfft = 400, 160, 512
    n = 1 + max(0, (len(x) - win) // hop)
    x = np.concatenate([x, np.zeros(win)])
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * np.hanning(win), nfft)) ** 2
    freqs = np.fft.rfftfreq(nfft, 1.0 / SAMPLE_RATE)
    bands = [power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in zip(SPEECH_BANDS_HZ[:-1], SPEECH_BANDS_HZ[1:])]
    speech = power[:, (freqs >= SPEECH_BANDS_HZ[0]) & (freqs < SPEECH_BANDS_HZ[-1])].sum(axis=1)
    logs = floor_silence(np.log(np.stack([*bands, speech], axis=1) + 1e-8))
    return (np.arange(n) * hop + win / 2) / SAMPLE_RATE, logs, np.concatenate([np.zeros((1, logs.shape[1])),
                                                                              np.cumsum(logs, axis=0)])


def floor_silence(logs: np.ndarray) -> np.ndarray:
    """Log band energies (n, B) raised to each band's `SILENCE_FLOOR_PERCENTILE` over the hops that hold
    sound: digital silence (zero padding, a muted lead-in, audio shorter than the video) sits at the
    recording's own quiet level instead of log 1e-8, ~20 nepers below it, a step that would outweigh every
    syllable once the features are standardised."""
    real = sounding(logs[:, -1])
    if not real.any():
        return logs
    return np.maximum(logs, np.percentile(logs[real], SILENCE_FLOOR_PERCENTILE, axis=0))


def features_at(track: tuple[np.ndarray, np.ndarray], times: np.ndarray, period: float) -> np.ndarray:
    """Mean of the 10 ms band log energies whose centres fall within +-period/2 of each time (outside
    the audio: the track's floor, see `floor_silence`): the audio of a frame shown at `times`."""
    centres, logs, cs = track
    silent = logs.min(axis=0) if len(logs) else np.log(1e-8)  # outside the audio: the track's floor
    if len(centres) == 0:
        return np.full((len(times), logs.shape[1] if logs.ndim == 2 else 1), silent)
    c0 = centres[0]
    lo = np.clip(np.ceil((times - period / 2 - c0) / HOP_SECONDS - 1e-9).astype(int), 0, len(centres))
    hi = np.clip(np.floor((times + period / 2 - c0) / HOP_SECONDS - 1e-9).astype(int) + 1, 0, len(centres))
    hi = np.maximum(hi, lo)
    cnt = (hi - lo)[:, None]
    out = np.where(cnt > 0, (cs[hi] - cs[lo]) / np.maximum(cnt, 1), silent)
    return out


def _standardised(x: np.ndarray) -> np.ndarray:
    """Columns at zero mean and unit variance (a constant column stays at zero)."""
    return (x - x.mean(0)) / (x.std(0) + 1e-8)


def _highpass_size(rate: float) -> int:
    """The high-pass box of `HIGHPASS_SECONDS` in frames at `rate`: odd, at least 3."""
    return max(3, int(round(HIGHPASS_SECONDS * rate)) | 1)


def _prep_signal(x: np.ndarray, size: int, smooth: float = 0.0) -> np.ndarray:
    """Band-passed, standardised columns (NaN rows filled with the column mean first): high-passed over
    `size` frames, low-passed by a Gaussian of `smooth` frames (frame-to-frame flicker of landmarks and
    of the codec's frame types is no lip motion)."""
    from scipy.ndimage import gaussian_filter1d

    x = np.asarray(x, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    ok = np.all(np.isfinite(x), axis=1)
    fill = np.nanmean(x[ok], axis=0) if ok.any() else np.zeros(x.shape[1])
    x = _highpass(np.where(np.isfinite(x), x, fill), size)
    if smooth > 0:
        x = gaussian_filter1d(x, smooth, axis=0, mode="nearest")
    return _standardised(x)


def whitened(x: np.ndarray, order: int) -> np.ndarray:
    """Each column (T, S) through its own Yule-Walker AR(`order`) prediction-error filter, standardised:
    what the signal's past does not predict. A mouth that opens and closes at the speech's own rhythm
    correlates with the audio at every syllable's lag (a curve of broad, repeating peaks); its
    innovations mark when each movement starts, so only the true lag lines them up."""
    from scipy.linalg import solve_toeplitz

    x = np.asarray(x, np.float64)
    n = len(x)
    out = np.zeros_like(x)
    order = int(min(order, n // 4))
    for c in range(x.shape[1]):
        v = x[:, c] - x[:, c].mean()
        r = np.array([v[: n - k] @ v[k:] for k in range(order + 1)]) / max(n, 1)
        if order < 1 or r[0] <= 1e-12:
            out[:, c] = v
            continue
        a = solve_toeplitz(r[:order], r[1: order + 1])
        e = v.copy()
        for i, ai in enumerate(a, 1):
            e[i:] -= ai * v[:-i]
        out[:, c] = e
    return _standardised(out)


def mouth_views(M: np.ndarray, size: int, rate: float) -> np.ndarray:
    """The mouth signals (T, S) of one face as the regression's targets (T, 2 S): each band-passed
    (`_prep_signal`, signed so that all grow as the mouth opens), then the same again whitened over
    `WHITEN_SECONDS` (`whitened`). Their correlations are averaged: the smooth view carries slow,
    low-detail mouths (a sad, quiet speaker), the whitened one sharpens the peak of rhythmic speech."""
    M = np.asarray(M)
    smooth = _prep_signal(M * SIGNAL_SIGNS[: M.shape[-1]], size, LOWPASS_SECONDS * rate)
    return np.concatenate([smooth, whitened(smooth, max(2, int(round(WHITEN_SECONDS * rate))))], axis=1)


def _turns(speaker: np.ndarray, bounds: list[tuple[float, float]]) -> list[dict]:
    out: list[dict] = []
    for s, (a, b) in zip(speaker, bounds):
        if s < 0:
            continue
        if out and out[-1]["face"] == int(s) and abs(out[-1]["end"] - a) < 1e-6:
            out[-1]["end"] = b
        else:
            out.append({"face": int(s), "start": float(a), "end": float(b)})
    return out


def _cv_predict_lags(X: np.ndarray, Y: np.ndarray, alpha: float, folds: int) -> np.ndarray:
    """Ridge predictions of Y (n, S) from X (L, n, F) for every lag at once, each of `folds` blocks predicted by
    a model fitted on the others (held-out predictions): (L, n, S)."""
    L_, n, F = X.shape
    pred = np.zeros((L_, n, Y.shape[1]))
    edges = np.linspace(0, n, folds + 1).astype(int)
    eye = alpha * np.eye(F)
    for lo, hi in zip(edges[:-1], edges[1:]):
        train = np.ones(n, bool)
        train[lo:hi] = False
        Xtr = X[:, train]
        mx, sx = Xtr.mean(axis=1, keepdims=True), Xtr.std(axis=1, keepdims=True) + 1e-8
        Xt = (Xtr - mx) / sx
        my = Y[train].mean(axis=0)
        G = np.einsum("lnf,lng->lfg", Xt, Xt) + eye
        rhs = np.einsum("lnf,ns->lfs", Xt, Y[train] - my)
        w = np.linalg.solve(G, rhs)
        pred[:, lo:hi] = np.einsum("lnf,lfs->lns", (X[:, lo:hi] - mx) / sx, w) + my
    return pred


def _design(track, t: np.ndarray, period: float, lag_steps: np.ndarray, size: int, context: int) -> np.ndarray:
    """The audio seen from each frame at each lag: (L, T, (2 context + 1) x B) band-passed, standardised
    log band energies of the frames lag - context .. lag + context."""
    reach = np.arange(lag_steps[0] - context, lag_steps[-1] + context + 1)
    feats = np.stack([_prep_signal(features_at(track, t + j * period, period), size) for j in reach])
    width = 2 * context + 1
    return np.stack([np.concatenate(list(feats[i:i + width]), axis=1) for i in range(len(lag_steps))])


def _window_stats(M: np.ndarray, faced: np.ndarray, moving: list[int], X: np.ndarray, near: np.ndarray,
                  win_of: np.ndarray, W: int, model: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Per face k, window w, lag j and mouth signal s the sums (xy, xx, yy) of the predicted mouth x and
    the signal y (both centred over the face's rows): stats (K, W, L, S, 3), rows per window (K, W).

    With a `model` (the audio->mouth map fitted across clips) the prediction is that map's; without,
    a ridge regression fitted on this clip with blocked cross-validation (held-out predictions)."""
    K, L, S = M.shape[0], X.shape[0], M.shape[2]
    stats = np.zeros((K, W, L, S, 3))
    counts = np.zeros((K, W))
    for k in moving:
        idx = np.flatnonzero(near & faced[k])
        if len(idx) < 2 * CV_FOLDS:
            continue
        y = M[k][idx]
        yc = y - y.mean(axis=0)
        if model is not None:
            pred = X[:, idx] @ model["W"]  # (L, n, S): the columns of this clip's views (`analyse_sync`)
            x = pred - pred.mean(axis=1, keepdims=True)
        else:
            c = X.shape[2] // len(SPEECH_BANDS_HZ) // 2  # the lag's own frame only
            Xl = X[:, idx, c * len(SPEECH_BANDS_HZ):(c + 1) * len(SPEECH_BANDS_HZ)]
            pred = _cv_predict_lags(Xl, y, RIDGE_ALPHA, CV_FOLDS)  # (L, n, S)
            # the mouth opens with the sound (and its inside darkens: the brightness enters negated): a fit
            # whose speech energy runs against the signal is a half-syllable alias, counted as a negative match
            energy = Xl[:, :, -1] - Xl[:, :, -1].mean(axis=1, keepdims=True)  # (L, n)
            sign = np.sign(np.einsum("ln,ns->ls", energy, yc))  # (L, S)
            x = (pred - pred.mean(axis=1, keepdims=True)) * sign[:, None, :]
        onehot = np.zeros((len(idx), W))
        onehot[np.arange(len(idx)), win_of[idx]] = 1.0
        counts[k] = onehot.sum(axis=0)
        stats[k, :, :, :, 0] = np.einsum("nw,lns->wls", onehot, x * yc[None])
        stats[k, :, :, :, 1] = np.einsum("nw,lns->wls", onehot, x * x)
        stats[k, :, :, :, 2] = np.einsum("nw,ns->ws", onehot, yc * yc)[:, None, :]
    return stats, counts


def _map_columns(W: np.ndarray, targets: int) -> np.ndarray:
    """The map's columns for `targets` mouth views: the first `targets` / 2 signals of each view (a
    clip with the lip opening only uses the opening's smooth and whitened columns)."""
    if W.shape[1] == targets:
        return W
    half, per = W.shape[1] // 2, targets // 2
    return np.concatenate([W[:, :per], W[:, half: half + per]], axis=1)


def _pooled_corr(stats: np.ndarray) -> np.ndarray:
    """Correlation from summed (xy, xx, yy) over the leading window axis: (..., L, S, 3) -> (..., L), mean
    over the mouth signals."""
    den = np.sqrt(np.maximum(stats[..., 1] * stats[..., 2], 1e-18))
    r = stats[..., 0] / den
    return np.mean(r, axis=-1)


def _sync_core(M: np.ndarray, faced: np.ndarray, moving: list[int], track, t: np.ndarray, period: float,
               lag_steps: np.ndarray, size: int, voiced: np.ndarray, edges: np.ndarray, min_rows: int,
               model: dict | None = None):
    """(curve (L,), speaker per window (W,), window stats of the speaking faces (W', L, S, 3), local
    correlation per face and window (K, W, L)) for one audio track; None when no window holds enough rows."""
    X = _design(track, t, period, lag_steps, size, 0 if model is None else int(model["context"]))
    near = binary_dilation(voiced, iterations=max(1, len(lag_steps) // 4))
    W = len(edges) - 1
    win_of = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, W - 1)
    stats, counts = _window_stats(M, faced, moving, X, near, win_of, W, model)
    valid = counts >= min_rows  # (K, W)
    if not valid.any():
        return None
    local = _pooled_corr(stats)  # (K, W, L): each window on its own

    def pick(score: np.ndarray) -> np.ndarray:
        who = np.argmax(np.where(valid, score, -np.inf), axis=0)
        return np.where(valid.any(axis=0), who, -1)

    speaker = pick(local.max(axis=2))  # lag-agnostic first pass
    ws = np.flatnonzero(speaker >= 0)
    curve = _pooled_corr(stats[speaker[ws], ws].sum(axis=0))
    j = int(np.argmax(curve))
    band = slice(max(0, j - 1), min(len(lag_steps), j + 2))
    speaker = pick(local[:, :, band].mean(axis=2))  # then near the clip's best lag
    ws = np.flatnonzero(speaker >= 0)
    sel = stats[speaker[ws], ws]
    return _pooled_corr(sel.sum(axis=0)), speaker, sel, local


def uniform_grid(M: np.ndarray, t: np.ndarray, period: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signals (K, T, S) shown at times `t`, on a regular grid of `period` from t[0]: (signals (K, G, S),
    grid times (G,), grid index of each frame (T,)). A constant-rate clip is returned as it is; a
    variable-frame-rate one (gaps of 33 and 67 ms) is interpolated linearly between its frames, NaN
    where the nearest frame with a face is more than 1.5 periods away."""
    T = len(t)
    if T < 2 or np.all(np.abs(np.diff(t) - period) <= 0.25 * period):
        return M, t, np.arange(T)
    G = int(round((t[-1] - t[0]) / period)) + 1
    tg = t[0] + np.arange(G) * period
    out = np.full((M.shape[0], G, M.shape[2]), np.nan)
    for k in range(M.shape[0]):
        ok = np.all(np.isfinite(M[k]), axis=1)
        if ok.sum() < 2:
            continue
        tk = t[ok]
        pos = np.clip(np.searchsorted(tk, tg), 1, len(tk) - 1)
        near = np.minimum(np.abs(tg - tk[pos - 1]), np.abs(tg - tk[pos]))
        for c in range(M.shape[2]):
            out[k, :, c] = np.interp(tg, tk, M[k, ok, c])
        out[k, near > 1.5 * period] = np.nan
    return out, tg, np.clip(np.round((t - t[0]) / period).astype(int), 0, G - 1)


def default_model() -> dict | None:
    """The audio->mouth map fitted across the dev set (`workbench.metrics.lipsync_model`), or None."""
    try:
        from workbench.metrics.lipsync_model import MODEL
    except ImportError:
        return None
    fits = (tuple(MODEL.get("bands", ())) == tuple(SPEECH_BANDS_HZ) and MODEL.get("whiten_seconds") == WHITEN_SECONDS
            and len(MODEL["W"][0]) == 2 * len(SIGNAL_SIGNS))
    return MODEL if fits else None


def _as_tracks(mouth: np.ndarray) -> np.ndarray:
    M = np.asarray(mouth, dtype=np.float64)
    if M.ndim == 1:
        return M[None, :, None]
    return M[None] if M.ndim == 2 else M


def _clock(T: int, fps: float, times: np.ndarray | None) -> tuple[np.ndarray, float]:
    t = np.arange(T, dtype=np.float64) / fps if times is None else np.asarray(times, np.float64)[:T]
    if len(t) < T:
        t = np.concatenate([t, (t[-1] if len(t) else 0.0) + np.arange(1, T - len(t) + 1) / fps])
    gaps = np.diff(t)
    return t, float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else 1.0 / fps


def training_rows(mouth: np.ndarray, samples_16k: np.ndarray, fps: float, times: np.ndarray | None = None,
                  lag: int = 0, context: int = 2) -> tuple[np.ndarray, np.ndarray] | None:
    """(audio design X (n, (2 context + 1) B), mouth signals y (n, S)) of one face's voiced, faced frames
    at audio lag `lag` (frames): the rows an audio->mouth map is fitted on (`fit_audio_model`)."""
    M = _as_tracks(mouth)[:1]
    t, period = _clock(M.shape[1], fps, times)
    M, t, _ = uniform_grid(M, t, period)
    rate = 1.0 / period
    size = _highpass_size(rate)
    faced = np.all(np.isfinite(M[0]), axis=1)
    if faced.sum() < 20 or still_mouth(M[0, faced, 0]) is not None:
        return None
    Mp = mouth_views(M[0], size, rate)
    track = audio_band_track(samples_16k)
    voiced = voiced_frames(features_at(track, t, period))
    rows = voiced & faced
    if rows.sum() < 20:
        return None
    X = _design(track, t, period, np.array([lag]), size, context)[0]
    return X[rows], Mp[rows]


def fit_audio_model(rows: list[tuple[np.ndarray, np.ndarray]], context: int = 2, alpha: float = 0.1) -> dict:
    """The audio->mouth map shared by all clips: one ridge regression (no intercept: every clip's signals
    are centred and standardised) on the rows of `training_rows`, each clip weighted equally (its mean
    outer products); `alpha` is relative to the features' unit variance."""
    D, S = rows[0][0].shape[1], rows[0][1].shape[1]
    G = np.zeros((D, D))
    R = np.zeros((D, S))
    for X, y in rows:
        G += X.T @ X / len(X)
        R += X.T @ y / len(X)
    W = np.linalg.solve(G / len(rows) + alpha * np.eye(D), R / len(rows))
    return {"W": W.tolist(), "context": int(context), "bands": list(SPEECH_BANDS_HZ), "alpha": alpha,
            "whiten_seconds": WHITEN_SECONDS, "clips": len(rows)}


def analyse_sync(mouth: np.ndarray, samples_16k: np.ndarray, fps: float, times: np.ndarray | None = None,
                 max_offset_seconds: float = MAX_OFFSET_SECONDS, min_agreement: float = MIN_AGREEMENT,
                 null_shifts: int = NULL_SHIFTS, min_null_z: float | None = None, seed: int = 0,
                 model: dict | None | str = "default") -> dict:
    """The offline lip-sync analysis of one clip (see the module doc): every face's mouth signals `mouth`
    (K, T, 2) (or one face: (T, 2) / (T,)), NaN where that face is not seen; its audio (16 kHz mono);
    `times` (T,): when each frame is shown, seconds from the audio's first sample (default index / fps).
    `model`: the audio->mouth map ("default": the one fitted on the dev set; None: a ridge fitted on
    this clip alone, cross-validated).

    Returns {"offset", "offset_ms", "interval", "agreement", "confidence", "null_z", "period",
    "reasons", "series", "speaker_series", "speaker", "turns", "faces", "curve", "lags"}.
    """
    if isinstance(model, str):
        model = default_model()
    M = _as_tracks(mouth)
    T_frames = M.shape[1]
    t, period = _clock(T_frames, fps, times)
    M, t, grid_of = uniform_grid(M, t, period)
    K, T = M.shape[:2]
    rate = 1.0 / period
    out: dict = {"offset": None, "offset_ms": None, "interval": None, "agreement": None, "confidence": None,
                 "null_z": None, "period": period, "reasons": {}, "series": None, "speaker_series": None,
                 "speaker": None, "turns": [], "faces": [], "curve": None, "lags": None}
    names = ("sync_offset", "sync_confidence")

    def null(why: str) -> dict:
        out["reasons"] = {n: why for n in names}
        return out

    if rate < MIN_FPS:
        return null(f"video is {rate:g} fps; lip motion (4-6 syllables/s) needs at least {MIN_FPS:g} fps")
    faced = np.all(np.isfinite(M), axis=2)  # (K, T)
    any_face = faced.any(axis=0)
    if any_face.sum() * period < MIN_FACE_SECONDS:
        return null(f"only {int(any_face.sum())} of {T} frames ({any_face.sum() * period:.1f} s) show a face with landmarks; "
                    f"lip-sync needs at least {MIN_FACE_SECONDS:g} s of a visible, roughly frontal face")
    long_enough = [k for k in range(K) if faced[k].sum() * period >= MIN_TRACK_SECONDS]
    moving = [k for k in long_enough if still_mouth(M[k, faced[k], 0]) is None]
    if not moving:
        k0 = int(np.argmax(faced.sum(axis=1)))
        return null(still_mouth(M[k0, faced[k0], 0]) or f"no face is seen for {MIN_TRACK_SECONDS:g} s at a time")
    size = _highpass_size(rate)
    Mp = np.stack([mouth_views(M[k], size, rate) for k in range(K)])
    if model is not None:  # the map as an array, with the columns of these views: once, not in every search
        model = {**model, "W": _map_columns(np.asarray(model["W"]), Mp.shape[2])}
    lag_steps = lags_for(rate, max_offset_seconds)
    track = audio_band_track(samples_16k)
    voiced = voiced_frames(features_at(track, t, period))
    usable = voiced & any_face
    if usable.sum() * period < MIN_VOICED_SECONDS:
        return null(f"only {usable.sum() * period:.1f} s of voiced audio ({len(samples_16k) / SAMPLE_RATE:.1f} s of audio "
                    f"in all) overlaps {T * period:.1f} s of video with a face; lip-sync needs {MIN_VOICED_SECONDS:g} s")
    t_lo, t_hi = float(t[0]), float(t[-1]) + period
    n_win = max(1, int(round((t_hi - t_lo) / WINDOW_SECONDS)))
    edges = np.linspace(t_lo, t_hi, n_win + 1)
    min_rows = max(8, int(0.25 * (t_hi - t_lo) / n_win * rate))
    core = _sync_core(Mp, faced, moving, track, t, period, lag_steps, size, voiced, edges, min_rows, model)
    if core is None:
        return null(f"no {WINDOW_SECONDS:g}-s window holds {min_rows * period:.1f} s of voiced frames with a moving mouth")
    curve, speaker, sel, local = core
    L = len(lag_steps)
    jbest = int(np.argmax(curve))
    offset = -int(lag_steps[jbest])
    conf = float(curve[jbest] - np.median(curve))
    # interval and agreement: the best lag over resamples of the speaking windows
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(sel), size=(BOOTSTRAP, len(sel)))
    boot_off = -lag_steps[np.argmax(_pooled_corr(sel[draw].sum(axis=1)), axis=1)]
    agreement = float(np.mean(np.abs(boot_off - offset) <= 1))
    interval = (float(np.percentile(boot_off, 5)), float(np.percentile(boot_off, 95)))
    # the same analysis with the audio shifted far beyond the search: what the confidence is without sync
    null_conf = []
    n_samp = len(samples_16k)
    lo_s = int((max_offset_seconds + NULL_GAP_SECONDS) * SAMPLE_RATE)
    if null_shifts and n_samp > 2 * lo_s + SAMPLE_RATE // 2:
        for sh in np.linspace(lo_s, n_samp - lo_s, null_shifts).astype(int):
            rolled = np.roll(samples_16k, sh)
            c = _sync_core(Mp, faced, moving, audio_band_track(rolled), t, period, lag_steps, size, voiced, edges,
                           min_rows, model)
            if c is not None:
                null_conf.append(float(c[0].max()))
    z = None
    if len(null_conf) >= 3:
        z = float((curve[jbest] - np.mean(null_conf)) / (np.std(null_conf) + 1e-3))
    out.update(confidence=z, gain=conf, agreement=agreement, interval=interval, curve=curve, lags=lag_steps, null_z=z)
    if z is None:
        out["reasons"]["sync_confidence"] = (f"the clip ({T * period:.1f} s) is too short to compare with itself with "
                                             f"the audio shifted beyond the search (needs {2 * (max_offset_seconds + NULL_GAP_SECONDS) + 0.5:.1f} s)")
    # which face speaks, and when
    W = len(edges) - 1
    spoke = np.bincount(speaker[speaker >= 0], minlength=K)
    out["faces"] = [{"face": k, "frames": int(faced[k].sum()), "speaking_windows": int(spoke[k])} for k in range(K)]
    out["turns"] = _turns(speaker, list(zip(edges[:-1], edges[1:])))
    out["speaker"] = int(np.argmax(spoke))
    win_of_t = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, W - 1)
    sp_t = speaker[win_of_t]
    sp_series = [None if s < 0 or not faced[s, i] else float(s) for i, s in enumerate(sp_t)]
    loc = np.array([local[s, w, jbest] if s >= 0 else np.nan for w, s in enumerate(speaker)])
    series = [None if sp_t[i] < 0 or not faced[sp_t[i], i] else float(loc[win_of_t[i]]) for i in range(T)]
    out["speaker_series"] = [sp_series[g] for g in grid_of]  # per frame of the clip (grid -> frames)
    out["series"] = [series[g] for g in grid_of]
    if jbest == 0 or jbest == L - 1:
        out["reasons"]["sync_offset"] = f"{NO_PEAK} (best lag at the edge of the +-{L // 2}-frame search)"
    elif z is not None and z < (MIN_NULL_Z if min_null_z is None else min_null_z):
        out["reasons"]["sync_offset"] = (f"{NO_PEAK} (the best match stands {z:.1f} null deviations above this "
                                         f"clip with its audio shifted out of reach, needs "
                                         f"{MIN_NULL_Z if min_null_z is None else min_null_z:g})")
    elif z is None and agreement < min_agreement:
        out["reasons"]["sync_offset"] = (f"{NO_PEAK} (the best lag of {BOOTSTRAP} resamples of the clip's "
                                         f"{len(sel)} time windows agrees within 1 frame in {agreement:.0%}, "
                                         f"needs {min_agreement:.0%})")
    else:
        out["offset"] = float(offset)
        out["offset_ms"] = float(offset * period * 1000.0)
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


class LipSync(Metric):
    """Audio-visual synchronisation of the main face's mouth with the speech track."""

    name = "lipsync"
    # 2: mouth-ridge backend (lip opening + mouth brightness, voiced frames, lags in seconds, nulls);
    # 3: no score without mouth motion (STATIC_MOUTH 0.02 -> 0.04, both backends): a panned still is not in sync
    # 4: every face (speaker per window), frame timestamps, a map fitted across clips, null-z confidence,
    #    abstain by the no-sync distribution, offsets in ms and with an interval
    # 5: digital silence floored; confidence = best correlation against the null searches' best
    # 6: each mouth signal also as its whitened view (the map predicts both; their correlations averaged)
    version = "6"
    requires = frozenset({"audio"})
    scores = (
        ScoreSpec("sync_offset", None, f"+-{MAX_OFFSET_SECONDS:g} s in frames of the clip (+-{MAX_OFFSET} at 25 fps)",
                  "audio-video offset at the best match, frames of the clip; positive = audio leads video, 0 = in "
                  f"sync; null when the evidence is not there ({OFFLINE_BACKEND}: the best match does not stand "
                  f"{MIN_NULL_Z:g} null deviations above the clip with its audio shifted out of reach, or lies "
                  "at the edge of the search)",
                  "SyncNet offset (Chung & Zisserman 2016)"),
        ScoreSpec("sync_confidence", True, f"{OFFLINE_BACKEND}: null deviations, ~[-3, 30], own audio above "
                  f"{SYNC_THRESHOLD:g}; {LEARNED_BACKEND}: [0, ~12]",
                  f"how far the best offset's match stands out ({OFFLINE_BACKEND}: the speaking face's "
                  "audio->mouth correlation at the best lag, in standard deviations above the best correlation "
                  f"found with the audio shifted beyond the search; {LEARNED_BACKEND}: LSE-C)",
                  "SyncNet confidence (Chung & Zisserman 2016); LSE-C (Prajwal et al. 2020, Wav2Lip)"),
        ScoreSpec("lse_d", False, "[0, ~15]", "SyncNet embedding distance at the best offset (syncnet_v2 only)",
                  "LSE-D (Prajwal et al. 2020, Wav2Lip)"),
        ScoreSpec("lse_c", True, "[0, ~12]", "SyncNet confidence: median minus minimum distance (syncnet_v2 only)",
                  "LSE-C (Prajwal et al. 2020, Wav2Lip)"),
        ScoreSpec("sync_offset_ms", None, f"+-{MAX_OFFSET_SECONDS * 1000:g} ms",
                  "sync_offset in milliseconds (frames x the clip's median frame gap: any frame rate, "
                  "variable frame rate included); null when sync_offset is",
                  "SyncNet offset (Chung & Zisserman 2016)"),
        ScoreSpec("sync_offset_low", None, "frames", f"low end of the offset's 90% interval over {BOOTSTRAP} "
                  f"resamples of the clip's {WINDOW_SECONDS:g}-s windows ({OFFLINE_BACKEND} only)",
                  "block bootstrap (Kuensch 1989)"),
        ScoreSpec("sync_offset_high", None, "frames", "high end of the offset's 90% interval "
                  f"({OFFLINE_BACKEND} only)", "block bootstrap (Kuensch 1989)"),
        ScoreSpec("sync_speaker", None, "face index 0..", "the face that speaks most (faces numbered by how long "
                  "they are seen, 0 first); its series names the speaking face per frame, window by window "
                  f"({OFFLINE_BACKEND} only)", "active speaker detection by audio-visual correlation"),
    )
    # listed by `workbench metrics`; measured by benchmarks/bench_lipsync.py (asserted by a slow test)
    calibration = {"backend": OFFLINE_BACKEND, "score": "sync_confidence", "threshold": SYNC_THRESHOLD,
                   "abstain_min_null_z": MIN_NULL_Z, "auc_own_vs_foreign": 0.951, "auc_in_sample": 0.969,
                   "false_offset_rate_held_out": 0.053,
                   "dev_set": "20 real clips (talking/ + talking_wild/ + talking_hard/), 20 own and 380 foreign "
                   "clip-audio pairs, 120 delayed", "measured_by": "benchmarks/bench_lipsync.py"}

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

        self._faces = FaceTracks(self.fps)
        # when each frame is shown, on the soundtrack's clock: packet timestamps (variable frame rate), less
        # the audio stream's start when the audio is the file's own (a video that starts 0.08 s in)
        video = inputs.video
        try:
            self._times = clip_frame_times(video, against_audio=audio is video.audio)
        except MediaError:
            self._times = None
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
        if self._scorer is None:  # offline: every face, at full resolution (small faces keep their landmarks)
            self._faces.update(step.full, step.index)
            return
        face = step.face  # SyncNet reads only the lip opening (to count faced frames) and its own crops
        self._mouth.append((math.nan, math.nan) if face is None else (mouth_opening(face.landmarks), math.nan))
        self._scorer.add(step.frame, None if face is None else face.landmarks)

    def finish(self) -> dict[str, float | None]:
        offline_only = f"{OFFLINE_BACKEND} backend only (SyncNet scores the largest face)"
        if self._scorer is not None:
            mouth = np.asarray(self._mouth, dtype=np.float64).reshape(-1, 2)
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
            self.reasons = {n: offline_only for n in ("sync_offset_low", "sync_offset_high", "sync_speaker")}
            off = s["offset"]
            return {"sync_offset": off, "sync_confidence": s["lse_c"], "lse_d": s["lse_d"], "lse_c": s["lse_c"],
                    "sync_offset_ms": None if off is None else off * 1000.0 / self.fps,
                    "sync_offset_low": None, "sync_offset_high": None, "sync_speaker": None}
        mouth, geom = self._faces.signals()
        T = self._faces.n_frames
        times = self._times[:T] if self._times is not None and len(self._times) >= T else None
        r = analyse_sync(mouth, self._samples, self.fps, times, self.max_offset_seconds)
        self.curve = r["curve"]  # kept for plots / inspection

        # which face is which ("left", "right"), and who spoke when: for notebooks and the report
        self.speakers = {"faces": [{**f, "where": face_label(geom[f["face"]])} for f in r["faces"]],
                         "turns": r["turns"], "interval": r["interval"], "agreement": r["agreement"],
                         "null_z": r["null_z"], "period_ms": r["period"] * 1000.0}
        if r["series"] is not None:
            self.series = {"sync_confidence": r["series"], "sync_speaker": r["speaker_series"]}
        if self.weights is not None and not self.weights.is_file():
            why = (f"SyncNet weights not found at {self.weights}; get them with `workbench weights fetch syncnet` "
                   f"or set WORKBENCH_SYNCNET_WEIGHTS to an existing syncnet_v2.model")
        else:
            why = (f"needs SyncNet weights: get them with `workbench weights fetch syncnet` or set "
                   f"WORKBENCH_SYNCNET_WEIGHTS to syncnet_v2.model ({OFFLINE_BACKEND} gives sync_offset and "
                   f"sync_confidence only)")
        off_why = r["reasons"].get("sync_offset")
        self.reasons = {"lse_d": why, "lse_c": why, **r["reasons"]}
        if off_why:
            self.reasons.update({n: off_why for n in ("sync_offset_ms", "sync_offset_low", "sync_offset_high")})
        if r["speaker"] is None:
            self.reasons["sync_speaker"] = r["reasons"].get("sync_confidence") or off_why or "no face spoke"
        given = r["offset"] is not None
        return {"sync_offset": r["offset"], "sync_confidence": r["confidence"], "lse_d": None, "lse_c": None,
                "sync_offset_ms": r["offset_ms"],
                "sync_offset_low": r["interval"][0] if given else None,
                "sync_offset_high": r["interval"][1] if given else None,
                "sync_speaker": None if r["speaker"] is None else float(r["speaker"])}

METRICS = [LipSync]
