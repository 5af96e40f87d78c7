"""``--device`` and ``tracker.make(name, device=...)``: every tensor on the chosen device.

Without a GPU the machine-independent part is checked here: ``--device cpu`` is accepted by every
command that computes with tensors, an unavailable CUDA device is one line and exit 2 before any
work (no output left behind), ``device="cpu"`` changes no result, and a static scan finds tensor
factories in the trackers and their training that would put a tensor on the CPU behind the
device's back. The tests marked ``cuda`` compare CPU and GPU runs where a GPU exists.
"""
from __future__ import annotations

import ast
import io
import os
import subprocess
import sys
import textwrap
import tokenize
import warnings

import numpy as np
import pytest
import torch

import tracker
from foundation.errors import UserError
from meta_learning.l2f import L2FSettings
from otb_eval.testing import patch_sequence, write_otb_sequence
from tracker.cli import main
from tracker.sdnet.model import ModelConfig
from tracker.sdnet.weights import save_weights, untrained_weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAVE_CUDA, reason="no CUDA device")
no_cuda = pytest.mark.skipif(HAVE_CUDA, reason="a CUDA device exists: `--device cuda` is then valid")


# ------------------------------------------------------------------ the static scan
# Where tensors are made for tracking and training. Each factory call must say where its tensor
# lives: a ``device=`` keyword, a ``.to(<...device...>)`` in the same expression, or a
# ``# device: <reason>`` comment on its lines (a tensor that stays on the CPU on purpose, or one
# that keeps its input's device). ``torch.Generator()`` is not scanned: seeded draws come from CPU
# generators on purpose, so a start or a sample is the same numbers on every device.
SCANNED = ("tracker/sdnet", "tracker/crest", "tracker/metatrain", "tracker/weights.py")
FACTORIES = {"zeros", "ones", "empty", "full", "eye", "arange", "linspace", "logspace", "rand",
             "randn", "randint", "randperm", "tensor", "as_tensor", "from_numpy", "scalar_tensor",
             "hann_window", "hamming_window"}
MARK = "# device:"


def _comments(source: str) -> dict[int, str]:
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string
    return out


def _marked(node: ast.AST, comments: dict[int, str]) -> bool:
    for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
        text = comments.get(line, "")
        if MARK in text and text.split(MARK, 1)[1].strip():   # a reason must follow the mark
            return True
    return False


def _moved(call: ast.Call, parents: dict[ast.AST, ast.AST]) -> bool:
    """``torch.x(...)...to(<something naming a device>)``: moved in the same expression."""
    node = call
    while True:
        parent = parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node:
            grand = parents.get(parent)
            if isinstance(grand, ast.Call) and grand.func is parent:
                if parent.attr == "to" and any("device" in ast.unparse(a)
                                               for a in [*grand.args, *(k.value for k in grand.keywords)]):
                    return True
                node = grand
                continue
            node = parent
            continue
        return False


def scan_source(source: str, name: str = "<source>") -> list[str]:
    """Factory calls and ``.numpy()`` conversions that do not say where their tensor lives."""
    tree = ast.parse(source, name)
    comments = _comments(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        f = node.func
        if (isinstance(f.value, ast.Name) and f.value.id == "torch" and f.attr in FACTORIES
                and not any(k.arg == "device" for k in node.keywords)
                and not _moved(node, parents) and not _marked(node, comments)):
            found.append(f"{name}:{node.lineno}: torch.{f.attr}(...) without device=")
        if f.attr == "numpy" and not node.args and not _marked(node, comments):
            receiver = f.value
            if not (isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Attribute)
                    and receiver.func.attr == "cpu"):
                found.append(f"{name}:{node.lineno}: .numpy() without .cpu() first")
    return found


def _justified_lines(source: str) -> set[int]:
    """Lines of factory calls the scan accepts although they name no device (moved or marked)."""
    tree = ast.parse(source)
    comments = _comments(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    lines: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
                and node.func.attr in FACTORIES and (_moved(node, parents) or _marked(node, comments))):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return lines


def _scanned_files():
    for entry in SCANNED:
        path = os.path.join(ROOT, entry)
        if path.endswith(".py"):
            yield path
            continue
        for dirpath, _, names in os.walk(path):
            yield from (os.path.join(dirpath, n) for n in sorted(names) if n.endswith(".py"))


def test_tensor_factories_in_trackers_and_training_name_their_device():
    found = []
    for path in _scanned_files():
        with open(path, encoding="utf-8") as f:
            found += scan_source(f.read(), os.path.relpath(path, ROOT))
    assert not found, "\n".join(found)


