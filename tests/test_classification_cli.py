"""metalearn classification: one-line errors (exit 2) before any work, a tiny run's outputs,
--evaluate across data sets, and the Table A/B configs."""
import json

import numpy as np
import pytest
from PIL import Image

from meta_learning.cli import build_parser, main
from meta_learning.tasks.classification.cli import _config
from meta_learning.tasks.classification.configs import CONFIGS

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = ["--image-size", "16", "--iterations", "4", "--meta-batch", "2", "--inner-steps", "2", "--queries", "2",
        "--val-every", "2", "--val-tasks", "3", "--eval-tasks", "5", "--checkpoint-every", "2", "--quiet"]


def _folder(root, classes=20, per_class=5, grey=False):
    rng = np.random.default_rng(0)
    for c in range(classes):
        d = root / f"c{c}"
        d.mkdir(parents=True)
        base = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        for i in range(per_class):
            img = np.clip(base.astype(int) + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img[..., 0] if grey else img).save(d / f"{i}.png")
    return root


@pytest.mark.parametrize("extra, needle", [
    (["--ways", "1"], "--ways"),
    (["--shots", "0"], "--shots"),
    (["--dataset", "imagenet"], "--dataset"),
    (["--config", "table-z"], "--config"),
    (["--dropgrad-rate", "1"], "--dropgrad-rate"),
    (["--image-size", "8"], "--image-size"),
    (["--l2-meta-reg", "eqc"], "--l2-gamma"),
    (["--surgery", "both"], "--surgery"),
    (["--evaluate", "NOFILE"], "not a file"),
    (["--resume"], "no checkpoint"),
    (["--backbone", "vgg"], "--backbone"),
    (["--split", "all"], "--split"),
    (["--split", "every"], "--split"),
])
def test_bad_input_is_one_line_and_exit_2(extra, needle, tmp_path, capsys):
    root = _folder(tmp_path / "data")
    argv = ["classification", "--dataset", "folder", "--root", str(root), "--ways", "3", "--shots", "1",
            "--out", str(tmp_path / "o")] + TINY + [str(tmp_path / "none.pt") if a == "NOFILE" else a for a in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


def test_too_few_classes_or_images_is_caught_before_training(tmp_path, capsys):
    root = _folder(tmp_path / "data", classes=5, per_class=2)
    argv = ["classification", "--dataset", "folder", "--root", str(root), "--ways", "3", "--shots", "1",
            "--out", str(tmp_path / "o")] + TINY
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("classes" in err or "images" in err)


def test_tiny_run_then_cross_domain_evaluation(tmp_path, capsys):
    root = _folder(tmp_path / "rgb")
    out = tmp_path / "run"
    argv = ["classification", "--dataset", "folder", "--root", str(root), "--ways", "3", "--shots", "1",
            "--l2f", "--out", str(out)] + TINY
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert 0.0 <= res["accuracy"]["mean"] <= 1.0 and res["accuracy"]["ci95"] >= 0 and res["accuracy"]["tasks"] == 5
    assert res["config"]["ways"] == 3 and res["config"]["l2f"] and res["config"]["method"] == "MAML+L2F"
    assert len(res["members"]) == 2 and len(res["gamma"]) == 6
    assert (out / "checkpoint.pt").exists() and (out / "model.pt").exists()
    assert "MAML+L2F 3-way 1-shot on folder" in capsys.readouterr().out
    assert main(argv) == 0                               # finished run: resumes at its end, same numbers
    assert json.loads((out / "results.json").read_text())["accuracy"] == res["accuracy"]
    grey = _folder(tmp_path / "grey", grey=True)
    ev = tmp_path / "ev"
    assert main(["classification", "--dataset", "folder", "--root", str(grey), "--ways", "3", "--shots", "2",
                 "--queries", "2", "--eval-tasks", "4", "--evaluate", str(out / "model.pt"), "--out", str(ev),
                 "--quiet"]) == 0
    r2 = json.loads((ev / "results.json").read_text())
    assert r2["accuracy"]["tasks"] == 4 and r2["config"]["shots"] == 2 and r2["trained"]["dataset"] == "folder"
    assert main(["classification", "--dataset", "folder", "--root", str(grey), "--ways", "4", "--shots", "1",
                 "--evaluate", str(out / "model.pt"), "--out", str(ev), "--quiet"]) == 2
    assert "--ways 3" in capsys.readouterr().err


def test_split_all_scores_every_class_of_a_new_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["classification", "--dataset", "folder", "--root", str(_folder(tmp_path / "train", classes=30)),
                 "--ways", "5", "--shots", "1", "--out", str(out)] + TINY) == 0
    other = _folder(tmp_path / "other", classes=10, grey=True)   # its test split alone has 2 classes
    ev = ["classification", "--dataset", "folder", "--root", str(other), "--ways", "5", "--shots", "1",
          "--queries", "2", "--eval-tasks", "4", "--evaluate", str(out / "model.pt"), "--quiet"]
    capsys.readouterr()
    assert main(ev + ["--out", str(tmp_path / "test")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 classes" in err and "--split all" in err
    assert main(ev + ["--split", "all", "--out", str(tmp_path / "all")]) == 0
    res = json.loads((tmp_path / "all" / "results.json").read_text())
    assert res["split"] == "all" and res["classes"] == 10 and res["accuracy"]["tasks"] == 4
    assert "(all split, 10 classes)" in capsys.readouterr().out
    assert main(ev + ["--split", "train", "--out", str(tmp_path / "train_split")]) == 0
    assert json.loads((tmp_path / "train_split" / "results.json").read_text())["classes"] == 6


def test_help_says_95_percent_once(capsys):
    assert main(["classification", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "95% CI" in text and "%%" not in text and "--split" in text


def test_configs_hold_every_row_of_tables_a_and_b(tmp_path):
    a = [n for n in CONFIGS if n.startswith("table-a/")]
    b = [n for n in CONFIGS if n.startswith("table-b/")]
    assert len(a) == 16 and len(b) == 4
    for name in a + b:
        c = CONFIGS[name]
        assert c["ways"] == 5 and c["backbone"] == "conv4" and c["image_size"] == 84 and c["queries"] == 15
        assert c["inner_steps"] == 5 and c["inner_lr"] == 0.01 and c["outer_lr"] == 1e-3 and c["clamp"] == 10.0
        assert c["eval_tasks"] == 600 and c["top_k"] == 3
        assert c["meta_batch"] == (2 if c["shots"] == 5 else 4)
        assert c["iterations"] == (125_000 if c["dataset"] == "tieredimagenet" else 50_000)
    assert CONFIGS["table-a/tieredimagenet-5way-1shot-l2f"]["l2f"] is True
    assert CONFIGS["table-a/miniimagenet-5way-5shot-pcgrad"]["surgery"] == "pcgrad"
    assert {CONFIGS[n]["l2_meta_reg"] for n in b} == {"eqc", "mean", "min", "max"}
    (tmp_path / "mini").mkdir()
    gamma = tmp_path / "l2f.json"
    gamma.write_text(json.dumps({"gamma": {"features.0.weight": 0.5, "classifier.weight": 0.25}}))
    args = build_parser().parse_args(["classification", "--config", "table-b/miniimagenet-5way-5shot-l2-eqc",
                                      "--root", str(tmp_path / "mini"), "--l2-gamma", str(gamma),
                                      "--iterations", "7", "--out", str(tmp_path / "o")])
    cfg = _config(args)
    assert cfg.dataset == "miniimagenet" and cfg.shots == 5 and cfg.iterations == 7 and cfg.meta_batch == 2
    assert cfg.l2_gamma == {"features.0.weight": 0.5, "classifier.weight": 0.25}
    assert cfg.resolved().meta_config().l2_meta_reg == "eqc"
