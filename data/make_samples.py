"""Build the workbench's small sample inputs (images and speech) from sources that ship offline.

Run from the repository root:  .venv/bin/python data/make_samples.py [--force]

Images come from scikit-image's bundled data (public-domain / CC0 photographs, see data/README.md);
speech is synthesised with espeak-ng and resampled to 16 kHz mono. The output is deterministic for
the same scikit-image and espeak-ng versions. Existing files are kept unless --force is given.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

DATA = Path(__file__).resolve().parent
sys.path.insert(0, str(DATA.parent))  # run as a script from anywhere: import the repo's workbench

from workbench.media import Audio, load_audio  # noqa: E402

PORTRAIT_SIZE = 512
PRODUCT_SIZE = (480, 320)  # (width, height)
SPEECH_RATE = 16_000
SPEECH = {
    "hello.wav": "Hello, and welcome to the workbench.",
    "counting.wav": "One. Two. Three. Four.",
}


class SampleError(RuntimeError):
    """A sample cannot be built; the message names it and the fix."""


def _save_png(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, optimize=True)


def make_portrait() -> np.ndarray:
    """Head-and-shoulders square crop of skimage's astronaut (Eileen Collins), upscaled to 512 px.

    The crop is centred on the dlib-detected face so that the face fills about a third of the width,
    the framing talking-head models expect.
    """
    from PIL import Image
    from skimage import data

    from workbench.faces import largest_face

    img = data.astronaut()
    face = largest_face(img)
    if face is None:
        raise SampleError("skimage astronaut: dlib found no face; check the dlib install (workbench.faces)")
    cx, cy = face.landmarks[27:36].mean(axis=0)  # nose: the middle of the face
    side = int(round(face.width * 3.0))
    side = min(side, *img.shape[:2])
    left = int(np.clip(round(cx - side / 2), 0, img.shape[1] - side))
    top = int(np.clip(round(cy - side * 0.42), 0, img.shape[0] - side))  # a little more room below (shoulders)
    crop = img[top:top + side, left:left + side]
    out = np.asarray(Image.fromarray(crop).resize((PORTRAIT_SIZE, PORTRAIT_SIZE), Image.LANCZOS))
    if largest_face(out) is None:
        raise SampleError("portrait crop: face lost after cropping; widen the crop in make_portrait")
    return out


def make_product() -> np.ndarray:
    """skimage's coffee cup on a wooden table (CC0), downscaled to 480x320."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.coffee()).resize(PRODUCT_SIZE, Image.LANCZOS))


def make_landscape(width: int = 512, height: int = 320, seed: int = 7) -> np.ndarray:
    """A procedural landscape: graded sky with a sun, three fractal mountain ridges fading with
    distance (aerial perspective), a lake mirroring them and a textured meadow in front.

    scikit-image ships no landscape photograph, so this one is drawn; it has structure at several
    scales (ridges, multi-scale texture, horizon) so that motion and flow metrics have something to track.
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)

    def texture(strength: float) -> np.ndarray:  # multi-scale (1/f-like) noise around 1.0
        n = sum(gaussian_filter(rng.standard_normal((height, width)), s) * s ** 0.5 for s in (1, 3, 9))
        return (1.0 + strength * n / n.std()).astype(np.float32)

    def ridge(base: float, rough: float) -> np.ndarray:
        x = np.linspace(0, 1, width, dtype=np.float32)
        h = np.zeros(width, np.float32)
        for octave in range(7):  # random sinusoids with a 1/f spectrum
            f = 2.0 ** octave
            h += np.sin(2 * np.pi * f * x * rng.uniform(0.8, 1.2) + rng.uniform(0, 2 * np.pi)) / f ** 1.1
        return (base - rough * h) * height

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = int(0.66 * height)
    t = yy / horizon
    sky_top, sky_bottom = np.array([70, 120, 200], np.float32), np.array([235, 205, 175], np.float32)
    img = sky_top + (sky_bottom - sky_top) * (np.clip(t, 0, 1)[..., None] ** 0.8)
    sun = np.exp(-((xx - 0.72 * width) ** 2 + (yy - 0.2 * height) ** 2) / (2 * (0.04 * width) ** 2))
    img += sun[..., None] * np.array([40, 35, 10], np.float32)
    for base, rough, colour in [(0.40, 0.09, (125, 135, 165)), (0.50, 0.07, (85, 110, 115)), (0.60, 0.05, (55, 90, 60))]:
        top = ridge(base, rough)
        depth = np.clip((yy - top[None, :]) / (0.25 * height), 0, 1)
        layer = np.array(colour, np.float32) * ((1.0 - 0.3 * depth) * texture(0.08))[..., None]
        img = np.where((yy >= top[None, :])[..., None], layer, img)
    lake_bottom = int(0.84 * height)
    rows = np.arange(horizon, lake_bottom)
    ripple = np.round(1.5 * np.sin(rows * 0.7)).astype(int)
    mirrored = img[np.clip(2 * horizon - rows, 0, height - 1)]
    for i, s in enumerate(ripple):
        mirrored[i] = np.roll(mirrored[i], s, axis=0)
    img[horizon:lake_bottom] = 0.75 * mirrored + 0.25 * np.array([30, 60, 100], np.float32)
    meadow = np.array([75, 125, 50], np.float32) * texture(0.15)[..., None]
    shade = 0.8 + 0.4 * np.clip((yy - lake_bottom) / (height - lake_bottom), 0, 1)
    img[lake_bottom:] = (meadow * shade[..., None])[lake_bottom:]
    return np.clip(img, 0, 255).astype(np.uint8)


def make_speech(text: str) -> Audio:
    """Synthesise `text` with espeak-ng and resample it to 16 kHz mono."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SampleError("espeak-ng not found; install it (apt-get install espeak-ng) to build the speech samples")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True, capture_output=True)
        audio = load_audio(raw, SPEECH_RATE)
    peak = float(np.abs(audio.samples).max())
    if peak <= 0:
        raise SampleError(f"espeak-ng produced silence for {text!r}; check the espeak-ng voice data")
    return Audio(audio.samples * (0.9 / peak), SPEECH_RATE)  # normalise the peak to -1 dBFS


def build(force: bool = False, out_dir: Path = DATA) -> list[Path]:
    """Write every sample into `out_dir`; existing files are kept unless `force`. Returns the paths written."""
    images: dict[str, Callable[[], np.ndarray]] = {
        "portrait.png": make_portrait, "product.png": make_product, "landscape.png": make_landscape}
    written = []
    for name, make in images.items():
        path = out_dir / "images" / name
        if force or not path.exists():
            _save_png(make(), path)
            written.append(path)
    for name, text in SPEECH.items():
        path = out_dir / "audio" / name
        if force or not path.exists():
            make_speech(text).save_wav(path)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild files that already exist")
    parser.add_argument("--out", type=Path, default=DATA, help="output folder (default: data/)")
    args = parser.parse_args(argv)
    written = build(args.force, args.out)
    for p in written:
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KiB)")
    if not written:
        print("all samples present; pass --force to rebuild")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
