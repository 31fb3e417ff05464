"""The prompt enhancer: family templates with the family's negative prompt (read from the family
table), the local language-model path, the suite step that records prompt_original / prompt_source,
and best-of-N comparing plain vs enhanced prompts in one run."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from workbench.media import Clip
from workbench.models.base import GenerationRequest, Generator, register
from workbench.models.families import _WAN_NEG, FAMILIES
from workbench.suite import CaseSpec, Suite
from workbench.workflow.enhance import (EnhanceError, compare_prompt_variants, enhance_prompt, family_of,
                                        prompt_variants)


class PromptedWan(Generator):
    """A model-free stand-in that reads the prompt like a Wan I2V model: its motion depends on the prompt."""

    name = "test-prompted-wan"
    task = "image-to-video"
    description = "test generator reading prompts (the Wan family's spec)"
    accepts = frozenset({"image", "prompt", "negative_prompt"})
    defaults = {"num_frames": 5, "fps": 10}
    spec = next(f for f in FAMILIES if f.name == "wan2.1-i2v-480p")
    prompts: list[tuple[str, str]] = []

    def generate(self, request: GenerationRequest, progress=None) -> Clip:
        type(self).prompts.append((request.prompt, request.negative_prompt))
        step = int(hashlib.sha256(request.prompt.encode()).hexdigest(), 16) % 3 + (request.seed % 2)
        img = request.image[:32, :32]
        frames = np.stack([np.roll(img, i * step, axis=1) for i in range(self.params["num_frames"])])
        return Clip.from_frames(frames.astype(np.uint8), fps=self.params["fps"])


@pytest.fixture(autouse=True)
def no_lm(monkeypatch):
    monkeypatch.delenv("WORKBENCH_PROMPT_LM", raising=False)


@pytest.fixture(scope="module", autouse=True)
def prompted_model():
    """PromptedWan registered for this module only (the router would otherwise pick it elsewhere)."""
    from workbench.models import base

    register(PromptedWan)
    yield PromptedWan
    base._REGISTRY.pop(PromptedWan.name, None)


def test_wan_template_keeps_the_words_adds_motion_camera_light_and_the_family_negative():
    e = enhance_prompt("a cup of coffee on a table, slow turn", "wan2.1-i2v-480p")
    assert e.source == "template:wan" and e.original == "a cup of coffee on a table, slow turn"
    assert e.prompt.startswith("A cup of coffee on a table, slow turn.")
    assert "camera slowly" in e.prompt and "lighting" in e.prompt.lower()
    assert e.negative_prompt == _WAN_NEG  # read from the family table
    assert any("WORKBENCH_PROMPT_LM" in n for n in e.notes)  # the template path says why
    assert enhance_prompt("a cup of coffee on a table, slow turn", "wan2.1-i2v-480p") == e  # deterministic
    # what the prompt already says is not said twice; the user's negative is kept, the family's appended
    own = enhance_prompt("she smiles, slow dolly in, golden hour light", "wan2.2-ti2v-5b", negative_prompt="text")
    assert "The camera" not in own.prompt and "key light" not in own.prompt
    assert own.negative_prompt == f"text, {_WAN_NEG}"


def test_family_styles_and_models_that_ignore_prompts():
    ltx = enhance_prompt("a fox runs through snow", "ltx-video")
    assert ltx.source == "template:ltx" and ltx.prompt.startswith("A fox runs through snow.")  # action first
    cog = enhance_prompt("a fox runs through snow", "cogvideox-5b")
    assert cog.prompt.startswith("A wide establishing shot.")  # text-to-video sets the shot
    sdxl = enhance_prompt("a red bicycle", "sdxl")
    assert sdxl.prompt.startswith("a red bicycle, ") and "camera" not in sdxl.prompt  # tags, no motion
    talk = enhance_prompt("a presenter", "infinitetalk")
    assert "lips moving in sync" in talk.prompt
    kb = enhance_prompt("a cup", "kenburns")
    assert kb.prompt == "a cup" and kb.source == "unchanged:baseline" and "does not read" in kb.notes[0]
    assert family_of("veo-3-i2v").key == "hosted" and family_of("skyreels-v2-i2v").key == "skyreels"
    with pytest.raises(EnhanceError, match="empty"):
        enhance_prompt("  ", "wan2.1-i2v-480p")


def test_lm_path_from_a_local_folder(tmp_path, monkeypatch):
    """A local transformers model (a tiny random Llama here) rewrites the prompt: source lm:<folder>;
    a folder without a model falls back to the template and says so."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from workbench.models.tiny import llama_tokenizer

    monkeypatch.setenv("WORKBENCH_PROMPT_LM", str(tmp_path / "empty"))
    e = enhance_prompt("a cup", "wan2.1-i2v-480p")
    assert e.source == "template:wan" and any("config.json missing" in n for n in e.notes)
    import torch

    torch.manual_seed(0)
    tok = llama_tokenizer()
    folder = tmp_path / "tiny-instruct"
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    monkeypatch.setenv("WORKBENCH_PROMPT_LM", str(folder))
    e = enhance_prompt("a cup", "wan2.1-i2v-480p")  # random weights: the words are noise, the path is real
    assert e.source == "lm:tiny-instruct" and e.prompt and e.original == "a cup" and e.negative_prompt == _WAN_NEG
    assert e.prompt.isprintable() and len(e.prompt.split()) <= 160


class EnhancedCase(CaseSpec):
    """CaseSpec with the `enhance:` field the suite step reads (suite.py's own field when it has one)."""

    enhance: bool | str = False


