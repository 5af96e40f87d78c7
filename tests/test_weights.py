"""Weights: our checkpoint format, MatConvNet .mat import, official Meta-Tracker import, lookup."""
import os

import numpy as np
import pytest
import scipy.io
import torch

from foundation.checkpoint import load_checkpoint, save_checkpoint
from foundation.errors import UserError
from meta_learning.l2f import L2FSettings
from tracker.sdnet.model import ModelConfig, param_shapes
from tracker.sdnet.weights import load_mat, load_weights, resolve_weights, save_weights, untrained_weights
from tracker.weights import ENV_VAR, UntrainedWeightsWarning, find_weights


def _vgg_m_mat(path, conv2_out=256, rng=np.random.default_rng(0)):
    """A MatConvNet-layout model: ``layers`` cell array of structs (conv/relu/norm/pool), conv
    weights = {filters [kh, kw, in, out], biases}; like imagenet-vgg-m.mat (float32)."""
    shapes = [(7, 7, 3, 96), (5, 5, 96, conv2_out), (3, 3, 256, 512), (3, 3, 512, 512)]
    layers = []
    filters = []
    for i, s in enumerate(shapes, start=1):
        f = rng.standard_normal(s).astype(np.float32)
        b = rng.standard_normal(s[3]).astype(np.float32)
        filters.append((f, b))
        w = np.empty(2, dtype=object)
        w[0], w[1] = f, b.reshape(-1, 1)                          # MatConvNet stores biases as columns
        layers.append({"name": f"conv{i}", "type": "conv", "weights": w,
                       "stride": np.array([2, 2]), "pad": np.zeros(4)})
        layers.append({"name": f"relu{i}", "type": "relu", "weights": np.empty(0, dtype=object)})
        if i < 3:
            layers.append({"name": f"norm{i}", "type": "lrn", "param": np.array([5, 2, 1e-4, 0.75])})
    cell = np.empty(len(layers), dtype=object)
    for i, layer in enumerate(layers):
        cell[i] = layer
    scipy.io.savemat(path, {"layers": cell, "meta": {"normalization": {"imageSize": [224, 224, 3]}}})
    return filters


def test_matconvnet_import_transposes_and_checks(tmp_path):
    path = str(tmp_path / "imagenet-vgg-m.mat")
    filters = _vgg_m_mat(path)
    convs = load_mat(path)
    assert set(convs) == {f"features.conv{i}.{t}" for i in (1, 2, 3) for t in ("weight", "bias")}
    for i, (f, b) in enumerate(filters[:3], start=1):
        w = convs[f"features.conv{i}.weight"].numpy()
        assert w.shape == (f.shape[3], f.shape[2], f.shape[0], f.shape[1])
        # element [out, in, y, x] of ours is filters[y, x, in, out] of MatConvNet
        np.testing.assert_array_equal(w[5, 2, 1, 2], f[1, 2, 2, 5])
        np.testing.assert_array_equal(convs[f"features.conv{i}.bias"].numpy(), b)
    w = load_weights(path)
    assert w.config == ModelConfig() and w.source == path
    assert torch.equal(w.params["features.conv2.weight"], convs["features.conv2.weight"])
    assert w.params["fc.fc4.weight"].shape == (512, 4608)


def test_matconvnet_shape_mismatch_is_one_clear_error(tmp_path):
    path = str(tmp_path / "bad.mat")
    _vgg_m_mat(path, conv2_out=128)
    with pytest.raises(UserError, match=r"conv2.*\(5, 5, 96, 128\).*expected \(5, 5, 96, 256\)"):
        load_mat(path)
    scipy.io.savemat(str(tmp_path / "other.mat"), {"x": np.zeros(3)})
    with pytest.raises(UserError, match="no 'layers'"):
        load_mat(str(tmp_path / "other.mat"))
    (tmp_path / "junk.mat").write_bytes(b"not a mat file")
    with pytest.raises(UserError, match="cannot read"):
        load_mat(str(tmp_path / "junk.mat"))


def _official(path, sequential=True):
    g = torch.Generator().manual_seed(0)
    init, alpha = {}, {}
    for name, shape in param_shapes(ModelConfig()).items():
        layer, t = name.rsplit(".", 1)
        key = f"{layer}.0.{t}" if sequential and layer.startswith("features") else name
        init[key] = torch.randn(shape, generator=g)
        alpha[key] = torch.rand(shape, generator=g) * 1e-3
    torch.save({"meta_init": init, "meta_alpha": alpha, "optimizer": {"lr": 1e-4}}, path)
    return init, alpha


