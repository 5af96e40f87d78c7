"""Nothing shipped records the folders of the machine it was made on."""
import os
import re
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# an absolute POSIX path under a typical machine folder, or a Windows drive path
MACHINE_PATH = re.compile(rb"(?<![\w.])(/(?:work|home|root|tmp|Users|mnt|opt|var|private)/[\w.-]+|[A-Z]:\\{1,2}\w)")
FOLDERS = ("weights", "docs", os.path.join("benchmarks", "results"))


def _files():
    for folder in FOLDERS:
        for dirpath, _, names in os.walk(os.path.join(ROOT, folder)):
            for n in names:
                if not n.endswith((".pyc", ".ckpt")):      # training checkpoints are not shipped
                    yield os.path.join(dirpath, n)


def _readable(path: str) -> bytes:
    """The bytes a path could hide in: a torch file's pickles (its tensor storages are raw floats,
    in which a pattern such as ``I:\\m`` turns up by chance), any other file whole."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return b"".join(z.read(n) for n in z.namelist() if "/data/" not in n)
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("path", sorted(_files()), ids=lambda p: os.path.relpath(p, ROOT))
def test_no_absolute_machine_path(path):
    data = _readable(path)
    found = sorted({m.group(0).decode(errors="replace") for m in MACHINE_PATH.finditer(data)})
    assert not found, f"{os.path.relpath(path, ROOT)} holds {found[:3]}"


def test_torch_files_are_read_through_their_pickles(tmp_path):
    import torch

    path = str(tmp_path / "w.pt")
    torch.save({"metadata": {"data": "/work/main/benchmarks/x"}, "t": torch.zeros(3)}, path)
    assert MACHINE_PATH.search(_readable(path))
    torch.save({"t": torch.frombuffer(bytearray(b"I:\\m\0\0\0"), dtype=torch.uint8)}, path)
    assert not MACHINE_PATH.search(_readable(path))


def test_the_pattern_finds_what_it_looks_for():
    assert MACHINE_PATH.search(b'"weights": "/work/main/weights/metasdnet.pt"')
    assert MACHINE_PATH.search(b"C:\\Users\\me") and MACHINE_PATH.search(b"C:\\\\Users")
    assert not MACHINE_PATH.search(b"weights/metasdnet.pt and benchmarks/.data/synth-train")
