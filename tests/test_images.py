"""foundation.images: the colour conversions every tracker runs on every frame."""
import numpy as np
import pytest
from PIL import Image

from foundation.errors import UserError
from foundation.images import to_bgr, to_rgb


@pytest.fixture
def bgr():
    return np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


def test_to_rgb_swaps_the_channels_of_a_bgr_array(bgr):
    rgb = to_rgb(bgr)
    assert rgb.dtype == np.uint8 and rgb.flags["C_CONTIGUOUS"]
    assert np.array_equal(rgb, bgr[:, :, ::-1])
    assert np.array_equal(to_rgb(bgr[:, ::2]), bgr[:, ::2, ::-1])     # a strided view too
    assert rgb is not bgr and np.array_equal(to_bgr(rgb[:, :, ::-1]), bgr)


def test_to_rgb_of_grey_pil_and_float_input(bgr):
    grey = bgr[:, :, 0]
    assert np.array_equal(to_rgb(grey), np.repeat(grey[:, :, None], 3, axis=2))
    pil = Image.fromarray(bgr[:, :, ::-1].copy())                       # PIL holds RGB
    assert np.array_equal(to_rgb(pil), bgr[:, :, ::-1])
    assert np.array_equal(to_rgb(bgr.astype(np.float32) / 255.0), to_rgb(bgr))


def test_to_rgb_refuses_what_is_not_an_image():
    with pytest.raises(UserError, match="unsupported image type"):
        to_rgb("frame.jpg")