@pytest.mark.parametrize("sequential", [True, False])
def test_official_checkpoint_import(tmp_path, sequential):
    path = str(tmp_path / "metasdnet_official.pth")
    init, alpha = _official(path, sequential)
    w = load_weights(path)
    assert w.config == ModelConfig()
    for key, t in init.items():
        ours = key.replace(".0.", ".")
        assert torch.equal(w.params[ours], t)
        assert torch.equal(w.alpha[ours], alpha[key])
    assert w.metadata["format"] == "meta-tracker"


def test_official_checkpoint_wrong_shape(tmp_path):
    path = str(tmp_path / "x.pth")
    init, alpha = _official(path, False)
    init["fc.fc4.weight"] = torch.zeros(512, 100)
    torch.save({"meta_init": init, "meta_alpha": alpha}, path)
    with pytest.raises(UserError, match=r"fc\.fc4\.weight has shape \(512, 100\)"):
        load_weights(path)


def test_our_format_round_trip_with_metadata(tmp_path):
    w = untrained_weights(ModelConfig.tiny(), seed=3)
    from meta_learning import Attenuator

    w.attenuator = Attenuator(12, "identity").state_dict()
    w.l2f = L2FSettings(mode="identity", input="mean")
    path = str(tmp_path / "w" / "metasdnet.pt")
    save_weights(path, w, {"command": "metatrack meta-train ...", "data": "SynTrain x 25",
                           "trained": True})
    assert not [f for f in os.listdir(tmp_path / "w") if f.startswith(".tmp-")]   # atomic
    back = load_weights(path)
    assert back.config == ModelConfig.tiny() and back.trained
    assert back.metadata["data"] == "SynTrain x 25" and "date" in back.metadata
    assert back.metadata["architecture"]["channels"] == [8, 16, 32]
    assert all(torch.equal(back.params[k], w.params[k]) for k in w.params)
    assert all(torch.equal(back.alpha[k], w.alpha[k]) for k in w.alpha)
    assert back.l2f == w.l2f and set(back.attenuator) == set(w.attenuator)
    state, meta = load_checkpoint(path)
    assert set(state) >= {"model", "alpha", "attenuator", "model_config"}


def test_generic_checkpoint_and_bad_files(tmp_path):
    path = str(tmp_path / "c.pt")
    save_checkpoint(path, {"anything": torch.ones(2)}, {"note": "x"})
    state, meta = load_checkpoint(path)
    assert torch.equal(state["anything"], torch.ones(2)) and meta["note"] == "x"
    with pytest.raises(UserError, match="no tracker weights"):
        load_weights(path)
    with pytest.raises(UserError, match="does not exist"):
        load_weights(str(tmp_path / "missing.pt"))
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot read"):
        load_weights(str(tmp_path / "junk.pt"))
    torch.save({"something": 1}, str(tmp_path / "other.pt"))
    with pytest.raises(UserError, match="unknown weights format"):
        load_weights(str(tmp_path / "other.pt"))


def test_lookup_env_var_and_fallback(tmp_path, monkeypatch):
    import tracker.weights as W

    folder = tmp_path / "shipped"
    folder.mkdir()
    monkeypatch.setenv(ENV_VAR, str(folder))
    # only the env folder: the repository's shipped weights must not answer here
    monkeypatch.setattr(W, "weights_dirs", lambda: [str(folder)])
    assert find_weights("metasdnet-l2f") is None
    save_weights(str(folder / "metasdnet.pt"), untrained_weights(ModelConfig.tiny()), {"trained": True})
    assert find_weights("metasdnet") == str(folder / "metasdnet.pt")
    # mdnet falls back to the metasdnet start when it has no weights of its own
    w = resolve_weights("mdnet", fallback=("metasdnet",))
    assert w.config == ModelConfig.tiny() and w.trained
    # ... but a variant never silently runs the baseline's weights
    import tracker

    monkeypatch.setattr(W, "_WARNED", set())
    with pytest.warns(UntrainedWeightsWarning, match="metasdnet-l2f"):
        variant = tracker.make("metasdnet-l2f") if "metasdnet-l2f" in tracker.names() else \
            tracker.make("metasdnet", name="metasdnet-l2f")
    assert not variant.weights.trained
    assert tracker.make("mdnet").weights.trained                    # the baseline does fall back
    # a file named directly serves every name
    monkeypatch.setenv(ENV_VAR, str(folder / "metasdnet.pt"))
    assert find_weights("anything") == str(folder / "metasdnet.pt")
    # nothing anywhere: the untrained start and one warning
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setattr(W, "weights_dirs", lambda: [])
    monkeypatch.setattr(W, "_WARNED", set())
    with pytest.warns(UntrainedWeightsWarning):
        w = resolve_weights("metasdnet-x")
    assert not w.trained and w.config == ModelConfig.small()


