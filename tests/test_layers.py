"""The layers of docs/architecture.md hold: no import goes up, and each lower layer works alone.

foundation  <-  meta_learning, otb_eval (side by side)  <-  tracker  <-  tracker.cli, meta_learning.cli
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("foundation", "meta_learning", "otb_eval", "tracker")
CLIS = ("tracker.cli", "meta_learning.cli")
# what each layer may import from the project (besides itself)
ALLOWED = {"foundation": set(), "meta_learning": {"foundation"}, "otb_eval": {"foundation"},
           "tracker": {"foundation", "otb_eval", "meta_learning"}}


def _module_name(path: str) -> str:
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _imports(path: str) -> set[str]:
    """Every project module imported anywhere in the file (function-level imports included)."""
    module = _module_name(path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _modules():
    for pkg in PACKAGES:
        for dirpath, _, names in os.walk(os.path.join(ROOT, pkg)):
            for n in names:
                if n.endswith(".py"):
                    path = os.path.join(dirpath, n)
                    yield _module_name(path), _imports(path)


def test_no_import_goes_up_a_layer():
    wrong = []
    for module, imported in _modules():
        layer = module.split(".")[0]
        in_cli = any(module == c or module.startswith(c + ".") for c in CLIS)
        for target in imported:
            top = target.split(".")[0]
            if top != layer and top not in ALLOWED[layer] and not in_cli:
                wrong.append(f"{module} imports {target}")
            if not in_cli and any(target == c or target.startswith(c + ".") for c in CLIS):
                wrong.append(f"{module} imports the command line {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_scan_sees_relative_and_function_level_imports(tmp_path):
    # the scan itself must be able to fail: a relative import two levels up is resolved
    path = os.path.join(ROOT, "tracker", "sdnet", "online.py")
    imported = _imports(path)
    assert "tracker.sdnet.model" in imported and "foundation.boxes" in imported
    assert any(m.startswith("tracker.weights") or m.startswith("tracker.sdnet") for m in imported)


BLOCK = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError('blocked for this test: ' + name)
sys.meta_path.insert(0, Block())
"""


def _run(code: str, blocked: tuple[str, ...], tmp_path) -> subprocess.CompletedProcess:
    script = textwrap.dedent(BLOCK.format(blocked=set(blocked))) + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=120)


def test_otb_eval_works_where_tracker_and_torch_cannot_be_imported(tmp_path):
    """Load a dataset, run a tracker object and a factory, score foreign results, write a report."""
    code = """
    import os, numpy as np
    from otb_eval import OTBDataset, evaluate, run_ope, write_report
    from otb_eval.testing import make_sequence
    for i in range(2):
        make_sequence('data', f'Seq{i}', 10, seed=i)
    ds = OTBDataset('data')

    class Stay:                                   # anyone's tracker: init/update, nothing else
        name = 'stay'
        def init(self, image, box): self.box = np.asarray(box, float)
        def update(self, image): return self.box

    run_ope(Stay(), ds, 'results')
    run_ope(Stay, ds, 'results', name='stay-factory', workers=2)
    os.makedirs('results/theirs')                 # results written by another toolkit
    for seq in ds:
        np.savetxt(f'results/theirs/{seq.name}.txt', seq.anno + 1, fmt='%.2f', delimiter=',')
    perf = evaluate(ds, 'results', ['stay', 'stay-factory', 'theirs'])
    paths = write_report(perf, 'report', colors={'theirs': 'red'})
    assert all(os.path.isfile(p) for p in paths.values()), paths
    assert perf['theirs']['overall']['success_score'] > perf['stay']['overall']['success_score']
    import sys
    assert not any(m.split('.')[0] in ('tracker', 'torch', 'meta_learning') for m in sys.modules)
    print('ok', sorted(os.listdir('report')))
    """
    proc = _run(code, ("tracker", "torch", "meta_learning"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "success_plots.png" in proc.stdout and "performance.json" in proc.stdout
    # the check is real: the same script fails when the toolkit needs what is blocked
    proc = _run("import otb_eval, tracker", ("tracker",), tmp_path)
    assert proc.returncode != 0 and "blocked for this test" in proc.stderr


def test_meta_learning_imports_neither_tracker_nor_otb_eval(tmp_path):
    code = """
    import pkgutil, importlib, sys, meta_learning
    for m in pkgutil.walk_packages(meta_learning.__path__, 'meta_learning.'):
        try:
            importlib.import_module(m.name)
        except ImportError as err:
            if 'blocked for this test' in str(err):
                raise
    bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tracker', 'otb_eval'))
    assert not bad, bad
    from meta_learning.cli import main
    print('ok')
    """
    proc = _run(code, ("tracker", "otb_eval"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("module", ["foundation.boxes", "foundation.images", "foundation.fileio",
                                    "foundation.checkpoint", "foundation.errors"])
def test_foundation_stands_alone(module, tmp_path):
    proc = _run(f"import {module}", ("tracker", "otb_eval", "meta_learning"), tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
