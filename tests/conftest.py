"""Fixtures shared by several test modules."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module: the CPUs are shared, threads only fight each other."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _no_display(monkeypatch):
    """No test opens a window on the desktop of whoever runs the suite: the GUI tests start their
    own virtual display (tests/test_select_window.py) and pass it to their subprocesses."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)


def pytest_terminal_summary(terminalreporter):
    """The fuzz suite's size and outcome, printed by every run that includes it."""
    stats = terminalreporter.stats
    counts = {k: sum(1 for r in stats.get(k, []) if "test_fuzz.py" in getattr(r, "nodeid", ""))
              for k in ("passed", "failed")}
    if any(counts.values()):
        terminalreporter.write_line(f"fuzz suite: {counts['passed']} cases passed, {counts['failed']} failed")
