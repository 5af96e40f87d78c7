"""Normalise the images trackers receive.

got10k hands trackers PIL RGB images, OpenCV code hands them numpy BGR arrays; frames on disk may
be grayscale, RGBA or 16-bit. Trackers call :func:`to_bgr` / :func:`to_rgb` once per frame and work
on 8-bit 3-channel arrays from then on.
"""
from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from .errors import UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        scale = 255.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else 1.0
        return np.clip(np.nan_to_num(arr) * scale, 0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _channels_last_3(arr: np.ndarray, reverse: bool) -> np.ndarray:
    """Grey -> 3 channels, drop alpha, and reverse the channel order when asked."""
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise UserError(f"unsupported image shape {arr.shape}: expected HxW, HxWx3 or HxWx4")
    if arr.shape[2] == 1:
        return np.repeat(arr, 3, axis=2)
    arr = arr[:, :, :3]
    return np.ascontiguousarray(arr[:, :, ::-1]) if reverse else arr


def to_bgr(image: Any) -> np.ndarray:
    """8-bit BGR array from a PIL image (any mode) or a numpy array (taken as BGR/BGRA/grey)."""
    if isinstance(image, np.ndarray):
        return np.ascontiguousarray(_channels_last_3(_to_uint8(image), reverse=False))
    if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL.Image
        if image.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = _to_uint8(np.asarray(image).astype(np.uint16))
            return _channels_last_3(arr, reverse=False)
        return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
    raise UserError(f"unsupported image type {type(image).__name__}: pass a PIL image or a numpy array")


def to_rgb(image: Any) -> np.ndarray:
    """8-bit RGB array from a PIL image or a numpy (BGR) array (OpenCV's channel swap: the same
    bytes as numpy's reversed-channel copy, ~1 ms less per 640x480 frame, which every tracker
    pays on every frame)."""
    import cv2

    return cv2.cvtColor(to_bgr(image), cv2.COLOR_BGR2RGB)


def read_bgr(path: str) -> np.ndarray:
    """Read an image file as 8-bit BGR (grey, RGBA and 16-bit files are converted).

    A missing, empty, undecodable or truncated file (a JPEG without its end marker, which the
    decoder would otherwise fill with grey and complain about on stderr) is a one-line
    :class:`UserError` naming it.
    """
    import cv2

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise UserError(f"cannot read image {path}: {err.strerror}") from None
    if not data:
        raise UserError(f"cannot read image {path}: the file is empty")
    if data[:2] == b"\xff\xd8" and data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        raise UserError(f"cannot read image {path}: the JPEG is truncated")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(f"cannot read image {path}: not a decodable image")
    return to_bgr(image)


def frame_number(path: str) -> int | None:
    """The last number in a frame file's name (``img/0042.jpg`` -> 42), or None."""
    digits = re.findall(r"\d+", os.path.splitext(os.path.basename(path))[0])
    return int(digits[-1]) if digits else None


def list_frames(img_dir: str) -> list[str]:
    """Image files of a sequence, ordered by frame number (so 5-digit names and .png work)."""
    try:
        names = os.listdir(img_dir)
    except OSError:
        return []
    files = [os.path.join(img_dir, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(files, key=lambda p: (frame_number(p) is None, frame_number(p) or 0, p))


def image_size(image: Any) -> tuple[int, int]:
    """``(width, height)`` of a numpy image (HxW, HxWx1, HxWx3 or HxWx4) or a PIL image."""
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)) or not image.size:
            raise UserError(f"unsupported image shape {image.shape}: expected HxW, HxWx3 or HxWx4")
        return int(image.shape[1]), int(image.shape[0])
    if hasattr(image, "size") and hasattr(image, "mode"):  # PIL.Image
        return int(image.size[0]), int(image.size[1])
    raise UserError(f"unsupported image type {type(image).__name__}: pass a PIL image or a numpy array")


def check_frame_size(image: Any, expected: tuple[int, int], where: str) -> None:
    """One rule for every way of tracking: all frames of a sequence have the first one's size."""
    size = image_size(image)
    if size != tuple(expected):
        raise UserError(f"{where} is {size[0]}x{size[1]} but the first frame is "
                        f"{expected[0]}x{expected[1]}: the frames of one sequence must share a size")
