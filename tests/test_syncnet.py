"""SyncNet port: state-dict layout of syncnet_v2.model, MFCC parity, LSE-D/LSE-C arithmetic, loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.metrics import syncnet as sn

# shapes of the syncnet_v2.model tensors (joonson/syncnet_python SyncNetModel.S, 1024-d embeddings)
SYNCNET_V2_SHAPES = {
    "netcnnaud.0.weight": (64, 1, 3, 3),
    "netcnnaud.4.weight": (192, 64, 3, 3),
    "netcnnaud.8.weight": (384, 192, 3, 3),
    "netcnnaud.11.weight": (256, 384, 3, 3),
    "netcnnaud.14.weight": (256, 256, 3, 3),
    "netcnnaud.18.weight": (512, 256, 5, 4),
    "netcnnaud.19.running_var": (512,),
    "netfcaud.0.weight": (512, 512),
    "netfcaud.1.running_mean": (512,),
    "netfcaud.3.weight": (1024, 512),
    "netcnnlip.0.weight": (96, 3, 5, 7, 7),
    "netcnnlip.4.weight": (256, 96, 1, 5, 5),
    "netcnnlip.8.weight": (256, 256, 1, 3, 3),
    "netcnnlip.11.weight": (256, 256, 1, 3, 3),
    "netcnnlip.14.weight": (256, 256, 1, 3, 3),
    "netcnnlip.18.weight": (512, 256, 1, 6, 6),
    "netcnnlip.19.weight": (512,),
    "netfclip.0.weight": (512, 512),
    "netfclip.3.weight": (1024, 512),
}


def test_state_dict_layout_matches_syncnet_v2():
    state = sn.build_syncnet().state_dict()
    for key, shape in SYNCNET_V2_SHAPES.items():
        assert tuple(state[key].shape) == shape, key
    convs = [k for k in state if k.endswith(".weight") and state[k].ndim >= 4]
    assert len(convs) == 12  # 6 audio + 6 lip convolutions, nothing else
    assert {k.split(".")[0] for k in state} == {"netcnnaud", "netfcaud", "netcnnlip", "netfclip"}


def test_output_shapes():
    net = sn.build_syncnet()
    with torch.inference_mode():
        a = net.forward_aud(torch.randn(3, 1, 13, 20))
        v = net.forward_lip(torch.rand(2, 3, 5, 224, 224) * 255)
    assert a.shape == (3, 1024) and v.shape == (2, 1024)


def test_mfcc_matches_python_speech_features():
    # reference values: python_speech_features 0.6, mfcc(x, 16000) with its defaults, on this chirp
    t = np.arange(8000) / 16000.0
    x = 8000 * np.sin(2 * np.pi * (200 * t + 1500 * t ** 2)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    m = sn.mfcc(x, 16000)
    assert m.shape == (49, 13)
    expected = np.array([[16.974208, 25.008774, 15.922454, -7.793906, -7.869705],
                         [19.288769, 19.596128, -1.359228, -31.392643, -11.596444],
                         [13.253268, 14.290447, -20.124581, 19.391375, 10.054862],
                         [20.408515, -6.881649, -37.503726, 7.363875, 13.45831]])
    np.testing.assert_allclose(m[[0, 10, 25, 48]][:, [0, 1, 2, 5, 12]], expected, atol=1e-4)


def test_sync_scores_find_the_shift():
    rng = np.random.default_rng(0)
    audio = torch.tensor(rng.normal(size=(80, 16)), dtype=torch.float32)
    video = torch.zeros_like(audio)
    video[:77] = audio[3:]  # video window i looks like audio window i+3: audio lags, offset -3
    video[77:] = torch.tensor(rng.normal(size=(3, 16)), dtype=torch.float32)
    s = sn.sync_scores(video, audio, vshift=15)
    assert s["offset"] == -3
    assert s["lse_d"] < 1.0 < s["lse_c"]
    video2 = torch.zeros_like(audio)
    video2[3:] = audio[:77]  # audio leads by 3
    assert sn.sync_scores(video2, audio, vshift=15)["offset"] == 3
    # masking every window but one still works, masking all raises
    valid = np.zeros(80, bool)
    valid[40] = True
    assert sn.sync_scores(video, audio, 15, valid)["offset"] == -3
    with pytest.raises(ValueError):
        sn.mean_distances(video, audio, 15, np.zeros(80, bool))


def test_load_random_checkpoint_and_reject_bad_files(tmp_path):
    net = sn.build_syncnet()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.02)
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}  # old torch saves
    path = tmp_path / "syncnet_v2.model"
    torch.save(state, path)
    loaded = sn.load_syncnet(path)
    torch.testing.assert_close(loaded.state_dict()["netcnnlip.0.weight"], state["netcnnlip.0.weight"])
    assert not loaded.training

    with pytest.raises(sn.SyncNetWeightsError, match="not found"):
        sn.load_syncnet(tmp_path / "missing.model")
    (tmp_path / "junk.model").write_bytes(b"not a checkpoint")
    with pytest.raises(sn.SyncNetWeightsError, match="state dict"):
        sn.load_syncnet(tmp_path / "junk.model")
    bad = dict(state)
    bad["netfcaud.0.weight"] = torch.zeros(512, 256)
    torch.save(bad, tmp_path / "bad.model")
    with pytest.raises(sn.SyncNetWeightsError, match="shapes"):
        sn.load_syncnet(tmp_path / "bad.model")
    del bad["netfcaud.0.weight"]
    torch.save(bad, tmp_path / "partial.model")
    with pytest.raises(sn.SyncNetWeightsError, match="layout"):
        sn.load_syncnet(tmp_path / "partial.model")


def test_face_crop_geometry():
    # a face box centred at (100, 80) with half size 40: the crop spans x 44..156, y 40..152 (grey outside)
    frame = np.zeros((200, 200, 3), np.uint8)
    frame[:, :100] = (255, 0, 0)  # left half red (RGB)
    crop = sn.crop_face(frame, 100.0, 80.0, 40.0)
    assert crop.shape == (224, 224, 3)
    assert tuple(crop[112, 50]) == (0, 0, 255)  # BGR: red on the left half
    assert tuple(crop[112, 170]) == (0, 0, 0)
    frame_edge = np.zeros((100, 100, 3), np.uint8)
    edge = sn.crop_face(frame_edge, 5.0, 5.0, 40.0)  # box past the top-left corner: padded grey
    assert tuple(edge[2, 2]) == (110, 110, 110)
