"""Nothing shipped records the folders of the machine it was made on."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# an absolute POSIX path under a typical machine folder, or a Windows drive path
MACHINE_PATH = re.compile(rb"(?<![\w.])(/(?:work|home|root|tmp|Users|mnt|opt|var|private)/[\w.-]+|[A-Z]:\\{1,2}\w)")
FOLDERS = ("weights", "docs", os.path.join("benchmarks", "results"))


def _files():
    for folder in FOLDERS:
        for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
            for n in names:
                if not n.endswith((".pyc",)):
                    yield os.path.join(dirpath, n)


@pytest.mark.parametrize("path", sorted(_files()), ids=lambda p: os.path.relpath(p, ROOT))
def test_no_absolute_machine_path(path):
    with open(path, "rb") as f:
        data = f.read()
    found = sorted({m.group(0).decode(errors="replace") for m in MACHINE_PATH.finditer(data)})
    assert not found, f"{os.path.relpath(path, ROOT)} holds {found[:3]}"


def test_the_pattern_finds_what_it_looks_for():
    assert MACHINE_PATH.search(b'"weights": "/work/main/weights/metasdnet.pt"')
    assert MACHINE_PATH.search(b"C:\\Users\\me") and MACHINE_PATH.search(b"C:\\\\Users")
    assert not MACHINE_PATH.search(b"weights/metasdnet.pt and benchmarks/.data/synth-train")
