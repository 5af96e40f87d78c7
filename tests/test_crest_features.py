"""MetaCREST backbone: VGG-16 conv1_1..conv4_3 shapes, stride 4, and both weight loaders."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import scipy.io
import torch

from foundation.errors import UserError
from tracker.crest import features as feat
from tracker.crest.features import FeatureConfig

TINY = FeatureConfig(channels=(2, 3, 4, 5))


def _mat_layer(name: str, typ: str, weights: list) -> dict:
    cell = np.empty((1, len(weights)), dtype=object)
    for i, w in enumerate(weights):
        cell[0, i] = w
    return {"name": name, "type": typ, "weights": cell}


def _write_mat(path: Path, params: Dict[str, torch.Tensor], skip: str = "") -> None:
    """MatConvNet simplenn layout: ``layers`` cell of structs, filters [kh, kw, in, out]."""
    layers = []
    for name in feat.LAYER_NAMES:
        if name == skip:
            continue
        w = params[f"{name}.weight"].numpy().transpose(2, 3, 1, 0)
        b = params[f"{name}.bias"].numpy().reshape(-1, 1)
        layers.append(_mat_layer(name, "conv", [w, b]))
        layers.append(_mat_layer(name.replace("conv", "relu"), "relu", []))
        if name in ("conv1_2", "conv2_2", "conv3_3"):
            layers.append(_mat_layer("pool" + name[4], "pool", []))
    layers.append(_mat_layer("conv5_1", "conv", [np.zeros((3, 3, 5, 7), np.float32), np.zeros((7, 1), np.float32)]))
    cell = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        cell[0, i] = layer
    scipy.io.savemat(str(path), {"layers": cell, "meta": {"name": "vgg16-test"}})


def test_default_config_is_vgg16() -> None:
    shapes = feat.param_shapes()
    assert shapes["conv1_1.weight"] == (64, 3, 3, 3)
    assert shapes["conv3_1.weight"] == (256, 128, 3, 3)
    assert shapes["conv4_3.weight"] == (512, 512, 3, 3)
    assert len(shapes) == 20 and FeatureConfig().out_channels == 512


def test_output_stride_4_and_mean() -> None:
    g = torch.Generator().manual_seed(0)
    params = feat.init_params(TINY, g)
    img = np.random.default_rng(0).integers(0, 256, size=(37, 50, 3), dtype=np.uint8)
    out = feat.extract(params, feat.preprocess(img))
    assert out.shape == (1, 5, 37 // 4, 50 // 4)
    assert (out >= 0).all()  # ReLU after conv4_3
    flat = np.broadcast_to(np.array(feat.MEAN_RGB, np.float32), (4, 4, 3))
    assert torch.allclose(feat.preprocess(flat), torch.zeros(1, 3, 4, 4), atol=1e-4)


def test_load_matconvnet_mat(tmp_path: Path) -> None:
    params = feat.init_params(TINY, torch.Generator().manual_seed(1))
    for k in params:
        if k.endswith(".bias"):
            params[k] = torch.randn(params[k].shape)
    path = tmp_path / "imagenet-vgg-verydeep-16.mat"
    _write_mat(path, params)
    loaded = feat.load_vgg16_mat(path, TINY)
    assert set(loaded) == set(params)
    for k in params:
        assert torch.allclose(loaded[k], params[k]), k
    x = torch.randn(1, 3, 16, 16)
    assert torch.allclose(feat.extract(loaded, x), feat.extract(params, x), atol=1e-5)


def test_load_mat_errors_name_the_layer(tmp_path: Path) -> None:
    params = feat.init_params(TINY, torch.Generator().manual_seed(2))
    path = tmp_path / "vgg.mat"
    _write_mat(path, params)
    with pytest.raises(UserError, match="conv1_1"):
        feat.load_vgg16_mat(path, FeatureConfig(channels=(3, 3, 4, 5)))
    missing = tmp_path / "missing.mat"
    _write_mat(missing, params, skip="conv3_2")
    with pytest.raises(UserError, match="conv3_2"):
        feat.load_vgg16_mat(missing, TINY)
    with pytest.raises(UserError):
        feat.load_vgg16_mat(tmp_path / "nope.mat", TINY)
    bad = tmp_path / "bad.mat"
    bad.write_text("not a mat file")
    with pytest.raises(UserError):
        feat.load_vgg16_mat(bad, TINY)


def test_load_torchvision_state_dict() -> None:
    params = feat.init_params(TINY, torch.Generator().manual_seed(3))
    sd = {f"features.{feat.TORCHVISION_INDEX[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in params.items()}
    sd["classifier.0.weight"] = torch.zeros(2, 2)
    loaded = feat.load_vgg16_state_dict({"state_dict": sd}, TINY)
    for k in params:
        assert torch.equal(loaded[k], params[k]), k
    assert sorted(feat.TORCHVISION_INDEX.values()) == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21]
    sd["features.19.weight"] = torch.zeros(5, 5, 1, 1)
    with pytest.raises(UserError, match="conv4_2"):
        feat.load_vgg16_state_dict(sd, TINY)
    del sd["features.0.bias"]
    with pytest.raises(UserError, match="conv1_1"):
        feat.load_vgg16_state_dict(sd, TINY)
