"""L2F's one settings object: its default is the shipped recipe, every config and weights file
holds it, old weights files still read, and the few-shot tasks keep the paper's protocol."""
import glob
import os

import pytest
import torch

from foundation.checkpoint import load_checkpoint, save_checkpoint
from foundation.errors import UserError
from meta_learning import MetaConfig
from meta_learning.l2f import EMBEDDINGS, INPUTS, MODES, SEED_PAPER_L2F, Attenuator, L2FSettings
from meta_learning.tasks.classification.configs import CONFIGS
from meta_learning.tasks.classification.train import ClassificationConfig
from meta_learning.tasks.regression import RegressionConfig
from meta_learning.tasks.rl.train import config_for
from otb_eval.synthetic import generate
from tracker.cli import build_parser, main
from tracker.cli.meta_train_cmd import L2F_INPUTS, L2F_MODES
from tracker.crest.weights import load_crest_weights
from tracker.sdnet.model import ModelConfig
from tracker.sdnet.weights import load_weights, save_weights, untrained_weights
from tracker.variants import L2F_FLAGS
from tracker.weights import frame1_learner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_default_is_the_shipped_recipe():
    flags = list(L2F_FLAGS)   # what the weights recipes pass (metatrack variant FAMILY)
    assert flags[0] == "--l2f"
    given = dict(zip(flags[1::2], flags[2::2]))
    default = L2FSettings()
    assert given == {"--l2f-mode": default.mode, "--l2f-input": default.input}
    assert SEED_PAPER_L2F == L2FSettings(mode="sigmoid", input="mean", embedding="detached", layers=2)


def test_bad_settings_are_one_error_each():
    for bad, match in ((L2FSettings(mode="tanh"), "mode"), (L2FSettings(input="raw"), "input"),
                       (L2FSettings(embedding="x"), "embedding"), (L2FSettings(layers=0), "layers")):
        with pytest.raises(ValueError, match=f"L2F {match}"):
            MetaConfig(l2f=bad).validate()
    with pytest.raises(ValueError, match="L2FSettings or None"):
        MetaConfig(l2f=True).validate()          # a bool would hide which settings run
    with pytest.raises(ValueError, match="unknown L2F settings"):
        L2FSettings.from_dict({"mode": "sigmoid", "l2f_mode": "sigmoid"})


def test_the_few_shot_tasks_run_the_papers_l2f():
    assert RegressionConfig(l2f=True).meta_config().l2f == SEED_PAPER_L2F
    assert RegressionConfig().meta_config().l2f is None
    assert config_for("2dnav", l2f=True).meta_config().l2f == SEED_PAPER_L2F
    row = ClassificationConfig(**CONFIGS["table-a/miniimagenet-5way-1shot-l2f"], root=".")
    assert row.resolved().meta_config().l2f == SEED_PAPER_L2F
    maml = ClassificationConfig(**CONFIGS["table-a/miniimagenet-5way-1shot-maml"], root=".")
    assert maml.resolved().meta_config().l2f is None


def _meta_train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["meta-train"]


