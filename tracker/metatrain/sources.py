"""Training videos for meta-training: OTB-format folders, ImageNet VID and GOT-10k.

Every source yields :class:`Track` objects: the frames one target is visible in and its boxes.
Images are not read here; episodes read the two frames they need, lazily. A data set that is not
on disk, or is not laid out as expected, is a :class:`UserError` naming the path.
"""
from __future__ import annotations

import glob
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterable, Sequence as SequenceType

import numpy as np

from foundation.boxes import valid
from foundation.errors import UserError

FORMATS = ("otb", "vid", "got10k")


@dataclass(frozen=True, eq=False)
class Track:
    """One target in one video: frame paths and (x, y, w, h) boxes, one per frame."""

    name: str
    frames: tuple[str, ...]
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


@dataclass(frozen=True)
class BoxFilter:
    """Meta-Tracker's VID filter: drop boxes smaller than ``min_size`` px or larger than
    ``max_fraction`` of the frame in either dimension."""

    min_size: float = 15.0
    max_fraction: float = 0.6

    def keep(self, boxes: np.ndarray, width: float, height: float) -> np.ndarray:
        boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
        return (valid(boxes) & (boxes[:, 2] >= self.min_size) & (boxes[:, 3] >= self.min_size)
                & (boxes[:, 2] <= self.max_fraction * width) & (boxes[:, 3] <= self.max_fraction * height))


def _require_dir(path: str, what: str) -> None:
    if not os.path.isdir(path):
        raise UserError(f"{what} not found: {path} is not a folder")


def otb_tracks(root: str, min_frames: int = 2) -> list[Track]:
    """Every sequence of an OTB-format folder (the synthetic train split, VOT-like data, ...);
    frames with invalid ground truth are left out of the track."""
    from otb_eval.datasets import OTBDataset

    tracks = []
    for seq in OTBDataset(root, "auto"):
        ok = valid(seq.anno)
        if ok.sum() >= min_frames:
            tracks.append(Track(seq.name, tuple(f for f, k in zip(seq.img_files, ok) if k), seq.anno[ok]))
    return tracks


def got10k_tracks(root: str, split: str = "train", min_frames: int = 2) -> list[Track]:
    """GOT-10k: ``<root>/<split>/<seq>/00000001.jpg ...`` with ``groundtruth.txt`` (x,y,w,h) and an
    optional ``absence.label`` (1 = target absent); absent or invalid frames are left out."""
    from foundation.images import list_frames
    from otb_eval.datasets import parse_boxes

    base = os.path.join(root, split) if os.path.isdir(os.path.join(root, split)) else root
    _require_dir(base, "GOT-10k split folder")
    listing = os.path.join(base, "list.txt")
    if os.path.isfile(listing):
        with open(listing) as f:
            names = [line.strip() for line in f if line.strip()]
    else:
        names = sorted(e for e in os.listdir(base) if os.path.isfile(os.path.join(base, e, "groundtruth.txt")))
    if not names:
        raise UserError(f"no GOT-10k sequences (<seq>/groundtruth.txt) in {base}")
    tracks = []
    for name in names:
        folder = os.path.join(base, name)
        gt = os.path.join(folder, "groundtruth.txt")
        if not os.path.isfile(gt):
            raise UserError(f"GOT-10k sequence {name}: missing {gt}")
        boxes = parse_boxes(gt)
        frames = list_frames(folder)
        if len(frames) < len(boxes):
            raise UserError(f"GOT-10k sequence {name}: {len(boxes)} boxes but {len(frames)} frames")
        ok = valid(boxes)
        absence = os.path.join(folder, "absence.label")
        if os.path.isfile(absence):
            absent = np.loadtxt(absence, ndmin=1).astype(bool)[: len(boxes)]
            ok[: len(absent)] &= ~absent
        if ok.sum() >= min_frames:
            tracks.append(Track(name, tuple(f for f, k in zip(frames, ok) if k), boxes[ok]))
    return tracks


