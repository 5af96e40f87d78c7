"""Render a planned synthetic sequence frame by frame, with its exact ground truth.

:func:`iter_frames` draws a :class:`~.planning.SequencePlan` with OpenCV (background through the
camera, distractors, the target, occluders, light, blur, sensor noise) and reports for each frame
the exact ground truth: the tight box of the pixels where the target's warped alpha mask is at
least 0.5, rendered before occluders are drawn (OTB annotates the full target under occlusion) and
clipped to the image by construction (for partial out-of-view it is the part inside the frame).

Boxes are ``(x, y, w, h)`` with ``(x, y)`` the 0-based column and row of the box's top-left pixel
and ``w, h`` pixel counts: exactly what a tracker sees in the numpy array. Trackers start from the
first box, so the half-pixel shift against OTB's 1-based MATLAB convention does not matter.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .planning import SequencePlan, corners, homography

__all__ = ["Frame", "iter_frames"]


@dataclass
class Layer:
    """A sprite warped into its bounding region of the frame (the region may stick out)."""

    x0: int
    y0: int
    alpha: np.ndarray   # float32 (rh, rw), unclipped
    colour: np.ndarray  # float32 (rh, rw, 3)


def _warp(sprite_colour: np.ndarray, sprite_alpha: np.ndarray, m: np.ndarray, corners: np.ndarray) -> Layer:
    import cv2

    x0 = int(np.floor(corners[:, 0].min())) - 1
    y0 = int(np.floor(corners[:, 1].min())) - 1
    x1 = int(np.ceil(corners[:, 0].max())) + 2
    y1 = int(np.ceil(corners[:, 1].max())) + 2
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], float) @ m
    size = (x1 - x0, y1 - y0)
    alpha = cv2.warpPerspective(sprite_alpha, shift, size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    colour = cv2.warpPerspective(sprite_colour, shift, size, flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    return Layer(x0, y0, alpha, colour)


def _clip(layer: Layer, W: int, H: int):
    """Slices (frame, layer) of the part of ``layer`` inside a W x H frame, or None."""
    rh, rw = layer.alpha.shape
    fx0, fy0 = max(layer.x0, 0), max(layer.y0, 0)
    fx1, fy1 = min(layer.x0 + rw, W), min(layer.y0 + rh, H)
    if fx1 <= fx0 or fy1 <= fy0:
        return None
    return ((slice(fy0, fy1), slice(fx0, fx1)),
            (slice(fy0 - layer.y0, fy1 - layer.y0), slice(fx0 - layer.x0, fx1 - layer.x0)))


def _blend(frame: np.ndarray, layer: Layer) -> None:
    H, W = frame.shape[:2]
    sl = _clip(layer, W, H)
    if sl is None:
        return
    fs, ls = sl
    a = layer.alpha[ls][..., None]
    frame[fs] += a * (layer.colour[ls] - frame[fs])


def _deformed(plan: SequencePlan, f: int) -> tuple[np.ndarray, np.ndarray]:
    """The target sprite after the non-rigid warp of frame ``f`` (unchanged without DEF)."""
    import cv2

    sp = plan.target
    if plan.deform[f] <= 0:
        return sp.colour, sp.alpha
    h, w = sp.alpha.shape
    kx, ky, px, py = plan.deform_waves
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sw, sh = sp.size
    amp = plan.deform[f] * max(sw, sh)
    ph = plan.deform_phase[f]
    dx = amp * np.sin(2 * np.pi * ky * yy / sh + ph + px)
    dy = amp * np.sin(2 * np.pi * kx * xx / sw + 1.3 * ph + py)
    mapx = (xx + dx).astype(np.float32)
    mapy = (yy + dy).astype(np.float32)
    colour = cv2.remap(sp.colour, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    alpha = cv2.remap(sp.alpha, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return colour, alpha


def _blur_kernel(length: float, angle: float) -> np.ndarray:
    import cv2

    k = int(np.ceil(length)) | 1
    kernel = np.zeros((k, k), np.float32)
    c = (k - 1) / 2
    dx, dy = np.cos(np.deg2rad(angle)) * (length - 1) / 2, np.sin(np.deg2rad(angle)) * (length - 1) / 2
    shift = 4  # sub-pixel precision for cv2.line
    p0 = (int(round((c - dx) * 16)), int(round((c - dy) * 16)))
    p1 = (int(round((c + dx) * 16)), int(round((c + dy) * 16)))
    cv2.line(kernel, p0, p1, 1.0, 1, cv2.LINE_AA, shift)
    s = kernel.sum()
    if s <= 0:
        kernel[int(c), int(c)] = 1
        s = 1.0
    return kernel / s


@dataclass
class Frame:
    """One rendered frame and its truth."""

    image: np.ndarray          # uint8 BGR (H, W, 3)
    box: np.ndarray            # (4,) x, y, w, h (0-based pixel box of the target mask)
    mask: np.ndarray | None    # bool (H, W) target mask before occluders (when asked for)
    visible_fraction: float    # target mask pixels inside the image / all of them
    occluded_fraction: float   # share of the in-image mask covered by occluders
    light: float               # illumination gain at the target centre
    distractor_gap: float      # nearest distractor centre distance / target size (inf if none)


def iter_frames(plan: SequencePlan, draw_target: bool = True, keep_masks: bool = False):
    """Render ``plan`` frame by frame, yielding :class:`Frame` objects."""
    import cv2

    W, H = plan.size
    # Sensor noise: a small bank of noise frames, read at a random offset per frame (fast, and
    # independent of what is drawn, so renders with and without the target share their noise).
    noise_rng = np.random.default_rng([plan.seed, 7919])
    pad = 16
    bank = noise_rng.standard_normal((3, H + pad, W + pad, 3), dtype=np.float32) * plan.noise_sigma
    yy = xx = None
    bg = plan.background.image
    for f in range(plan.n_frames):
        frame = cv2.warpAffine(bg, plan.bg_matrix[f], (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT).astype(np.float32)
        c = plan.centre[f]
        size_f = float(np.sqrt(plan.base_size[0] * plan.base_size[1]) * plan.scale[f])
        gap = np.inf
        for d in plan.distractors:
            sp = d["sprite"]
            dc = c + d["offset"][f]
            m = homography(d.get("base", plan.base_size), sp, dc, plan.scale[f] * d["scale"],
                           plan.angle[f] + d["angle"])
            _blend(frame, _warp(sp.colour, sp.alpha, m, corners(m, sp)))
            gap = min(gap, float(np.linalg.norm(d["offset"][f])) / size_f)
        colour, alpha = _deformed(plan, f)
        m = homography(plan.base_size, plan.target, c, plan.scale[f], plan.angle[f], plan.yaw[f],
                       plan.squash[f], 0.0 if plan.pitch is None else plan.pitch[f])
        layer = _warp(colour, alpha, m, corners(m, plan.target))
        full = layer.alpha >= 0.5
        sl = _clip(layer, W, H)
        inside = np.zeros_like(full)
        if sl is not None:
            inside[sl[1]] = full[sl[1]]
        n_full, n_in = int(full.sum()), int(inside.sum())
        if n_in == 0 and not plan.absent_ok:
            raise RuntimeError(f"synthetic target left the image at frame {f} (seed {plan.seed})")
        if n_in == 0:  # out of view (footage exits): the absent box
            box = np.zeros(4)
        else:
            rows = np.flatnonzero(inside.any(axis=1))
            cols = np.flatnonzero(inside.any(axis=0))
            box = np.array([layer.x0 + cols[0], layer.y0 + rows[0], cols[-1] - cols[0] + 1,
                            rows[-1] - rows[0] + 1], float)
        if draw_target:
            _blend(frame, layer)
        covered = np.zeros_like(inside)
        for o in plan.occluders:
            s0, s1 = o["window"]
            if not s0 <= f <= s1:
                continue
            sp = o["sprite"]
            mo = homography(sp.size, sp, c + o["offset"][f], o["zoom"][f] if "zoom" in o else 1.0,
                            o.get("angle", 0.0))
            occ = _warp(sp.colour, sp.alpha, mo, corners(mo, sp))
            _blend(frame, occ)
            # occluder pixels over the target's region
            ox0, oy0 = occ.x0 - layer.x0, occ.y0 - layer.y0
            oh, ow = occ.alpha.shape
            ys, xs = slice(max(oy0, 0), min(oy0 + oh, full.shape[0])), slice(max(ox0, 0), min(ox0 + ow, full.shape[1]))
            if ys.stop > ys.start and xs.stop > xs.start:
                covered[ys, xs] |= occ.alpha[ys.start - oy0:ys.stop - oy0, xs.start - ox0:xs.stop - ox0] >= 0.5
        occluded = float((covered & inside).sum()) / max(n_in, 1)
        # illumination
        g = float(plan.gain[f])
        if plan.light["kind"] == "spot":
            if yy is None:
                yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
            lc = plan.light["path"][f]
            sig = plan.light["sigma"]
            field_ = 1 + (g - 1) * np.exp(-((xx - lc[0]) ** 2 + (yy - lc[1]) ** 2) / (2 * sig * sig))
            frame *= field_[..., None]
            light_at = 1 + (g - 1) * float(np.exp(-np.sum((c - lc) ** 2) / (2 * sig * sig)))
        else:
            frame *= g
            light_at = g
        if plan.exposure is not None:  # exposure and white-balance drift
            frame *= plan.exposure[f].astype(np.float32)
            light_at *= float(plan.exposure[f].mean())
        if plan.blur_len[f] >= 2:
            frame = cv2.filter2D(frame, -1, _blur_kernel(plan.blur_len[f], plan.blur_angle[f]),
                                 borderType=cv2.BORDER_REFLECT)
        k, dx, dy = (int(v) for v in noise_rng.integers(0, [3, pad + 1, pad + 1]))
        frame += bank[k, dy:dy + H, dx:dx + W]
        frame += 0.5
        np.clip(frame, 0, 255, out=frame)
        image = frame.astype(np.uint8)
        mask = None
        if keep_masks:
            mask = np.zeros((H, W), bool)
            if sl is not None:
                mask[sl[0]] = inside[sl[1]]
        yield Frame(image, box, mask, n_in / max(n_full, 1), occluded, light_at, gap)