def test_meta_train_flags_offer_what_the_engine_takes():
    # the flags' choices are spelled out to keep --help free of torch: they must match the engine's
    assert set(L2F_MODES) == set(MODES) and set(L2F_INPUTS) == set(INPUTS) and EMBEDDINGS
    helps = {a.dest: a.help for a in _meta_train_parser()._actions}
    default = L2FSettings()
    assert f"{default.mode}, {default.input}" in helps["l2f"]
    assert f"{default.mode} (default" in helps["l2f_mode"] and f"{default.input} (default" in helps["l2f_input"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synth"))
    generate(root, 2, seed=0, split="train", frames=(10, 12), size=(160, 120), progress=False)
    return root


def _meta_train(data, out, *flags):
    return main(["meta-train", "--dataset", data, "--model", "tiny", "--adapt", "fc", "--iterations", "1",
                 "--meta-batch", "1", "--no-progress", "--out", out, *flags])


def test_meta_train_l2f_alone_trains_the_shipped_settings(data, tmp_path):
    out = str(tmp_path / "l2f.pt")
    assert _meta_train(data, out, "--l2f") == 0
    state, meta = load_checkpoint(out)
    assert state["l2f"] == L2FSettings().to_dict()           # ONE entry ...
    assert not [k for k in state if k.startswith("l2f_")]    # ... and none of the old flat keys
    assert meta["train_config"]["l2f"] == L2FSettings().to_dict()
    assert meta["data"]["sources"] == {"profiles": ["default"]}   # what the training images were
    w = load_weights(out)
    assert w.l2f == L2FSettings() and w.attenuator["mlp.0.weight"].shape == (6, 12)   # normalized: 2 per tensor
    assert frame1_learner(w, _model(w), 1, 1e-4).config.l2f == L2FSettings()

    out = str(tmp_path / "identity.pt")
    assert _meta_train(data, out, "--l2f", "--l2f-mode", "identity") == 0
    assert load_weights(out).l2f == L2FSettings(mode="identity")
    assert _meta_train(data, str(tmp_path / "none.pt")) == 0
    state, _ = load_checkpoint(str(tmp_path / "none.pt"))
    assert "l2f" not in state and "attenuator" not in state


def test_an_override_without_l2f_is_refused(data, tmp_path, capsys):
    assert _meta_train(data, str(tmp_path / "x.pt"), "--l2f-input", "mean") == 2
    assert "--l2f-input: only with --l2f" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.pt")


def _model(w):
    from tracker.sdnet.model import MetaSDNet

    return MetaSDNet(w.config, w.params)


SHIPPED_L2F = {"metasdnet-l2f", "metasdnet-l2f-dropgrad", "metacrest-l2f", "metacrest-l2f-dropgrad"}


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "weights", "*.pt"))),
                         ids=os.path.basename)
def test_shipped_weights_read_as_before(path):
    # the shipped files predate the one entry: flat l2f_mode / l2f_layers / l2f_input
    name = os.path.basename(path)[:-3]
    state, _ = load_checkpoint(path)
    loader = load_crest_weights if state.get("family") == "metacrest" else load_weights
    w = loader(path)
    if name in SHIPPED_L2F:
        assert "l2f" not in state and state["l2f_mode"] == "sigmoid"
        assert w.l2f == L2FSettings(mode="sigmoid", input="normalized", layers=2, embedding="detached")
    else:
        assert w.l2f is None and w.attenuator is None


def _with_attenuator(mode: str = "identity", per_tensor: int = 1):
    w = untrained_weights(ModelConfig.tiny(), seed=1)
    w.attenuator = Attenuator(len(w.adapted_names()), mode, inputs=per_tensor).state_dict()
    return w


def test_old_flat_files_read_with_what_they_meant(tmp_path):
    w = _with_attenuator()
    w.l2f = L2FSettings(mode="identity", input="mean", layers=2)
    path = str(tmp_path / "w.pt")
    save_weights(path, w)
    state, meta = load_checkpoint(path)
    del state["l2f"]
    state.update(l2f_mode="identity", l2f_layers=2)            # an old file: no l2f_input yet
    save_checkpoint(path, state, meta)
    back = load_weights(path)
    assert back.l2f == L2FSettings(mode="identity", input="mean", layers=2, embedding="detached")
    torch.manual_seed(0)
    assert frame1_learner(back, _model(back), 1, 1e-4).attenuator.mode == "identity"

    del state["l2f_mode"]                                      # older still: MetaSDNet's sigmoid
    save_checkpoint(path, state, meta)
    assert load_weights(path).l2f.mode == "sigmoid"

    state["l2f"] = {"mode": "sigmoid", "input": "raw", "embedding": "detached", "layers": 2}
    save_checkpoint(path, state, meta)
    with pytest.raises(UserError, match="bad L2F settings: L2F input must be one of"):
        load_weights(path)


def test_an_attenuator_needs_its_settings(tmp_path):
    w = _with_attenuator()
    with pytest.raises(ValueError, match="need its settings"):
        save_weights(str(tmp_path / "w.pt"), w)
    with pytest.raises(UserError, match="without its settings"):
        frame1_learner(w, _model(w), 1, 1e-4)
