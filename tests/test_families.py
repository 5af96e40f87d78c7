"""Tracker families as registry objects: each name knows its family and variant, the four variants
come from one table (tracker/variants.py) that the weights recipes read too, and ``metatrack eval
--weights LABEL=FILE --option KEY=VALUE`` runs a weights file under its family's tracker."""
import os
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracker.api as api
from foundation.checkpoint import save_checkpoint
from foundation.errors import UserError
from otb_eval.testing import make_sequence
from tracker.cli import main
from tracker.family import Family
from tracker.variants import DROPGRAD_FLAGS, L2F_FLAGS, VARIANTS, variant

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("fam, plain, title", [("metasdnet", "mdnet", "MetaSDNet"),
                                               ("metacrest", "crest", "MetaCREST")])
def test_every_name_knows_its_family_and_variant(fam, plain, title):
    names = api.variants(fam)
    assert names == [fam, f"{fam}-l2f", f"{fam}-dropgrad", f"{fam}-l2f-dropgrad"]
    flags = [(api.spec(n).variant.l2f, api.spec(n).variant.dropgrad) for n in names]
    assert flags == [(False, False), (True, False), (False, True), (True, True)]
    for n in names + [plain]:
        assert api.family_of(n) is api.family(fam) and api.family_of(n).title == title
    assert api.spec(plain).variant is None and api.family(fam).plain == plain
    assert [f.name for f in api.families()] == ["metasdnet", "metacrest"]


def test_outside_a_family_and_unknown_names():
    for n in ("identity", "mil", "csrt", "no-such-tracker"):
        assert api.family_of(n) is None
    with pytest.raises(UserError, match="unknown tracker family 'mdnet'; known families: metasdnet, metacrest"):
        api.family("mdnet")
    with pytest.raises(UserError, match="unknown variant 'l2x'"):
        variant("l2x")


def test_a_family_object_loads_what_it_names():
    from tracker.crest.online import CRESTOptions, MetaCRESTTracker
    from tracker.sdnet.weights import load_weights, save_weights

    sd, cr = api.family("metasdnet"), api.family("metacrest")
    assert sd.load("read_weights") is load_weights and sd.load("write_weights") is save_weights
    assert cr.load("tracker") is MetaCRESTTracker and cr.load("options") is CRESTOptions
    assert sd.load("train").__name__ == "meta_train" and cr.load("train_config").__name__ == "CRESTTrainConfig"
    sd.check_options({"top_k": 3, "mode": "exact"}, "metasdnet")
    with pytest.raises(UserError, match="unknown option.*for metacrest: top_k"):
        cr.check_options({"top_k": 3}, "metacrest")
    with pytest.raises(UserError, match="update_lr must be a finite number"):
        cr.check_options({"update_lr": "abc"}, "crest")


def test_a_third_family_is_one_object_and_one_line(monkeypatch):
    monkeypatch.setattr(api, "_REGISTRY", dict(api._REGISTRY))
    monkeypatch.setattr(api, "_FAMILIES", dict(api._FAMILIES))
    toy = Family(name="metatoy", title="MetaToy", about="a toy", tracker="tracker.api:IdentityTracker",
                 plain="toy", plain_tracker="tracker.api:IdentityTracker", plain_about="plain toy",
                 options="x:y", read_weights="x:y", write_weights="x:y", train_config="x:y", train="x:y",
                 add_meta_train_args=lambda group: None, meta_train_settings=lambda args: {})
    api.register_family(toy)
    assert {"metatoy", "metatoy-l2f", "metatoy-dropgrad", "metatoy-l2f-dropgrad", "toy"} <= set(api.names())
    assert api.spec("metatoy-l2f").description == "MetaToy meta-trained with L2F (task-and-layer-wise attenuation)"
    assert api.make("metatoy-dropgrad").name == "metatoy-dropgrad"
    assert api.family_of("toy") is toy
    from tracker.overlay import NAMED_COLORS, colors_for

    assert colors_for(["metatoy-l2f"]) == {"metatoy-l2f": NAMED_COLORS["green"]}
    with pytest.raises(ValueError, match="already registered"):
        api.register_family(toy)