def test_repo_weights_folder_is_searched():
    import tracker.weights as W

    repo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(W.__file__))), "weights")
    if os.path.isdir(repo):
        assert repo in W.weights_dirs()


def test_tracker_runs_with_imported_weights(tmp_path):
    """The official checkpoint drives the tracker (VGG-M shape; a couple of frames only)."""
    import tracker
    from otb_eval.testing import patch_sequence

    path = str(tmp_path / "official.pth")
    _official(path, True)
    trk = tracker.make("metasdnet", weights=path, n_candidates=16, bbreg_n=50, update_neg=20,
                       init_whole_window=1.0, max_region_init=160, max_region=160)
    frames, gt = patch_sequence(n=2)
    trk.init(frames[0], gt[0])
    assert np.isfinite(trk.update(frames[1])).all()


def _strip_adapted(path):
    """Rewrite ``path`` as metatrack 0.1 wrote it: no ``adapted`` and no ``family``."""
    obj = torch.load(path, weights_only=True)
    obj["state"].pop("adapted")
    obj["state"].pop("family")
    torch.save(obj, path)


def test_weights_record_which_tensors_adapt(tmp_path):
    from tracker.sdnet.online import MetaSDNetTracker

    w = untrained_weights(ModelConfig.tiny(), seed=3)
    fc = tuple(k for k in w.params if k.startswith("fc."))
    assert w.adapted == fc                                  # the untrained start adapts fc4-6
    w.alpha = {k: torch.full_like(v, 1e-4) for k, v in w.params.items()}   # conv rates too ...
    path = str(tmp_path / "w.pt")
    save_weights(path, w)
    back = load_weights(path)
    assert back.adapted == fc                               # ... but the record decides, not the rates
    assert MetaSDNetTracker(weights=path).learner().inner_names == list(fc)
    w.adapted = tuple(w.params)
    save_weights(path, w)
    assert MetaSDNetTracker(weights=path).learner().inner_names == list(w.params)


@pytest.mark.parametrize("case", ["zero_conv_rates", "fc_attenuator", "all_attenuator", "conv_rates"])
def test_files_without_the_record_keep_their_old_meaning(tmp_path, case):
    """metatrack 0.1 files: the attenuator's width, or all-zero conv rates, tell what adapts."""
    from meta_learning import Attenuator

    w = untrained_weights(ModelConfig.tiny(), seed=3)
    names, fc = tuple(w.params), tuple(k for k in w.params if k.startswith("fc."))
    if case == "fc_attenuator":
        w.attenuator = Attenuator(len(fc), "sigmoid").state_dict()
    elif case == "all_attenuator":
        w.attenuator = Attenuator(len(names), "sigmoid").state_dict()
    elif case == "conv_rates":
        w.alpha = {k: torch.full_like(v, 1e-4) for k, v in w.params.items()}
    w.l2f = L2FSettings(input="mean") if w.attenuator is not None else None
    path = str(tmp_path / "old.pt")
    save_weights(path, w)
    _strip_adapted(path)
    expected = names if case in ("all_attenuator", "conv_rates") else fc
    assert load_weights(path).adapted == expected


def test_one_family_does_not_load_the_others_weights(tmp_path):
    from tracker.crest.weights import load_crest_weights

    path = str(tmp_path / "sdnet.pt")
    save_weights(path, untrained_weights(ModelConfig.tiny()))
    with pytest.raises(UserError, match="holds MetaSDNet weights, not MetaCREST's"):
        load_crest_weights(path)