def test_at_run_time_every_factory_without_a_device_is_one_the_scan_accepted(tmp_path, one_thread):
    """The static scan, checked against what really runs: every tensor factory called without a
    device from ``tracker/`` while two trackers track and both families meta-train is a call the
    scan saw and accepted (moved to a device, or marked as CPU on purpose)."""
    import traceback

    from torch.overrides import TorchFunctionMode

    from tracker.metatrain.crest import CRESTTrainConfig, meta_train_crest
    from tracker.metatrain.sdnet import MetaTrainConfig, meta_train
    from tracker.metatrain.sources import load_tracks

    package = os.path.join(ROOT, "tracker") + os.sep
    hits: set[tuple[str, int, str]] = set()

    class Spy(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = getattr(func, "__name__", "")
            if name in FACTORIES and "device" not in kwargs:
                frame = traceback.extract_stack()[-2]     # the caller (the engine's and torch's own: not ours)
                if frame.filename.startswith(package):
                    hits.add((frame.filename, frame.lineno, name))
            return func(*args, **kwargs)

    frames, gt = patch_sequence(n=4, size=(160, 120), seed=3)
    for i in range(2):
        f, g = patch_sequence(n=5, size=(96, 72), box=(30, 20, 24, 20), seed=10 + i)
        write_otb_sequence(str(tmp_path / "data"), f"S{i}", f, g)
    tracks = load_tracks(str(tmp_path / "data"), "otb")
    with warnings.catch_warnings(), Spy():
        warnings.simplefilter("ignore")
        for name, kw in (("metasdnet-l2f", {}), ("mdnet", {"finetune_pos": 50, "finetune_neg": 100}),
                         ("metacrest-l2f", {}), ("crest", {"init_iters": 2})):
            _boxes(tracker.make(name, device="cpu", **kw), frames, gt)
        for adapt in ("all", "fc"):
            meta_train(tracks, MetaTrainConfig(iterations=1, meta_batch=1, adapt=adapt, l2f=L2FSettings(), dropgrad="binary",
                                               model=ModelConfig.tiny().to_dict(), pretrain_iterations=1),
                       str(tmp_path / f"{adapt}.pt"), progress=False, device="cpu")
        meta_train_crest(tracks, CRESTTrainConfig(iterations=1, meta_batch=1, l2f=L2FSettings()),
                         str(tmp_path / "crest.pt"), progress=False, device="cpu")
    assert hits, "the spy saw nothing: the check would be empty"
    justified: dict[str, set[int]] = {}
    unexplained = []
    for path, line, name in sorted(hits):
        if path not in justified:
            with open(path, encoding="utf-8") as f:
                justified[path] = _justified_lines(f.read())
        if line not in justified[path]:
            unexplained.append(f"{os.path.relpath(path, ROOT)}:{line}: torch.{name} without a device")
    assert not unexplained, "\n".join(unexplained)


def test_the_scan_fails_on_a_planted_bad_call():
    bad = textwrap.dedent("""
        import torch
        def f(x):
            a = torch.zeros(3)                       # flagged: CPU whatever x is
            b = torch.arange(4).float()              # flagged: a chain without .to(device)
            c = torch.randn(2, generator=g).to(torch.float64)   # flagged: .to a dtype only
            d = x.detach().numpy()                   # flagged: no .cpu() first
            e = torch.ones(2)  # device:
            return a, b, c, d, e
    """)
    found = scan_source(bad)
    assert sorted(int(s.split(":")[1]) for s in found) == [4, 5, 6, 7, 8], found   # a bare mark is no reason
    good = textwrap.dedent("""
        import torch
        def f(x, device):
            a = torch.zeros(3, device=x.device)
            b = torch.randn(2, generator=g).mul_(0.1).to(device)
            c = torch.from_numpy(arr).float().to(x.device)
            d = x.detach().cpu().numpy()
            e = torch.ones(2)  # device: CPU on purpose, the caller moves it
            f = torch.zeros_like(x)
            return a, b, c, d, e, f
    """)
    assert scan_source(good) == []


# ------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def ws(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("devices")
    for i in range(2):
        f, g = patch_sequence(n=5, size=(96, 72), box=(30, 20, 24, 20), seed=20 + i)
        write_otb_sequence(str(root / "data"), f"Seq{i}", f, g)
    save_weights(str(root / "tiny.pt"), untrained_weights(ModelConfig.tiny()))
    return root


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _commands(ws, out: str, device: str) -> dict[str, list[str]]:
    """A short run of every command that takes --device, writing to ``out``."""
    d = str(ws / "data")
    quick = ["--iterations", "1", "--meta-batch", "1", "--no-progress", "--device", device]
    return {
        "track": ["track", f"{d}/Seq0", "--weights", str(ws / "tiny.pt"), "--out", out, "--no-video",
                  "--no-progress", "--device", device],
        "eval": ["eval", "--dataset", d, "--trackers", "metasdnet,identity", "--results", out,
                 "--no-progress", "--device", device],
        "demo": ["demo", "--out", out, "--sequences", "1", "--frames", "8:9", "--workers", "1",
                 "--device", device],
        "pretrain": ["pretrain", "--dataset", d, "--model", "tiny", "--iterations", "1", "--out",
                     out + ".pt", "--no-progress", "--device", device],
        "meta-train": ["meta-train", "--dataset", d, "--model", "tiny", "--out", out + ".pt", *quick],
        "meta-train-crest": ["meta-train", "--tracker", "metacrest", "--dataset", d, "--out", out + ".pt",
                             *quick],
    }


# ------------------------------------------------------------------ the command line
@pytest.mark.parametrize("command", ["track", "eval", "pretrain", "meta-train", "meta-train-crest"])
def test_device_cpu_is_accepted(command, ws, tmp_path, capsys):
    # `demo --device cpu` runs in tests/test_demo.py (a whole demo is too long to run twice)
    out = str(tmp_path / "out")
    assert main(_commands(ws, out, "cpu")[command]) == 0, capsys.readouterr().err
    assert os.path.exists(out) or os.path.exists(out + ".pt")


@no_cuda
@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
@pytest.mark.parametrize("command", ["track", "eval", "demo", "pretrain", "meta-train", "meta-train-crest"])
def test_an_absent_cuda_device_is_one_line_and_writes_nothing(command, spec, ws, tmp_path, capfd):
    out = str(tmp_path / "new" / "out")
    capfd.readouterr()
    assert main(_commands(ws, out, spec)[command]) == 2
    captured = capfd.readouterr()
    lines = _lines(captured.err)
    name = command.replace("-crest", "")
    assert lines == [f"metatrack {name}: error: --device {spec}: this torch is built without CUDA; "
                     "use --device cpu (or auto)"] or (len(lines) == 1 and "no CUDA device" in lines[0]), lines
    assert "Traceback" not in captured.out + captured.err
    assert not os.path.exists(tmp_path / "new"), os.listdir(tmp_path / "new")


@pytest.mark.parametrize("command", ["track", "eval", "demo", "pretrain", "meta-train"])
def test_a_bad_device_name_is_one_line(command, ws, tmp_path, capfd):
    out = str(tmp_path / "new" / "out")
    capfd.readouterr()
    assert main(_commands(ws, out, "tpu")[command]) == 2
    lines = _lines(capfd.readouterr().err)
    assert len(lines) == 1 and "--device 'tpu' is not a device" in lines[0], lines
    assert not os.path.exists(tmp_path / "new")


def test_every_tensor_command_has_the_flag():
    from tracker.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("track", "eval", "demo", "pretrain", "meta-train"):
        action = next(a for a in sub.choices[name]._actions if a.dest == "device")
        assert action.default == "auto" and "cuda:N" in action.help


def test_the_parser_does_not_import_torch():
    # `metatrack --help` stays instant although five subcommands show --device's help
    code = "import sys; from tracker.cli import build_parser; build_parser(); assert 'torch' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, proc.stderr[-2000:]


@no_cuda
def test_eval_on_cuda_with_several_workers_is_refused_before_work(ws, tmp_path, monkeypatch, capfd):
    # worker processes are forked: they cannot use a CUDA context of their parent
    import tracker.cli.eval_cmd as eval_cmd

    monkeypatch.setattr(eval_cmd, "resolve_device_arg", lambda args: torch.device("cuda", 0))
    out = tmp_path / "res"
    capfd.readouterr()
    assert main(["eval", "--dataset", str(ws / "data"), "--trackers", "identity", "--results", str(out),
                 "--workers", "2", "--no-progress"]) == 2
    lines = _lines(capfd.readouterr().err)
    assert len(lines) == 1 and "--workers 2" in lines[0] and "cuda" in lines[0], lines
    assert not out.exists()


# ------------------------------------------------------------------ the API
FAMILIES = {
    "metasdnet": {}, "metasdnet-l2f": {}, "metacrest": {}, "metacrest-l2f": {},
    "mdnet": {"finetune_pos": 100, "finetune_neg": 400, "finetune_iters": 5},
    "crest": {"init_iters": 10},
}


def _boxes(trk, frames, gt) -> np.ndarray:
    trk.init(frames[0], gt[0])
    return np.array([gt[0]] + [trk.update(f) for f in frames[1:]], dtype=float)


@pytest.fixture(scope="module")
def clip():
    return patch_sequence(n=8, size=(160, 120), seed=3)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_make_on_the_cpu_gives_the_default_boxes_bit_for_bit(name, clip, one_thread):
    frames, gt = clip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = _boxes(tracker.make(name, **FAMILIES[name]), frames, gt)
        on_cpu = _boxes(tracker.make(name, device="cpu", **FAMILIES[name]), frames, gt)
        auto = _boxes(tracker.make(name, device="auto", **FAMILIES[name]), frames, gt) if not HAVE_CUDA else on_cpu
    assert np.array_equal(default, on_cpu) and np.array_equal(default, auto)


def test_trackers_without_tensors_take_and_ignore_the_device(clip):
    frames, gt = clip
    assert np.array_equal(_boxes(tracker.make("identity", device="cpu"), frames, gt),
                          _boxes(tracker.make("identity"), frames, gt))
    # (MIL's boxes depend on OpenCV's random state, docs/architecture.md: only that it runs)
    assert _boxes(tracker.make("mil", device="cpu"), frames, gt).shape == (len(frames), 4)


@no_cuda
@pytest.mark.parametrize("name", ["identity", "mil", "metasdnet", "metacrest"])
def test_make_on_an_absent_cuda_device_is_one_user_error(name):
    with pytest.raises(UserError, match="this torch is built without CUDA") as exc:
        tracker.make(name, device="cuda")
    assert "\n" not in str(exc.value)
    with pytest.raises(UserError, match="without CUDA"):
        tracker.factory(name, device="cuda:0")          # before any work, like an unknown name


def test_a_factory_carries_the_device_to_worker_processes():
    import pickle

    f = tracker.factory("metasdnet", device="cpu")
    assert pickle.loads(pickle.dumps(f)).options["device"] == "cpu"
    assert f().device == torch.device("cpu")


def test_a_registered_tracker_without_a_device_parameter(monkeypatch):
    from tracker import api

    class Plain(api.IdentityTracker):
        def __init__(self, name: str = "plain"):
            super().__init__(name)

    monkeypatch.setitem(api._REGISTRY, "plain", api.TrackerSpec("plain", Plain))
    assert isinstance(tracker.make("plain", device="cpu"), Plain)        # the CPU is where it runs anyway
    assert isinstance(tracker.make("plain"), Plain)
    if HAVE_CUDA:
        with pytest.raises(UserError, match="runs on the CPU only"):
            tracker.make("plain", device="cuda")


# ------------------------------------------------------------------ on a GPU
def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from foundation.boxes import iou

    return np.array([iou(x[None], y[None])[0] for x, y in zip(a, b)]).ravel()


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_cuda_tracks_like_the_cpu(name, clip):
    frames, gt = clip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = _boxes(tracker.make(name, device="cpu", **FAMILIES[name]), frames, gt)
        trk = tracker.make(name, device="cuda", **FAMILIES[name])
        gpu = _boxes(trk, frames, gt)
    tensors = [v for v in vars(trk).values() if isinstance(v, torch.Tensor)]
    tensors += [v for d in vars(trk).values() if isinstance(d, dict) for v in d.values()
                if isinstance(v, torch.Tensor)]
    assert tensors and all(t.device.type == "cuda" for t in tensors)
    assert np.abs(cpu - gpu).max() < 1e-3 or _iou(cpu, gpu).min() > 0.99, np.abs(cpu - gpu).max()


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("command", ["track", "eval", "pretrain", "meta-train", "meta-train-crest"])
def test_device_cuda_runs_every_command(command, ws, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(_commands(ws, out, "cuda")[command]) == 0, capsys.readouterr().err


@pytest.mark.cuda
@needs_cuda
def test_cuda_meta_training_matches_the_cpu(ws, tmp_path):
    from tracker.metatrain.sdnet import MetaTrainConfig, meta_train
    from tracker.metatrain.sources import load_tracks

    tracks = load_tracks(str(ws / "data"), "otb")
    cfg = dict(iterations=2, meta_batch=2, model=ModelConfig.tiny().to_dict(), checkpoint_every=1)
    losses = []
    for device in ("cpu", "cuda"):
        result = meta_train(tracks, MetaTrainConfig(**cfg), str(tmp_path / f"{device}.pt"), progress=False,
                            device=device)
        losses.append(result.last_query_loss)
    assert abs(losses[0] - losses[1]) <= 1e-3 * max(1.0, abs(losses[0])), losses