def test_registering_imports_no_torch():
    code = "import sys, tracker, tracker.cli; tracker.cli.build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


# ------------------------------------------------------------ the variant table and the recipes
def test_variant_table_and_its_command(capsys):
    assert [v.key for v in VARIANTS] == ["base", "l2f", "dropgrad", "l2f-dropgrad"]
    assert variant("l2f-dropgrad").flags() == L2F_FLAGS + DROPGRAD_FLAGS and variant("base").flags() == ()
    assert main(["variant", "metacrest", "dropgrad", "base"]) == 0
    assert capsys.readouterr().out.splitlines() == ["metacrest-dropgrad " + " ".join(DROPGRAD_FLAGS), "metacrest"]
    assert main(["variant", "metasdnet", "base", "nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "unknown variant 'nope'" in captured.err   # nothing printed before the check
    assert main(["--help"]) == 0
    assert "variant" not in capsys.readouterr().out                          # a helper, not a command


def _stand_in_metatrack(tmp_path):
    """A ``metatrack`` on PATH that logs each command to the returned file (only ``metatrack
    variant`` is real), and the recipe environment that puts it first."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    fake = bin_dir / "metatrack"
    fake.write_text(textwrap.dedent(f"""\
        #!/usr/bin/env bash
        if [ "$1" = variant ]; then
          exec {sys.executable} -c 'import sys; from tracker.cli import main; sys.exit(main(sys.argv[1:]))' "$@"
        fi
        echo "$*" >> {log}
        """))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": ROOT,
           "DATA": str(tmp_path / "data"), "OUT": str(tmp_path / "out")}
    return env, log


@pytest.mark.parametrize("family", ["metasdnet", "metacrest"])
def test_recipes_train_each_variant_with_the_tables_flags(tmp_path, family):
    """weights/train_<family>.sh with a stand-in metatrack that logs each command (only
    ``metatrack variant`` is real): every variant is trained with exactly the table's flags."""
    env, log = _stand_in_metatrack(tmp_path)
    env["VARIANTS"] = "l2f-dropgrad base l2f"
    done = subprocess.run(["bash", os.path.join("weights", f"train_{family}.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    trained = [line.split() for line in log.read_text().splitlines() if line.startswith("meta-train")]
    outs = [os.path.basename(words[words.index("--out") + 1]) for words in trained]
    assert outs == [f"{family}-l2f-dropgrad.pt", f"{family}.pt", f"{family}-l2f.pt"]
    for words, key in zip(trained, ("l2f-dropgrad", "base", "l2f")):
        assert ("--l2f" in words) == variant(key).l2f and ("--dropgrad" in words) == variant(key).dropgrad
        flags = words[words.index("--no-progress") + 1:words.index("--out")]
        assert tuple(flags) == variant(key).flags(), (key, flags)
    env["VARIANTS"] = "base bogus"
    done = subprocess.run(["bash", os.path.join("weights", f"train_{family}.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "unknown variant 'bogus'" in done.stderr


def test_recipe_imagery_packages_synthesises_from_the_package_folders(tmp_path):
    """IMAGERY=packages: the train split from Tux Paint's cut-outs and mate's photographs in the
    footage profile, the val split with the cut-outs only (mate gives it no photograph), both in
    folders of their own that training reads; a bad IMAGERY is one line and exit 2."""
    env, log = _stand_in_metatrack(tmp_path)
    env.update(VARIANTS="base", IMAGERY="packages")
    stamps, backgrounds = str(tmp_path / "stamps"), str(tmp_path / "nature")   # the package folders' stand-ins
    os.makedirs(stamps)
    os.makedirs(backgrounds)
    env.update(STAMPS=stamps, BACKGROUNDS=backgrounds)
    done = subprocess.run(["bash", os.path.join("weights", "train_metacrest.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    calls = [line.split() for line in log.read_text().splitlines()]
    train, val = [c for c in calls if c[0] == "synth"]
    assert train[1].endswith("synth-train-packages") and val[1].endswith("-packages")
    assert train[train.index("--profile") + 1] == "footage" == val[val.index("--profile") + 1]
    assert train[train.index("--objects") + 1] == stamps == val[val.index("--objects") + 1]
    assert train[train.index("--backgrounds") + 1] == backgrounds
    assert "--backgrounds" not in val
    (trained,) = [c for c in calls if c[0] == "meta-train"]
    assert trained[trained.index("--dataset") + 1] == train[1] and trained[trained.index("--val-dataset") + 1] == val[1]
    assert trained[trained.index("--feature-cache") + 1].endswith("features-packages")
    env["IMAGERY"] = "photos"
    done = subprocess.run(["bash", os.path.join("weights", "train_metacrest.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "IMAGERY must be default or packages, got 'photos'"


# ------------------------------------------------------------ metatrack eval --weights / --option
@pytest.fixture(scope="module")
def val(tmp_path_factory):
    from tracker.sdnet.model import ModelConfig
    from tracker.sdnet.weights import save_weights, untrained_weights

    root = tmp_path_factory.mktemp("val")
    make_sequence(str(root / "data"), "SynVal001", 4, seed=3)
    weights = str(root / "fresh.pt")
    save_weights(weights, untrained_weights(ModelConfig.tiny()), {"note": "test weights"})
    return {"data": str(root / "data"), "weights": weights}


def test_eval_weights_runs_the_file_under_its_family_with_the_options(val, tmp_path, monkeypatch, capsys):
    made = []
    real_make = api.make

    def spy(name, **options):
        made.append((name, dict(options)))
        return real_make(name, **options)

    monkeypatch.setattr(api, "make", spy)
    results = tmp_path / "results"
    assert main(["eval", "--dataset", val["data"], "--results", str(results), "--weights",
                 f"fresh={val['weights']}", "--option", "top_k=3", "--device", "cpu", "--no-progress"]) == 0
    assert os.listdir(results) == ["fresh"]
    assert ("metasdnet", {"weights": val["weights"], "top_k": 3, "device": "cpu"}) in made
    assert "fresh (OPE): 1 runs tracked" in capsys.readouterr().out
    # the same boxes as the tracker made by hand from the file with the option
    from foundation.images import read_bgr
    from otb_eval.datasets import OTBDataset

    seq = OTBDataset(val["data"])[0]
    trk = real_make("metasdnet", weights=val["weights"], top_k=3)
    trk.init(read_bgr(seq.img_files[0]), seq.anno[0])
    boxes = [seq.anno[0]] + [trk.update(read_bgr(f)) for f in seq.img_files[1:]]
    written = np.loadtxt(results / "fresh" / "SynVal001.txt", delimiter=",")
    assert np.allclose(written, np.array(boxes), atol=1e-3)


@pytest.mark.parametrize("extra, needle", [
    (["--weights", "fresh={w}", "--option", "nosuch=1"], "unknown option(s) for metasdnet: nosuch"),
    (["--weights", "fresh={w}", "--option", "top_k=abc"], "top_k must be an integer"),
    (["--weights", "fresh={w}", "--option", "top_k"], "--option needs KEY=VALUE"),
    (["--weights", "fresh=/no/such/file.pt"], "weights file /no/such/file.pt does not exist"),
    (["--weights", "{w}"], "--weights needs LABEL=FILE"),
    (["--weights", "a/b={w}"], "LABEL names a results folder"),
    (["--weights", "x={ckpt}"], "holds no tracker weights"),
    (["--trackers", "metasdnet", "--weights", "metasdnet={w}"], "result name(s) given twice: metasdnet"),
    (["--trackers", "identity", "--option", "top_k=1"], "tracker 'identity' takes no options"),
    ([], "nothing to run"),
])
def test_eval_bad_weights_or_option_is_one_line_before_work(val, tmp_path, capsys, extra, needle):
    ckpt = str(tmp_path / "other.pt")
    save_checkpoint(ckpt, {"something": 1})
    results = tmp_path / "results"
    args = [a.format(w=val["weights"], ckpt=ckpt) for a in extra]
    assert main(["eval", "--dataset", val["data"], "--results", str(results), "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("metatrack eval: error:") and needle in err[0], err
    assert not results.exists()


def test_family_of_a_weights_file(val):
    assert api.family_of_weights(val["weights"]).name == "metasdnet"