def _parse_vid_xml(path: str) -> tuple[float, float, dict[int, tuple[float, float, float, float]]]:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise UserError(f"cannot read VID annotation {path}: {err}") from None
    size = root.find("size")
    width = float(size.findtext("width", "0")) if size is not None else 0.0
    height = float(size.findtext("height", "0")) if size is not None else 0.0
    objects = {}
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        tid = obj.findtext("trackid")
        if bb is None or tid is None:
            continue
        x1, y1 = float(bb.findtext("xmin")), float(bb.findtext("ymin"))
        x2, y2 = float(bb.findtext("xmax")), float(bb.findtext("ymax"))
        objects[int(tid)] = (x1, y1, x2 - x1, y2 - y1)
    return width, height, objects


def vid_tracks(root: str, split: str = "train", box_filter: BoxFilter = BoxFilter(),
               min_frames: int = 2, cache: str | None = None) -> list[Track]:
    """ImageNet VID: ``Data/VID/<split>/.../<video>/000000.JPEG`` with
    ``Annotations/VID/<split>/.../<video>/000000.xml``; one track per (video, trackid), keeping
    the frames whose box passes ``box_filter``. Parsing every XML is slow on the full data set,
    so the index can be cached in a JSON file (``cache``)."""
    if cache and os.path.isfile(cache):
        with open(cache) as f:
            data = json.load(f)
        return [Track(t["name"], tuple(os.path.join(root, p) for p in t["frames"]), np.asarray(t["boxes"]))
                for t in data]
    ann_root = os.path.join(root, "Annotations", "VID", split)
    img_root = os.path.join(root, "Data", "VID", split)
    _require_dir(ann_root, "ImageNet VID annotations")
    _require_dir(img_root, "ImageNet VID frames")
    videos = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(ann_root, "**", "*.xml"), recursive=True)})
    if not videos:
        raise UserError(f"no VID annotations (*.xml) under {ann_root}")
    tracks = []
    for video in videos:
        rel = os.path.relpath(video, ann_root)
        per_track: dict[int, tuple[list[str], list]] = {}
        for xml in sorted(glob.glob(os.path.join(video, "*.xml"))):
            width, height, objects = _parse_vid_xml(xml)
            frame = os.path.join(img_root, rel, os.path.splitext(os.path.basename(xml))[0] + ".JPEG")
            for tid, box in objects.items():
                if box_filter.keep(np.asarray(box), width, height)[0]:
                    frames, boxes = per_track.setdefault(tid, ([], []))
                    frames.append(frame)
                    boxes.append(box)
        for tid, (frames, boxes) in sorted(per_track.items()):
            if len(frames) >= min_frames:
                tracks.append(Track(f"{rel.replace(os.sep, '/')}#{tid}", tuple(frames), np.asarray(boxes, float)))
    if cache:
        from foundation.fileio import atomic_write_text

        atomic_write_text(cache, json.dumps([{"name": t.name, "frames": [os.path.relpath(p, root) for p in t.frames],
                                              "boxes": t.boxes.tolist()} for t in tracks]))
    return tracks


def load_tracks(root: str, fmt: str = "otb", **kwargs) -> list[Track]:
    """Tracks of a data set in ``fmt`` (``otb``, ``vid`` or ``got10k``)."""
    if fmt not in FORMATS:
        raise UserError(f"unknown data set format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not os.path.isdir(root):
        raise UserError(f"data set folder {root} does not exist")
    tracks = {"otb": otb_tracks, "vid": vid_tracks, "got10k": got10k_tracks}[fmt](root, **kwargs)
    if not tracks:
        raise UserError(f"no usable tracks (at least 2 valid frames) in {root}")
    return tracks


def mix(sources: Iterable[tuple[SequenceType[Track], float]]) -> list[tuple[SequenceType[Track], float]]:
    """Normalise (tracks, weight) pairs, e.g. Meta-Tracker's 70% VID / 30% VOT, for sampling."""
    pairs = [(t, float(w)) for t, w in sources if len(t) and w > 0]
    total = sum(w for _, w in pairs)
    if not pairs:
        raise UserError("no data to mix")
    return [(t, w / total) for t, w in pairs]
