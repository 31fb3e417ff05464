"""Lip-sync follows the audio the model heard: a model that takes no driving audio is never scored against
the case's speech (a shared case serves talking-head and image-to-video models alike)."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from workbench.experiment import Runner
from workbench.media import Audio, Clip
from workbench.models.base import GenerationRequest, Generator, register
from workbench.suite import load_suite


class DeafGenerator(Generator):
    """An image-to-video model that takes no audio: a drifting gradient, no soundtrack."""

    name = "test-deaf-i2v"
    task = "image-to-video"
    accepts = frozenset({"image", "prompt"})
    defaults = {"num_frames": 30, "fps": 15}

    def generate(self, request: GenerationRequest, progress=None) -> Clip:
        img = request.image[:48, :48].astype(np.uint8)
        frames = np.stack([np.roll(img, i, axis=1) for i in range(self.params["num_frames"])])
        return Clip.from_frames(frames, fps=self.params["fps"])


@pytest.fixture
def deaf_model():
    """Registered for this test only: other tests (the router's) must not see a stand-in model."""
    from workbench.models import base

    register(DeafGenerator)
    yield DeafGenerator.name
    base._REGISTRY.pop(DeafGenerator.name, None)


def test_a_model_that_takes_no_audio_is_not_scored_against_the_cases_speech(tmp_path, deaf_model):
    y, x = np.mgrid[0:48, 0:48]
    Image.fromarray(np.stack([x * 5, y * 5, 0 * x + 90], -1).astype(np.uint8)).save(tmp_path / "a.png")
    t = np.arange(32000) / 16000
    Audio((0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32),
          16000).save_wav(tmp_path / "speech.wav")
    spec = {"name": "heard", "output": "run", "metrics": ["lipsync"], "seeds": [0],
            "cases": [{"id": "a", "image": "a.png", "audio": "speech.wav"}],
            "models": [{"name": "test-deaf-i2v"}]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(spec))
    (rec,) = Runner(load_suite(tmp_path / "suite.yaml")).run_all()
    assert rec["status"] == "ok", rec["error"]
    assert any("takes no driving audio" in w for w in rec["warnings"])
    # not applicable (no audio was heard), rather than scored against the speech (it would read "no face" here)
    assert "sync_confidence" not in rec["scores"] and "sync_confidence" not in rec["score_errors"]
    assert not rec["clip"]["audio"]  # the clip carries no soundtrack: nothing was scored against the speech