def test_suite_step_records_prompt_original_and_source(repo_root):
    from workbench.workflow.steps import resolve_case

    img = str(repo_root / "data/images/portrait.png")
    suite = Suite(name="s", cases=[EnhancedCase(id="a", image=img, prompt="she smiles", enhance=True),
                                   EnhancedCase(id="b", image=img, enhance=True)],
                  models=[{"name": "kenburns"}, {"name": "test-prompted-wan"}])
    case, info, error = resolve_case(suite, suite.cases[0])
    assert error is None and case.negative_prompt == _WAN_NEG and case.prompt.startswith("She smiles.")
    assert info["enhance"]["prompt_original"] == "she smiles" and info["enhance"]["prompt_source"] == "template:wan"
    _, _, error = resolve_case(suite, suite.cases[1])  # nothing to enhance: that case's jobs fail, with why
    assert error and "prompt is empty" in error


@pytest.mark.skipif("enhance" not in CaseSpec.model_fields,
                    reason="needs `enhance:` in suite.CaseSpec and the Runner calling resolve_case for it (lead)")
def test_runner_record_carries_prompt_original_and_source(repo_root, tmp_path):
    from workbench.experiment import Runner

    suite = Suite.model_validate({
        "name": "enh", "cases": [{"id": "a", "image": str(repo_root / "data/images/product.png"),
                                  "prompt": "a cup", "enhance": True}],
        "models": ["test-prompted-wan"], "metrics": ["temporal_flicker"]})
    (rec,) = Runner(suite, tmp_path / "run").run_all()
    assert rec["status"] == "ok" and rec["negative_prompt"] == _WAN_NEG
    assert rec["workflow"]["enhance"]["prompt_original"] == "a cup"
    assert rec["workflow"]["enhance"]["prompt_source"] == "template:wan"


def test_best_of_n_compares_plain_and_enhanced_prompts(repo_root, tmp_path):
    """One suite, the case as plain and enhanced variants, best of 2 per seed: both prompts reach the
    model, bestofn.json ranks every request, and the comparison pairs them by model and seed."""
    from workbench.experiment import Runner

    case = {"id": "cup", "image": str(repo_root / "data/images/product.png"), "prompt": "a cup of coffee"}
    variants = prompt_variants(case, "test-prompted-wan")
    assert [v["id"] for v in variants] == ["cup-plain", "cup-enhanced"]
    objective = {"temporal_flicker": 1.0}
    suite = Suite.model_validate({
        "name": "plain-vs-enhanced", "cases": variants, "seeds": [0, 1], "metrics": ["temporal_flicker"],
        "models": ["test-prompted-wan", "kenburns"], "objective": objective, "best_of": {"n": 2}})
    PromptedWan.prompts.clear()
    records = Runner(suite, tmp_path / "run").run_all()
    assert len(records) == 2 * 2 * 2 * 2 and all(r["status"] == "ok" for r in records)
    seen = {p for p, _ in PromptedWan.prompts}
    assert "a cup of coffee" in seen and any(p.startswith("A cup of coffee.") and "camera" in p for p in seen)
    assert (_WAN_NEG in {n for _, n in PromptedWan.prompts})
    rankings = json.loads((tmp_path / "run" / "bestofn.json").read_text())["rankings"]
    assert len(rankings) == 2 * 2 * 2 and all(len(r["ranked"]) == 2 for r in rankings)
    cmp = compare_prompt_variants(records, objective)
    assert cmp["n"] == 4 and {p["model"] for p in cmp["pairs"]} == {"test-prompted-wan", "kenburns"}
    kb = [p for p in cmp["pairs"] if p["model"] == "kenburns"]  # kenburns ignores the prompt: no difference
    assert all(p["plain"] == pytest.approx(p["enhanced"]) for p in kb)
    assert cmp["mean_gain"] is not None


def test_enhance_true_writes_each_models_own_family_prompt_per_job(repo_root):
    """`enhance: true` in a suite comparing families: the Wan job gets the Wan prompt and negative, the
    LTX job LTX's, CogVideoX's its own (not the first model's family for all), each recorded per job."""
    from workbench.experiment import expand_jobs

    img = str(repo_root / "data/images/product.png")
    suite = Suite.model_validate({"name": "fam", "cases": [{"id": "a", "image": img, "prompt": "a fox runs through snow",
                                                           "enhance": True}],
                                  "models": ["wan2.1-i2v-480p", "ltx-video", "cogvideox-5b-i2v"]})
    jobs = {j.model.name: j for j in expand_jobs(suite)}
    assert set(jobs) == {"wan2.1-i2v-480p", "ltx-video", "cogvideox-5b-i2v"}
    for name, job in jobs.items():
        own = enhance_prompt("a fox runs through snow", name)
        assert (job.case.prompt, job.case.negative_prompt) == (own.prompt, own.negative_prompt), name
        assert job.workflow["enhance"]["prompt_source"] == own.source and job.setup_error is None
    assert len({j.case.prompt for j in jobs.values()}) == 3 and len({j.clip_id for j in jobs.values()}) == 3
    named = Suite.model_validate({**suite.model_dump(exclude={"base_dir"}),
                                  "cases": [{"id": "a", "image": img, "prompt": "a fox runs through snow",
                                             "enhance": "ltx-video"}]})
    ltx = enhance_prompt("a fox runs through snow", "ltx-video").prompt
    assert all(j.case.prompt == ltx for j in expand_jobs(named))  # `enhance: MODEL`: that family for all


def test_enhance_unknown_model_is_refused_when_the_suite_loads(tmp_path, repo_root):
    import yaml

    from workbench.suite import SuiteError, load_suite

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "models": ["kenburns"], "cases": [
        {"id": "a", "image": str(repo_root / "data/images/product.png"), "prompt": "a cup", "enhance": "ltx-vidoe"}]}))
    with pytest.raises(SuiteError, match=r"cases\.0\.enhance: unknown model 'ltx-vidoe'.*did you mean ltx-video"):
        load_suite(path)
