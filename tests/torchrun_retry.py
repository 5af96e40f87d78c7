"""Running torchrun from a test, with one retry for gloo's known exit-time abort.

On a loaded machine a gloo rank now and then dies at interpreter exit with "terminate called
without an active exception" (a C++ thread still joinable when the process ends; the run's work
and its files were done). That says nothing about the code under test, so such a run is started
once more; any other failure, or the same abort twice, is returned as it is. A retried command
resumes from the files the first attempt wrote, so what it printed is kept: the returned stdout
holds every attempt's, in order."""
from __future__ import annotations

import subprocess
from typing import Any, Sequence

GLOO_EXIT_ABORT = "terminate called without an active exception"


def run_torchrun(cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, **kwargs)``, retried once after a
    gloo exit-time abort (stdout: every attempt's, in order)."""
    printed = ""
    for attempt in range(2):
        done = subprocess.run(list(cmd), capture_output=True, text=True, **kwargs)
        printed += done.stdout
        if done.returncode == 0 or GLOO_EXIT_ABORT not in done.stderr or attempt == 1:
            done.stdout = printed
            return done
    raise AssertionError("unreachable")
