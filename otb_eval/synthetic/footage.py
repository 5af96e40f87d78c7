"""Footage-like dynamics and real image folders: the plan's options beyond the default profile.

:class:`PlanOptions` names each addition; :data:`PROFILES` holds the two profiles
(``default``: the original generator, byte for byte; ``footage``: everything below). Each
dynamic draws from a generator of its own (``[sequence seed, 500 + k]``), so switching one on or
off leaves the others' draws alone, and the default profile draws nothing here.

- ``handheld``: a hand-held camera: a slow random walk plus shake (a few Hz) and a slow zoom,
  applied to the whole scene (background, target, distractors, occluders) in screen space;
- ``turns``: perspective turns of the target about both the vertical (yaw) and the horizontal
  (pitch) axis, several per sequence;
- ``exits``: the target leaves the view entirely and comes back (its box is ``0,0,0,0`` meanwhile
  and ``generator.absent_frames`` lists those frames);
- ``hand``: an arm with a hand reaches in from outside the frame, holds the target (covering part
  of it and moving with it) and withdraws;
- ``category_distractors``: distractors are other objects of the target's category (its folder in
  ``--objects``), both the BC look-alikes and one more that wanders in the scene;
- ``motion_blur``: blur along the target's screen motion (camera included), its length the
  motion during an exposure of 30-80% of the frame time;
- ``drift``: exposure and white balance drift slowly (auto-exposure and auto white balance);
- ``codec``: the frames go through a real video encoder (:mod:`.codec`).

Attributes: a dynamic that exercises an OTB attribute adds it to the planned ones (``turns`` OPR,
``hand`` OCC, ``motion_blur`` MB, ``drift`` IV) and the rendered measurement decides as always.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .planning import (
    IV_MIN_RATIO,
    MB_MIN_LENGTH,
    OPR_MIN_YAW,
    OTB_ATTRIBUTES,
    SequencePlan,
    Sprite,
    _bump,
    _extents,
    _make_sprite,
)
from .sources import Source

__all__ = ["PlanOptions", "PROFILES", "PROFILE_FRAMES", "DYNAMICS", "apply_footage", "library_source",
           "library_target", "profile_options"]

DYNAMICS = ("handheld", "turns", "exits", "hand", "category_distractors", "motion_blur", "drift", "codec")


@dataclass(frozen=True)
class PlanOptions:
    """What a plan adds to the original generator (all off: the default profile)."""

    objects: object = None          # .library.ImageLibrary of objects, or None
    backgrounds: object = None      # .library.ImageLibrary of backgrounds, or None
    handheld: bool = False
    turns: bool = False
    exits: bool = False
    hand: bool = False
    category_distractors: bool = False
    motion_blur: bool = False
    drift: bool = False
    codec: bool = False

    @property
    def dynamic(self) -> bool:
        return any(getattr(self, d) for d in DYNAMICS)

    def describe(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in DYNAMICS}


PROFILES = {"default": PlanOptions(), "footage": PlanOptions(**{d: True for d in DYNAMICS})}
# Frames per sequence when --frames is not given.
PROFILE_FRAMES = {"default": (60, 120), "footage": (300, 600)}


def profile_options(profile: str, objects=None, backgrounds=None) -> PlanOptions:
    from dataclasses import replace

    from foundation.errors import UserError

    if profile not in PROFILES:
        raise UserError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    return replace(PROFILES[profile], objects=objects, backgrounds=backgrounds)


# ----------------------------------------------------------------------------------------------
# Image folders
# ----------------------------------------------------------------------------------------------

def _no_split_image(lib, split: str):
    from foundation.errors import UserError

    return UserError(f"--{lib.kind} {lib.folder}: none of its {len(lib.images)} images falls in the "
                     f"{split} split (images are split 70/15/15 by a hash of their path)")


def _provenance(lib, im) -> dict:
    return {"kind": "library", "library": lib.kind, "file": im.rel, "category": im.category,
            "split": im.split}


def library_source(rng: np.random.Generator, lib, split: str) -> Source:
    """A whole background photograph of ``split``."""
    from .library import load_image

    images = lib.of_split(split)
    if not images:
        raise _no_split_image(lib, split)
    im = images[int(rng.integers(len(images)))]
    return Source(np.ascontiguousarray(load_image(im.path, "backgrounds")[:, :, :3]), _provenance(lib, im))


def _cutout_sprite(image: np.ndarray, area: float, res: float, provenance: dict):
    """A sprite of a cut-out with its real silhouette at ``area`` px (scale 1); its (w, h)."""
    import cv2

    h, w = image.shape[:2]
    aspect = float(np.clip(w / h, 0.25, 4.0))
    bw, bh = np.sqrt(area * aspect), np.sqrt(area / aspect)
    tw, th = max(3, round(bw * res)), max(3, round(bh * res))
    interp = cv2.INTER_AREA if tw < w else cv2.INTER_LINEAR
    colour = cv2.resize(np.ascontiguousarray(image[:, :, :3]), (tw, th), interpolation=interp)
    alpha = cv2.resize(np.ascontiguousarray(image[:, :, 3]), (tw, th), interpolation=interp)
    pad = int(np.ceil(0.2 * max(tw, th))) + 2
    colour = cv2.copyMakeBorder(colour, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    alpha = cv2.copyMakeBorder(alpha.astype(np.float32) / 255.0, pad, pad, pad, pad,
                               cv2.BORDER_CONSTANT, value=0)
    return Sprite(colour.astype(np.float32), alpha, pad, provenance, "cutout"), (bw, bh)


def library_target(rng: np.random.Generator, lib, split: str, base: tuple[float, float], res: float,
                   image=None):
    """The target from an objects folder: a cut-out keeps its silhouette and aspect (same area as
    ``base``), a plain photograph is cropped to a shape. Returns the sprite and its (w, h)."""
    from .library import is_cutout, load_image

    if image is None:
        images = lib.of_split(split)
        if not images:
            raise _no_split_image(lib, split)
        image = images[int(rng.integers(len(images)))]
    pixels = load_image(image.path, "objects")
    prov = _provenance(lib, image)
    if is_cutout(pixels):
        return _cutout_sprite(pixels, base[0] * base[1], res, prov)
    bw, bh = base
    tw, th = max(3, round(bw * res)), max(3, round(bh * res))
    pad = int(np.ceil(0.2 * max(tw, th))) + 2
    sprite = _make_sprite(rng, Source(np.ascontiguousarray(pixels[:, :, :3]), prov), tw, th, pad)
    return sprite, (bw, bh)


# ----------------------------------------------------------------------------------------------
# Dynamics
# ----------------------------------------------------------------------------------------------

def _smooth_walk(rng: np.random.Generator, n: int, sigma: float, corr: float, shape=()) -> np.ndarray:
    """An AR(1) walk (stationary std ``sigma``, correlation time ``corr`` frames)."""
    a = float(np.exp(-1.0 / max(corr, 1.0)))
    out = np.zeros((n,) + tuple(shape))
    x = rng.normal(0, sigma, shape)
    step = sigma * np.sqrt(1 - a * a)
    for f in range(n):
        x = a * x + rng.normal(0, step, shape)
        out[f] = x
    return out


def _events(rng: np.random.Generator, n: int, every: int, length: int, busy: np.ndarray,
            first: int = 5) -> list:
    """Start frames of up to ``n // every`` (at least one) windows of ``length`` frames that
    avoid the frames marked in ``busy`` (which this marks)."""
    starts = []
    for _ in range(max(1, n // every)):
        for _ in range(10):
            if n - length - 1 <= first:
                break
            s = int(rng.integers(first, n - length - 1))
            if not busy[s:s + length].any():
                busy[s:s + length] = True
                starts.append(s)
                break
    return sorted(starts)


def _add_attribute(p: SequencePlan, attr: str) -> None:
    if attr not in p.attributes:
        p.attributes = [a for a in OTB_ATTRIBUTES if a in p.attributes or a == attr]


def _turns(rng, p: SequencePlan) -> None:
    n = p.n_frames
    t = np.arange(n)
    pitch = np.zeros(n)
    for _ in range(max(1, n // 120)):
        for arr, top in ((p.yaw, 60), (pitch, 45)):
            rise = int(rng.integers(8, 30))
            start = int(rng.integers(0, max(1, n - 2 * rise)))
            hold = int(rng.integers(0, 30))
            arr += rng.uniform(15, top) * rng.choice([-1, 1]) * _bump(n, start, rise, hold, rise)
    p.yaw = np.clip(p.yaw + 4 * np.sin(2 * np.pi * t / rng.uniform(40, 90)), -70, 70)
    p.pitch = np.clip(pitch, -55, 55)
    if max(np.abs(p.yaw).max(), np.abs(p.pitch).max()) >= OPR_MIN_YAW and "LR" not in p.attributes:
        _add_attribute(p, "OPR")
    p.info["turns"] = {"max_yaw": round(float(np.abs(p.yaw).max()), 2),
                       "max_pitch": round(float(np.abs(p.pitch).max()), 2)}


def _handheld(rng, p: SequencePlan) -> None:
    W, H = p.size
    n = p.n_frames
    t = np.arange(n)
    walk = _smooth_walk(rng, n, 0.03 * min(W, H), rng.uniform(25, 60), (2,))
    shake = np.zeros((n, 2))
    for _ in range(3):  # hand tremor and steps: a few Hz at 30 frames per second
        amp = rng.uniform(0.3, 1.6)
        freq = rng.uniform(1.5, 8.0) / 30
        shake += amp * np.sin(2 * np.pi * freq * t[:, None] + rng.uniform(0, 6.3, 2)[None, :])
    shift = walk + shake + rng.normal(0, 0.3, (n, 2))
    zoom = np.exp(np.clip(_smooth_walk(rng, n, 0.08, rng.uniform(40, 120)), -0.08, 0.16))
    C = np.array([W / 2, H / 2])
    p.centre = C + zoom[:, None] * (p.centre - C) + shift
    p.scale = p.scale * zoom
    for d in p.distractors:
        d["offset"] = d["offset"] * zoom[:, None]
    for o in p.occluders:
        o["offset"] = o["offset"] * zoom[:, None]
        o["zoom"] = zoom * o.get("zoom", 1.0)
    if p.light["kind"] == "spot":
        p.light["path"] = C + zoom[:, None] * (p.light["path"] - C) + shift
    A = p.bg_matrix[:, :, :2]
    tr = p.bg_matrix[:, :, 2]
    pre = C[None, :] - (C[None, :] + shift) / zoom[:, None]   # frame point -> scene point offset
    p.bg_matrix = np.concatenate([A / zoom[:, None, None], (np.einsum("nij,nj->ni", A, pre) + tr)[:, :, None]],
                                 axis=2)
    p.info["handheld"] = {"max_shift_px": round(float(np.abs(shift).max()), 2),
                          "zoom_range": [round(float(zoom.min()), 3), round(float(zoom.max()), 3)]}


def _keep_inside(p: SequencePlan, free: np.ndarray) -> None:
    """Keep the undeformed target inside the frame except on ``free`` frames (OV, exits)."""
    W, H = p.size
    _, content = _extents(p.target, p.base_size, p.scale, p.angle, p.yaw, p.squash, p.pitch)
    lo = content + 2
    hi = np.array([W, H])[None, :] - 1 - content - 2
    mid = (lo + hi) / 2
    fixed = np.where(hi > lo, np.clip(p.centre, lo, np.maximum(hi, lo)), mid)
    p.centre = np.where(free[:, None], p.centre, fixed)


def _exits(rng, p: SequencePlan, busy: np.ndarray) -> None:
    W, H = p.size
    n = p.n_frames
    if n < 60:
        return
    extents, _ = _extents(p.target, p.base_size, p.scale, p.angle, p.yaw, p.squash, p.pitch)
    out_info, absent = [], []
    rise = int(rng.integers(8, 20))
    hold = int(rng.integers(5, 40))
    for s in _events(rng, n, 400, 2 * rise + hold + 2, busy, first=10):
        c = p.centre[s]
        dists = [c[0], W - 1 - c[0], c[1], H - 1 - c[1]]
        edge = int(np.argmin(dists))
        axis, sign = (0, -1) if edge == 0 else (0, 1) if edge == 1 else (1, -1) if edge == 2 else (1, 1)
        far = extents[:, axis] + 4
        out = (W if axis == 0 else H) - 1 + far if sign > 0 else -far
        b = _bump(n, s, rise, hold, rise)
        p.centre[:, axis] = (1 - b) * p.centre[:, axis] + b * out
        absent += [int(f) for f in np.flatnonzero(b >= 1.0)]
        out_info.append({"edge": ["left", "right", "top", "bottom"][edge], "frames": [s, s + 2 * rise + hold]})
    if out_info:
        p.absent_ok = True
        p.info["exits"] = out_info


def _arm_sprite(rng: np.random.Generator, size: float, length: int) -> tuple[Sprite, float]:
    """An arm with a hand: palm (with fingers) at the left, forearm and sleeve to the right.
    Returns the sprite and the palm centre's x on its canvas."""
    import cv2

    from .sources import procedural_texture

    palm_w, palm_h = 0.9 * size, 0.75 * size
    finger = 0.5 * size
    arm_w = 0.55 * size
    h = int(np.ceil(max(palm_h, arm_w) * 1.5)) + 4
    w = int(length)
    cy = h / 2
    px = finger + palm_w / 2 + 2
    alpha = np.zeros((h, w), np.float32)
    cv2.ellipse(alpha, (int(px), int(cy)), (int(palm_w / 2), int(palm_h / 2)), 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    cv2.rectangle(alpha, (int(px), int(cy - arm_w / 2)), (w - 1, int(cy + arm_w / 2)), 1.0, -1, cv2.LINE_AA)
    thick = max(2, int(0.16 * size))
    for k in range(4):  # fingers curl around the held object
        y = cy + (k - 1.5) * 0.2 * size
        x0 = px - palm_w * 0.3
        x1 = x0 - finger * rng.uniform(0.7, 1.0)
        cv2.line(alpha, (int(x0), int(y)), (int(x1), int(y + rng.uniform(-0.1, 0.1) * size)), 1.0, thick,
                 cv2.LINE_AA)
    thumb = -1 if rng.random() < 0.5 else 1
    cv2.line(alpha, (int(px), int(cy + thumb * palm_h * 0.35)),
             (int(px - finger * 0.6), int(cy + thumb * palm_h * 0.65)), 1.0, thick, cv2.LINE_AA)
    skins = ((100, 140, 210), (80, 120, 190), (60, 95, 160), (45, 70, 120), (130, 170, 225))
    skin = np.array(skins[int(rng.integers(len(skins)))], np.float32) * rng.uniform(0.85, 1.1)
    rows = np.abs(np.arange(h) - cy) / max(cy, 1)
    shade = (0.7 + 0.3 * np.cos(np.clip(rows, 0, 1) * np.pi / 2))[:, None, None]
    colour = np.broadcast_to(skin, (h, w, 3)) * shade
    sleeve_at = int(px + palm_w / 2 + rng.uniform(0.6, 1.4) * size)
    if sleeve_at < w:
        cloth = procedural_texture(rng, h, w - sleeve_at).image.astype(np.float32)
        colour = colour.copy()
        colour[:, sleeve_at:] = cloth * shade
    colour = colour + rng.normal(0, 4, colour.shape)
    sprite = Sprite(np.clip(colour, 0, 255).astype(np.float32), alpha, 1,
                    {"kind": "procedural", "texture": "arm"}, "arm")
    return sprite, px


def _hand(rng, p: SequencePlan, busy: np.ndarray) -> None:
    W, H = p.size
    n = p.n_frames
    if n < 40:
        return
    rise, fall = int(rng.integers(6, 13)), int(rng.integers(6, 13))
    hold = int(rng.integers(15, min(60, max(16, n // 3))))
    for s in _events(rng, n, 200, rise + hold + fall + 1, busy):
        size = float(np.sqrt(p.base_size[0] * p.base_size[1]) * p.scale[s + rise])
        length = int(np.hypot(W, H) * 1.2 + 2 * size)
        sprite, px = _arm_sprite(rng, size, length)
        a = rng.uniform(0, 2 * np.pi)
        u = np.array([np.cos(a), np.sin(a)])             # from the palm towards the arm's shoulder
        grip = rng.normal(0, 0.2, 2) * size + 0.15 * size * u
        b = _bump(n, s, rise, hold, fall)
        palm = grip[None, :] + (1 - b)[:, None] * u[None, :] * np.hypot(W, H) * 0.8
        ch, cw = sprite.alpha.shape
        to_centre = ((cw - 1) / 2 - px) * u                # canvas centre from the palm's centre
        offset = palm + to_centre[None, :]
        p.occluders.append({"sprite": sprite, "offset": offset, "window": [s, s + rise + hold + fall],
                            "size": sprite.size, "angle": float(np.degrees(np.arctan2(-u[1], u[0])))})
        p.info.setdefault("hands", []).append({"frames": [s, s + rise + hold + fall], "hold": [s + rise, s + rise + hold]})
    if p.info.get("hands"):
        _add_attribute(p, "OCC")
        p.info["occluders"] = p.info["occluders"] + [{"source": {"kind": "procedural", "texture": "arm"},
                                                      "frames": h["frames"]} for h in p.info["hands"]]


def _category_distractors(rng, p: SequencePlan, lib) -> None:
    prov = p.target.provenance
    if lib is None or prov.get("kind") != "library":
        return
    same = [im for im in lib.of_split(p.split) if im.category == prov["category"] and im.rel != prov["file"]]
    if not same:
        p.info["category_distractors"] = {"category": prov["category"], "available": 0}
        return
    area = p.base_size[0] * p.base_size[1]
    res = max(1.0, float(p.scale.max()))
    n = p.n_frames
    W, H = p.size

    def sprite():
        im = same[int(rng.integers(len(same)))]
        return library_target(rng, lib, p.split, p.base_size, res, image=im)

    for d in p.distractors:  # BC look-alikes become other objects of the category
        d["sprite"], d["base"] = sprite()
    # one more that wanders about the scene
    spr, base = sprite()
    home = np.array([rng.uniform(0.2, 0.8) * W, rng.uniform(0.2, 0.8) * H])
    path = home + _smooth_walk(rng, n, 0.2 * min(W, H), 40, (2,))
    p.distractors.append({"sprite": spr, "base": base, "offset": path - p.centre,
                          "scale": rng.uniform(0.8, 1.2), "angle": rng.uniform(-15, 15)})
    p.info["distractors"] = [{"source": d["sprite"].provenance,
                              "look_alike_of": "category" if "base" in d else "target"} for d in p.distractors]
    p.info["category_distractors"] = {"category": prov["category"], "available": len(same),
                                      "area": round(float(area), 1)}


def _motion_blur(rng, p: SequencePlan) -> None:
    vel = np.gradient(p.centre, axis=0) if p.n_frames > 1 else np.zeros((p.n_frames, 2))
    speed = np.hypot(vel[:, 0], vel[:, 1])
    exposure = rng.uniform(0.3, 0.8)
    length = np.minimum(exposure * speed, 30.0)
    moving = length >= 2
    p.blur_angle = np.where(moving & (length > p.blur_len), np.degrees(np.arctan2(vel[:, 1], vel[:, 0])),
                            p.blur_angle)
    p.blur_len = np.where(moving, np.maximum(p.blur_len, length), p.blur_len)
    if p.blur_len.max() >= MB_MIN_LENGTH:
        _add_attribute(p, "MB")
    p.info["motion_blur"] = {"exposure": round(exposure, 3), "max_px": round(float(p.blur_len.max()), 2)}


def _drift(rng, p: SequencePlan) -> None:
    n = p.n_frames
    ev = np.clip(_smooth_walk(rng, n, 0.18, rng.uniform(40, 150)), -0.35, 0.3)
    wb = np.clip(_smooth_walk(rng, n, 0.05, rng.uniform(60, 200), (3,)), -0.1, 0.1)
    p.exposure = np.exp(ev[:, None] + wb - wb.mean(axis=1, keepdims=True))
    light = p.gain * p.exposure.mean(axis=1)
    if light.max() / max(light.min(), 1e-6) >= IV_MIN_RATIO:
        _add_attribute(p, "IV")
    p.info["drift"] = {"exposure_range": [round(float(np.exp(ev.min())), 3), round(float(np.exp(ev.max())), 3)],
                       "white_balance_max": round(float(np.abs(wb).max()), 3)}


def apply_footage(p: SequencePlan, opts: PlanOptions) -> None:
    """Add ``opts``' dynamics to plan ``p`` (in place), each from a generator of its own."""
    def gen(k):
        return np.random.default_rng([p.seed, 500 + k])

    n = p.n_frames
    busy = np.zeros(n, bool)
    ov = p.info.get("out_of_view")
    free = np.zeros(n, bool)
    if ov:
        free[ov["frames"][0]:ov["frames"][1] + 1] = True
        busy |= free
    if opts.turns:
        _turns(gen(0), p)
    if opts.handheld:
        _handheld(gen(1), p)
    if opts.turns or opts.handheld:
        _keep_inside(p, free)
    if opts.exits:
        _exits(gen(2), p, busy)
    if opts.hand:
        _hand(gen(3), p, busy)
    if opts.category_distractors:
        _category_distractors(gen(4), p, opts.objects)
    if opts.motion_blur:
        _motion_blur(gen(5), p)
    if opts.drift:
        _drift(gen(6), p)
    if opts.codec:
        from .codec import plan_codec

        p.codec = plan_codec(gen(7))
    p.info["dynamics"] = opts.describe()


def run_options(profile: str = "default", objects: str | None = None,
                backgrounds: str | None = None) -> tuple:
    """The plan options of a ``generate`` run and what its ``attributes.json`` records of them
    (``None, {}`` for the default profile without folders: the original generator's output)."""
    if profile == "default" and objects is None and backgrounds is None:
        return None, {}
    from .library import load_library

    objs = load_library(objects, "objects") if objects is not None else None
    bgs = load_library(backgrounds, "backgrounds") if backgrounds is not None else None
    options = profile_options(profile, objs, bgs)
    extra = {"profile": profile}
    for key, lib in (("objects", objs), ("backgrounds", bgs)):
        if lib is not None:
            extra[key] = lib.describe()
    return options, extra
