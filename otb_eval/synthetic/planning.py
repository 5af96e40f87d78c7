"""Plan one synthetic sequence: everything that happens in it, decided up front from its seed.

A :class:`SequencePlan` holds the attributes to exercise, the textures (the target as a
:class:`Sprite`, the background) and per-frame arrays (target centre, scale, rotation,
out-of-plane yaw, deformation, illumination gain, blur) plus distractors, occluders and the camera
path; :func:`plan_sequence` makes one, one step per nuisance. Drawing the frames and measuring
their boxes is :mod:`.rendering`'s; :func:`homography` (where a sprite lands in a frame) serves
both.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .sources import Source, crop, pick_source

__all__ = ["OTB_ATTRIBUTES", "DEFINITIONS", "Sprite", "SequencePlan", "plan_sequence", "choose_attributes",
           "homography", "corners", "FM_MIN_SPEED", "LR_MAX_AREA", "SV_MIN_RATIO", "IPR_MIN_RANGE", "OPR_MIN_YAW",
           "DEF_MIN_AMPLITUDE", "IV_MIN_RATIO", "MB_MIN_LENGTH", "OCC_MIN_FRACTION", "OV_MAX_VISIBLE", "BC_MAX_GAP"]

# The OTB attribute vocabulary, in OTB's order.
OTB_ATTRIBUTES = ("IV", "SV", "OCC", "DEF", "MB", "FM", "IPR", "OPR", "OV", "BC", "LR")

# Checkable definitions (also written to attributes.json so that readers can verify them).
FM_MIN_SPEED = 20.0        # FM: some frame-to-frame ground-truth centre shift > 20 px (OTB's t_m)
LR_MAX_AREA = 400.0        # LR: median ground-truth box area < 400 px (OTB's t_r)
SV_MIN_RATIO = 1.8         # SV: the target's scale varies by a factor >= 1.8 (max / min)
IPR_MIN_RANGE = 45.0       # IPR: in-plane angle varies over >= 45 degrees
OPR_MIN_YAW = 40.0         # OPR: out-of-plane rotation reaches >= 40 degrees
DEF_MIN_AMPLITUDE = 0.06   # DEF: non-rigid displacement >= 6% of the target size
IV_MIN_RATIO = 1.6         # IV: light on the target varies by a factor >= 1.6 (max / min)
MB_MIN_LENGTH = 7.0        # MB: a blur kernel >= 7 px long
OCC_MIN_FRACTION = 0.3     # OCC: >= 30% of the target's visible mask covered by an occluder
OV_MAX_VISIBLE = 0.85      # OV: at some frame < 85% of the target is inside the image
BC_MAX_GAP = 2.5           # BC: a look-alike distractor comes within 2.5 target sizes (centres)

DEFINITIONS = {
    "IV": f"illumination on the target varies by a factor >= {IV_MIN_RATIO}",
    "SV": f"target scale varies by a factor >= {SV_MIN_RATIO}",
    "OCC": f"an occluder covers >= {OCC_MIN_FRACTION:.0%} of the target in some frame",
    "DEF": f"non-rigid warp displaces the target by >= {DEF_MIN_AMPLITUDE:.0%} of its size",
    "MB": f"a motion-blur kernel >= {MB_MIN_LENGTH:g} px long",
    "FM": f"a frame-to-frame ground-truth centre shift > {FM_MIN_SPEED:g} px",
    "IPR": f"in-plane rotation over a range >= {IPR_MIN_RANGE:g} degrees",
    "OPR": f"out-of-plane rotation (perspective yaw) >= {OPR_MIN_YAW:g} degrees",
    "OV": f"part of the target leaves the image (< {OV_MAX_VISIBLE:.0%} visible; boxes touch the border)",
    "BC": f"look-alike distractors within {BC_MAX_GAP:g} target sizes",
    "LR": f"median ground-truth box area < {LR_MAX_AREA:g} px",
}

# Pairs not combined in one sequence (a tiny target cannot also shrink, leave the view, ...).
_EXCLUSIVE = {("LR", "SV"), ("LR", "OV"), ("LR", "OPR"), ("LR", "DEF")}
# Sampling weights, roughly OTB-100's attribute frequencies flattened a little.
_WEIGHTS = {"IV": 1.0, "SV": 1.3, "OCC": 1.2, "DEF": 1.0, "MB": 0.9, "FM": 1.0, "IPR": 1.1,
            "OPR": 1.0, "OV": 0.7, "BC": 0.9, "LR": 0.5}


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _ramp(n: int, start: int, stop: int) -> np.ndarray:
    """0 before ``start``, 1 after ``stop``, smooth in between."""
    t = np.arange(n, dtype=float)
    return _smoothstep((t - start) / max(stop - start, 1))


def _bump(n: int, start: int, rise: int, hold: int, fall: int) -> np.ndarray:
    """0 -> 1 over ``rise`` frames from ``start``, 1 for ``hold``, back to 0 over ``fall``."""
    return _ramp(n, start, start + rise) * (1 - _ramp(n, start + rise + hold, start + rise + hold + fall))


def choose_attributes(rng: np.random.Generator, n_frames: int) -> list[str]:
    """2-4 compatible OTB attributes, weighted; windowed ones need enough frames."""
    pool = list(OTB_ATTRIBUTES)
    if n_frames < 40:
        pool.remove("OV")
    if n_frames < 20:
        pool.remove("OCC")
    k = int(rng.integers(2, 5))
    w = np.array([_WEIGHTS[a] for a in pool])
    order = list(rng.choice(len(pool), size=len(pool), replace=False, p=w / w.sum()))
    chosen: list[str] = []
    for i in order:
        a = pool[i]
        if any((a, b) in _EXCLUSIVE or (b, a) in _EXCLUSIVE for b in chosen):
            continue
        chosen.append(a)
        if len(chosen) == k:
            break
    return [a for a in OTB_ATTRIBUTES if a in chosen]


# ----------------------------------------------------------------------------------------------
# Shapes and colour
# ----------------------------------------------------------------------------------------------

def _shape_mask(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    """A float32 alpha in {0, 1} of a (h, w) target: rect, ellipse, rounded or blob."""
    import cv2

    mask = np.zeros((h, w), np.float32)
    if kind == "rect":
        mask[:] = 1
    elif kind == "ellipse":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        nx, ny = (xx - (w - 1) / 2) / (w / 2), (yy - (h - 1) / 2) / (h / 2)
        mask = (nx * nx + ny * ny <= 1).astype(np.float32)
    elif kind == "rounded":
        r = max(1, int(min(h, w) * 0.25))
        cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 1.0, -1)
        cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 1.0, -1)
        for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
            cv2.circle(mask, (cx, cy), r, 1.0, -1)
    elif kind == "blob":
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        nx, ny = (xx - (w - 1) / 2) / (w / 2), (yy - (h - 1) / 2) / (h / 2)
        ang = np.arctan2(ny, nx)
        radius = np.ones_like(ang)
        for k in (2, 3, 5):
            radius += rng.uniform(0.04, 0.12) * np.cos(k * ang + rng.uniform(0, 2 * np.pi))
        radius /= radius.max()
        mask = (np.sqrt(nx * nx + ny * ny) <= radius).astype(np.float32)
    else:
        raise ValueError(kind)
    if not mask.any():
        mask[h // 2, w // 2] = 1
    return mask


def _tint(rng: np.random.Generator, image: np.ndarray, strength: float = 0.35) -> np.ndarray:
    """Give grey or dull pictures some colour (grey backgrounds with a colour target are too easy)."""
    gain = 1 + rng.uniform(-strength, strength, 3)
    return np.clip(image.astype(np.float32) * gain[None, None, :], 0, 255).astype(np.uint8)


def _jitter_colour(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A look-alike: small per-channel gain and brightness change."""
    gain = rng.uniform(0.85, 1.15, 3)
    return np.clip(image.astype(np.float32) * gain + rng.uniform(-15, 15), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# The plan
# ----------------------------------------------------------------------------------------------

@dataclass
class Sprite:
    """A textured shape: colour (BGR float32) and alpha on a canvas padded by ``pad`` pixels."""

    colour: np.ndarray
    alpha: np.ndarray
    pad: int
    provenance: dict
    shape: str

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.alpha.shape
        return (w - 2 * self.pad, h - 2 * self.pad)


@dataclass
class SequencePlan:
    """Everything needed to render one sequence deterministically."""

    seed: int
    split: str
    size: tuple[int, int]
    n_frames: int
    attributes: list[str]
    target: Sprite
    base_size: tuple[float, float]       # target width, height in frame pixels at scale 1
    centre: np.ndarray                    # (n, 2) target centre in frame pixels
    scale: np.ndarray                     # (n,)
    angle: np.ndarray                     # (n,) degrees, in-plane
    yaw: np.ndarray                       # (n,) degrees, out-of-plane (about the vertical axis)
    squash: np.ndarray                    # (n,) aspect change factor (DEF)
    deform: np.ndarray                    # (n,) non-rigid displacement amplitude / target size
    deform_phase: np.ndarray              # (n,)
    deform_waves: tuple                   # (kx, ky, phase_x, phase_y)
    gain: np.ndarray                      # (n,) illumination gain at the light's peak
    light: dict                           # {"kind": "global"|"spot", centre path, sigma}
    blur_len: np.ndarray                  # (n,) px
    blur_angle: np.ndarray                # (n,) degrees
    background: Source
    bg_matrix: np.ndarray                 # (n, 2, 3) frame -> background-source affine
    noise_sigma: float
    distractors: list = field(default_factory=list)   # dicts: sprite, offset (n,2), scale
    occluders: list = field(default_factory=list)     # dicts: sprite, offset (n,2), scale, window
    info: dict = field(default_factory=dict)          # parameters for attributes.json
    # footage dynamics (see .footage); None / False in the default profile
    pitch: np.ndarray | None = None       # (n,) degrees, out-of-plane about the horizontal axis
    exposure: np.ndarray | None = None    # (n, 3) per-channel gain (exposure and white balance)
    absent_ok: bool = False               # the target may leave the view entirely (box 0,0,0,0)
    codec: dict | None = None             # frames go through a video encoder (see .codec)


def homography(plan_size: tuple[float, float], sprite: Sprite, centre, scale: float, angle: float,
               yaw: float = 0.0, squash: float = 1.0, pitch: float = 0.0) -> np.ndarray:
    """3x3 map from sprite-canvas pixels to frame pixels.

    The sprite's content (canvas minus padding) is mapped to ``plan_size`` (w, h) times ``scale``,
    squashed by ``squash`` (x) / ``1/squash`` (y), turned by ``pitch`` about the horizontal and
    ``yaw`` about the vertical axis with a mild perspective, rotated by ``angle`` (degrees, counter-clockwise on screen) and centred at
    ``centre``.
    """
    ch, cw = sprite.alpha.shape
    sw, sh = sprite.size
    bw, bh = plan_size
    to_centre = np.array([[1, 0, -(cw - 1) / 2], [0, 1, -(ch - 1) / 2], [0, 0, 1]], float)
    sx = bw / sw * scale * squash
    sy = bh / sh * scale / squash
    size = np.diag([sx, sy, 1.0])
    f = 3.0 * max(bw, bh) * scale
    th = np.deg2rad(yaw)
    persp = np.array([[f * np.cos(th), 0, 0], [0, f, 0], [np.sin(th), 0, f]], float)
    if pitch:  # the plane's axes after pitch then yaw, projected (equal to the above at pitch 0)
        ph = np.deg2rad(pitch)
        persp = np.array([[f * np.cos(th), -f * np.sin(th) * np.sin(ph), 0], [0, f * np.cos(ph), 0],
                          [np.sin(th), np.cos(th) * np.sin(ph), f]], float)
    a = np.deg2rad(angle)
    rot = np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1]], float)
    move = np.array([[1, 0, centre[0]], [0, 1, centre[1]], [0, 0, 1]], float)
    m = move @ rot @ persp @ size @ to_centre
    return m / m[2, 2]


def corners(m: np.ndarray, sprite: Sprite, inset: int = 0) -> np.ndarray:
    """The 4 corners (x, y) in frame pixels of the sprite's canvas under ``m``, ``inset`` px in."""
    ch, cw = sprite.alpha.shape
    a, bx, by = inset, cw - 1 - inset, ch - 1 - inset
    pts = np.array([[a, a, 1], [bx, a, 1], [bx, by, 1], [a, by, 1]], float).T
    out = m @ pts
    return (out[:2] / out[2]).T


def _make_sprite(rng: np.random.Generator, source: Source, w: int, h: int, pad: int,
                 shape: str | None = None, tint: bool = True) -> Sprite:
    """Crop ``source`` to (w, h), cut it to a shape, pad it for deformation."""
    import cv2

    # Sample the crop at a random zoom of the source (0.6-1.6 source pixels per target pixel).
    zoom = rng.uniform(0.6, 1.6)
    sh_, sw_ = source.image.shape[:2]
    cw, ch = max(4, min(sw_, round(w * zoom))), max(4, min(sh_, round(h * zoom)))
    tex = crop(rng, source, ch, cw)
    colour = cv2.resize(tex.image, (w, h), interpolation=cv2.INTER_AREA if zoom > 1 else cv2.INTER_LINEAR)
    if tint:
        colour = _tint(rng, colour, 0.25)
    shape = shape or ("rect", "ellipse", "rounded", "blob")[int(rng.integers(4))]
    alpha = _shape_mask(rng, h, w, shape)
    colour = cv2.copyMakeBorder(colour, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    alpha = cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    return Sprite(colour.astype(np.float32), alpha, pad, tex.provenance, shape)


def plan_sequence(seq_seed: int, split: str, n_frames: int, size: tuple[int, int] = (320, 240),
                  attributes: list[str] | None = None, options=None) -> SequencePlan:
    """Decide a whole sequence from ``seq_seed``; ``attributes`` forces the set (else 2-4 drawn).

    ``options`` (a :class:`.footage.PlanOptions`) adds image folders and footage dynamics; without
    it (or with the default profile's) the plan is exactly the original generator's.

    One step per nuisance, each drawing from the sequence's generator in a fixed order (so a
    seed always gives the same sequence): size and scale, rotations, deformation, textures, the
    centre path (fast motion), out of view, light, blur, camera, distractors, occluders.
    """
    rng = np.random.default_rng(seq_seed)
    W, H = size
    n = int(n_frames)
    if attributes is None:
        attrs = choose_attributes(rng, n)
    else:
        unknown = [a for a in attributes if a not in OTB_ATTRIBUTES]
        if unknown:
            raise ValueError(f"unknown attributes {unknown}; known: {' '.join(OTB_ATTRIBUTES)}")
        attrs = [a for a in OTB_ATTRIBUTES if a in attributes]
    has = set(attrs).__contains__
    t = np.arange(n, dtype=float)

    scale, (bw, bh) = _plan_size(rng, has, t, min(W, H))
    angle = _plan_in_plane(rng, has, t)
    yaw = _plan_out_of_plane(rng, has, n)
    deform, squash, deform_phase, waves = _plan_deformation(rng, has, t)
    cam, background, target, (bw, bh) = _plan_textures(rng, split, (W, H), (bw, bh), scale, options, seq_seed)
    extents, content = _extents(target, (bw, bh), scale, angle, yaw, squash)
    centre, fm_frames = _plan_path(rng, has, (W, H), extents)
    ov_info = _plan_out_of_view(rng, has, centre, content, (W, H))
    gain, light = _plan_light(rng, has, t, centre, (bw, bh), scale)
    blur_len, blur_angle = _plan_blur(rng, has, centre, fm_frames)
    bg_matrix, zoom = _plan_camera(rng, cam, n, (W, H), background.image.shape[:2])
    distractors = _plan_distractors(rng, has, t, target, np.sqrt(bw * bh) * scale)
    occluders = _plan_occluders(rng, has, split, t, (bw, bh), scale, extents)

    noise_sigma = float(rng.uniform(1.5, 4.0))
    info = {
        "target": {"source": target.provenance, "shape": target.shape,
                   "size": [round(bw, 2), round(bh, 2)]},
        "background": {"source": background.provenance, "zoom": round(zoom, 3),
                       "camera_motion": cam},
        "distractors": [{"source": d["sprite"].provenance, "look_alike_of": "target"} for d in distractors],
        "occluders": [{"source": o["sprite"].provenance, "size": list(o["size"]), "frames": o["window"]}
                      for o in occluders],
        "light": light["kind"],
        "noise_sigma": round(noise_sigma, 3),
        "fast_motion_frames": fm_frames,
        "out_of_view": ov_info,
    }
    p = SequencePlan(seq_seed, split, (W, H), n, attrs, target, (bw, bh), centre, scale, angle,
                     yaw, squash, deform, deform_phase, waves, gain, light, blur_len, blur_angle,
                     background, bg_matrix, noise_sigma, distractors, occluders, info)
    if options is not None and options.dynamic:
        from .footage import apply_footage

        apply_footage(p, options)
    return p


def _plan_size(rng: np.random.Generator, has, t: np.ndarray, short: int):
    """SV (a scale ramp by >= SV_MIN_RATIO) or a gentle breathing; LR: a tiny target. Returns
    the per-frame scale and the target's (w, h) at scale 1."""
    n = len(t)
    aspect = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    if has("SV"):
        ratio = rng.uniform(SV_MIN_RATIO + 0.1, 2.4)
        grow = bool(rng.random() < 0.5)
        start = int(rng.integers(0, max(1, n // 4)))
        stop = start + max(6, int(n * rng.uniform(0.4, 0.7)))
        r = _ramp(n, start, min(stop, n - 1))
        scale = ratio ** r if grow else ratio ** (-r)
        big = short * 0.36 / (np.sqrt(max(aspect, 1 / aspect)) * float(scale.max()))
        small = 24.0 / float(scale.min())
        s0 = rng.uniform(min(small, big), max(small, big)) if small < big else big
    else:
        scale = 1 + 0.05 * np.sin(2 * np.pi * t / rng.uniform(40, 90) + rng.uniform(0, 6.3))
        if has("LR"):
            s0 = rng.uniform(11, 17)
        else:  # not low resolution: at least 28 px (area 784) where the frame allows
            s0 = max(short * rng.uniform(0.14, 0.27), min(28.0, 0.3 * short))
    return scale, (s0 * np.sqrt(aspect), s0 / np.sqrt(aspect))


def _plan_in_plane(rng: np.random.Generator, has, t: np.ndarray) -> np.ndarray:
    """IPR: a steady spin or a rocking over >= IPR_MIN_RANGE degrees; else a slight wobble."""
    n = len(t)
    if not has("IPR"):
        return 3 * np.sin(2 * np.pi * t / rng.uniform(30, 80))
    if rng.random() < 0.5:  # steady spin
        speed = rng.uniform(1.5, 4.0) * rng.choice([-1, 1])
        total = max(IPR_MIN_RANGE + 10, min(abs(speed) * n, 240))
        return np.sign(speed) * total * _ramp(n, 0, n - 1)
    amp = rng.uniform(30, 60)   # rocking
    period = max(12.0, min(n, 4 * amp / 3.5))
    angle = amp * np.sin(2 * np.pi * t / period)
    if np.ptp(angle) < IPR_MIN_RANGE:
        angle = amp * np.sin(np.pi * t / max(n - 1, 1) - np.pi / 2)
    return angle


def _plan_out_of_plane(rng: np.random.Generator, has, n: int) -> np.ndarray:
    """OPR: a yaw bump to >= OPR_MIN_YAW degrees and back."""
    if not has("OPR"):
        return np.zeros(n)
    peak = rng.uniform(OPR_MIN_YAW + 8, 68) * rng.choice([-1, 1])
    rise = max(3, int(n * rng.uniform(0.15, 0.3)))
    start = int(rng.integers(0, max(1, n - 2 * rise - 2)))
    hold = int(rng.integers(0, max(1, n - start - 2 * rise)))
    return peak * _bump(n, start, rise, hold, rise)


def _plan_deformation(rng: np.random.Generator, has, t: np.ndarray):
    """DEF: a non-rigid wave of >= DEF_MIN_AMPLITUDE and an aspect squash."""
    n = len(t)
    if has("DEF"):
        amp = rng.uniform(DEF_MIN_AMPLITUDE + 0.02, 0.14)
        deform = amp * (0.6 + 0.4 * np.sin(2 * np.pi * t / rng.uniform(15, 40)) ** 2)
        deform = np.maximum(deform, 0)
        squash = 1 + rng.uniform(0.1, 0.22) * np.sin(2 * np.pi * t / rng.uniform(12, 35))
    else:
        deform = np.zeros(n)
        squash = np.ones(n)
    deform_phase = t * rng.uniform(0.15, 0.35)
    waves = (rng.uniform(0.8, 1.8), rng.uniform(0.8, 1.8), rng.uniform(0, 6.3), rng.uniform(0, 6.3))
    return deform, squash, deform_phase, waves


def _plan_textures(rng: np.random.Generator, split: str, size: tuple[int, int],
                   base: tuple[float, float], scale: np.ndarray, options=None, seq_seed: int = 0):
    """The background, then the target from another source; whether the camera moves. Image
    folders in ``options`` replace the photographs (drawn from a generator of their own)."""
    W, H = size
    bw, bh = base
    cam = bool(rng.random() < 0.6)
    backgrounds = options.backgrounds if options is not None else None
    objects = options.objects if options is not None else None
    lib_rng = np.random.default_rng([seq_seed, 31])
    if backgrounds is not None:
        from .footage import library_source

        background = library_source(lib_rng, backgrounds, split)
    else:
        background = pick_source(rng, split, 96, 96, photo_prob=0.75,
                                 procedural_size=(int(H * 1.3), int(W * 1.3)))
    background = Source(_tint(rng, background.image, 0.3 if backgrounds is None else 0.1),
                        background.provenance)
    res = max(1.0, float(scale.max()))  # texture resolution: no upsampling at the largest scale
    if objects is not None:
        from .footage import library_target

        target, (bw, bh) = library_target(lib_rng, objects, split, (bw, bh), res)
        return cam, background, target, (bw, bh)
    exclude = (background.provenance.get("id"),) if background.provenance.get("kind") == "photo" else ()
    target_src = pick_source(rng, split, 32, 32, photo_prob=0.7, exclude=exclude)
    tw, th = max(3, round(bw * res)), max(3, round(bh * res))
    pad = int(np.ceil(0.2 * max(tw, th))) + 2
    return cam, background, _make_sprite(rng, target_src, tw, th, pad), (bw, bh)


def _extents(target: Sprite, base: tuple[float, float], scale: np.ndarray, angle: np.ndarray,
             yaw: np.ndarray, squash: np.ndarray, pitch=None) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the half-extents of the padded canvas (containment) and of the undeformed
    content (out-of-view planning)."""
    n = len(scale)
    extents, content = np.zeros((n, 2)), np.zeros((n, 2))
    for f in range(n):
        m = homography(base, target, (0, 0), scale[f], angle[f], yaw[f], squash[f],
                       0.0 if pitch is None else pitch[f])
        extents[f] = np.abs(corners(m, target)).max(axis=0)
        content[f] = np.abs(corners(m, target, inset=target.pad)).max(axis=0)
    return extents, content


def _fast_motion_starts(rng: np.random.Generator, has, n: int) -> list:
    if not has("FM"):
        return []
    bursts = int(rng.integers(1, 4))
    cand = np.arange(min(8, n // 3), max(min(8, n // 3) + 1, n - 3))
    return sorted(rng.choice(cand, size=min(bursts, len(cand)), replace=False).tolist())


def _plan_path(rng: np.random.Generator, has, size: tuple[int, int], extents: np.ndarray):
    """A smooth random walk that keeps the canvas inside the frame, with FM bursts of
    > FM_MIN_SPEED px per frame in the roomiest direction. Returns the centres and FM frames."""
    W, H = size
    n = len(extents)
    margin = 3.0
    vmax = rng.uniform(1.5, 4.5) if not has("OV") else rng.uniform(1.0, 3.0)
    centre = np.zeros((n, 2))
    lo = extents + margin
    hi = np.array([W, H])[None, :] - 1 - extents - margin
    mid = (lo + hi) / 2
    pos = np.array([rng.uniform(lo[0, 0], max(lo[0, 0], hi[0, 0])),
                    rng.uniform(lo[0, 1], max(lo[0, 1], hi[0, 1]))])
    vel = rng.normal(0, vmax / 2, 2)
    fm_frames: list[int] = []
    fm_starts = _fast_motion_starts(rng, has, n)
    burst_left, burst_vel = 0, np.zeros(2)
    for f in range(n):
        if f > 0:
            if burst_left == 0 and fm_starts and f >= fm_starts[0]:
                fm_starts.pop(0)
                k = int(rng.integers(1, 4))
                speed = rng.uniform(FM_MIN_SPEED + 3, FM_MIN_SPEED + 10)
                best, best_room = None, -1.0
                for a in rng.uniform(0, 2 * np.pi, 12):
                    d = np.array([np.cos(a), np.sin(a)])
                    room = min(((hi[f] - pos) / d)[d > 0].min(initial=1e9),
                               ((lo[f] - pos) / d)[d < 0].min(initial=1e9))
                    if room > best_room:
                        best, best_room = d, room
                k = int(max(1, min(k, (best_room - 2) // speed)))
                if best_room - 2 >= speed:
                    burst_left, burst_vel = k, best * speed
            if burst_left > 0:
                pos = pos + burst_vel
                burst_left -= 1
                fm_frames.append(f)
            else:
                vel = 0.92 * vel + rng.normal(0, vmax * 0.25, 2) + 0.002 * (mid[f] - pos)
                sp = np.linalg.norm(vel)
                if sp > vmax:
                    vel *= vmax / sp
                pos = pos + vel
        for d in range(2):
            if hi[f, d] <= lo[f, d]:
                pos[d] = mid[f, d]
            elif pos[d] < lo[f, d]:
                pos[d] = lo[f, d]
                vel[d] = abs(vel[d])
            elif pos[d] > hi[f, d]:
                pos[d] = hi[f, d]
                vel[d] = -abs(vel[d])
        centre[f] = pos
    return centre, fm_frames


def _plan_out_of_view(rng: np.random.Generator, has, centre: np.ndarray, content: np.ndarray,
                      size: tuple[int, int]) -> dict | None:
    """OV: pull the target over the nearest image edge and back (edits ``centre`` in place)."""
    if not has("OV"):
        return None
    W, H = size
    n = len(centre)
    visible = rng.uniform(0.35, 0.65)
    hold = int(rng.integers(2, 7))
    start = int(rng.integers(0, max(1, n // 3)))
    mid_f = min(n - 1, start + n // 4)
    c = centre[mid_f]
    dists = [c[0], W - 1 - c[0], c[1], H - 1 - c[1]]
    edge = int(np.argmin(dists))
    axis, sign = (0, -1) if edge == 0 else (0, 1) if edge == 1 else (1, -1) if edge == 2 else (1, 1)
    ext = content[:, axis]
    if sign > 0:
        out = (W if axis == 0 else H) + ext - 2 * ext * visible
    else:
        out = -ext + 2 * ext * visible - 1
    far = float(np.abs(out - centre[:, axis]).max())
    rise = int(np.ceil(far * np.pi / 2 / 11.0)) + 1
    start = max(0, min(start, n - 2 * rise - hold - 1))
    b = _bump(n, start, rise, hold, rise)
    centre[:, axis] = (1 - b) * centre[:, axis] + b * out
    return {"edge": ["left", "right", "top", "bottom"][edge], "planned_visible": round(visible, 3),
            "frames": [start, min(n - 1, start + 2 * rise + hold)]}


def _plan_light(rng: np.random.Generator, has, t: np.ndarray, centre: np.ndarray,
                base: tuple[float, float], scale: np.ndarray):
    """IV: a global change or a spot light riding on the target by a factor >= IV_MIN_RATIO;
    else a flicker of a few percent. Returns the gain per frame and the light's description."""
    n = len(t)
    if not has("IV"):
        return 1 + 0.04 * np.sin(2 * np.pi * t / rng.uniform(20, 60)), {"kind": "none"}
    level = rng.uniform(0.35, 0.55) if rng.random() < 0.6 else rng.uniform(1.7, 2.0)
    start = int(rng.integers(0, max(1, n // 3)))
    rise = max(3, int(n * rng.uniform(0.2, 0.4)))
    hold = int(rng.integers(0, max(1, n - start - 2 * rise)))
    gain = 1 + (level - 1) * _bump(n, start, rise, hold, rise)
    if rng.random() < 0.5:
        return gain, {"kind": "global"}
    lag = int(rng.integers(0, 4))   # a spot light or shadow that rides on the target with a lag
    path = np.vstack([centre[:1]] * lag + [centre])[:n]
    return gain, {"kind": "spot", "path": path, "sigma": 1.5 * max(base) * float(scale.max())}


def _plan_blur(rng: np.random.Generator, has, centre: np.ndarray, fm_frames: list):
    """MB: blur kernels >= MB_MIN_LENGTH px along the motion, also on fast-motion frames."""
    n = len(centre)
    blur_len, blur_angle = np.zeros(n), np.zeros(n)
    if not has("MB"):
        return blur_len, blur_angle
    peak = rng.uniform(MB_MIN_LENGTH + 1, 14)
    for _ in range(int(rng.integers(1, 4))):
        s = int(rng.integers(0, max(1, n - 6)))
        rise = int(rng.integers(2, 5))
        blur_len = np.maximum(blur_len, peak * _bump(n, s, rise, int(rng.integers(1, 6)), rise))
    if fm_frames:
        blur_len[fm_frames] = peak
    vel = np.gradient(centre, axis=0)
    blur_angle = np.degrees(np.arctan2(vel[:, 1], vel[:, 0]))
    blur_angle = np.where(np.hypot(vel[:, 0], vel[:, 1]) > 0.5, blur_angle, rng.uniform(0, 180))
    return blur_len, blur_angle


def _plan_camera(rng: np.random.Generator, cam: bool, n: int, size: tuple[int, int],
                 background_hw: tuple[int, int]):
    """The background viewport per frame (frame -> background pixels), drifting when ``cam``."""
    W, H = size
    bh_, bw_ = background_hw
    zoom = max(W / bw_, H / bh_) * (1.18 if cam else 1.0) * rng.uniform(1.0, 1.25)
    bg_matrix = np.zeros((n, 2, 3))
    room = np.array([bw_ - W / zoom, bh_ - H / zoom])
    cpos = rng.uniform(0, 1, 2) * room
    cvel = np.zeros(2)
    cam_speed = rng.uniform(0.5, 2.5) / zoom
    for f in range(n):
        if cam and f > 0:
            cvel = 0.9 * cvel + rng.normal(0, cam_speed * 0.3, 2)
            sp = np.linalg.norm(cvel)
            if sp > cam_speed:
                cvel *= cam_speed / sp
            cpos = cpos + cvel
            for d in range(2):
                if cpos[d] < 0 or cpos[d] > room[d]:
                    cvel[d] = -cvel[d]
                    cpos[d] = np.clip(cpos[d], 0, room[d])
        z = zoom * (1 + (0.06 * np.sin(2 * np.pi * f / 70) if cam else 0))
        bg_matrix[f] = [[1 / z, 0, cpos[0]], [0, 1 / z, cpos[1]]]
    return bg_matrix, zoom


def _plan_distractors(rng: np.random.Generator, has, t: np.ndarray, target: Sprite,
                      size: np.ndarray) -> list:
    """BC: 1-3 look-alikes of the target circling it within BC_MAX_GAP target sizes."""
    distractors = []
    if not has("BC"):
        return distractors
    n = len(t)
    for _ in range(int(rng.integers(1, 4))):
        colour = _jitter_colour(rng, target.colour.astype(np.uint8)).astype(np.float32)
        if rng.random() < 0.5:
            colour = colour[:, ::-1].copy()
        sprite = Sprite(colour, target.alpha.copy(), target.pad, target.provenance, target.shape)
        radius = size * (1.1 + 0.9 * (0.5 + 0.5 * np.sin(2 * np.pi * t / rng.uniform(25, 60)
                                                        + rng.uniform(0, 6.3))))
        phi = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.03, n)) + t * rng.uniform(-0.05, 0.05)
        offset = np.stack([radius * np.cos(phi), radius * np.sin(phi)], axis=1)
        distractors.append({"sprite": sprite, "offset": offset, "scale": rng.uniform(0.85, 1.15),
                            "angle": rng.uniform(-20, 20)})
    return distractors


def _plan_occluders(rng: np.random.Generator, has, split: str, t: np.ndarray,
                    base: tuple[float, float], scale: np.ndarray, extents: np.ndarray) -> list:
    """OCC: 1-2 textured shapes passing across the target (drawn over it)."""
    occluders = []
    if not has("OCC"):
        return occluders
    n = len(t)
    bw, bh = base
    for _ in range(int(rng.integers(1, 3)) if n >= 50 else 1):
        length = int(rng.integers(10, 26))
        length = min(length, max(6, n - 2))
        s = int(rng.integers(1, max(2, n - length)))
        src = pick_source(rng, split, 32, 32, photo_prob=0.6)
        ow = max(4, int(np.ceil(bw * float(scale[s]) * rng.uniform(0.7, 1.1))))
        oh = max(4, int(np.ceil(bh * float(scale[s]) * rng.uniform(0.8, 1.3))))
        sprite = _make_sprite(rng, src, ow, oh, 1, shape=("rect", "ellipse", "rounded")[int(rng.integers(3))])
        ang = rng.uniform(0, 2 * np.pi)
        d = np.array([np.cos(ang), np.sin(ang)])
        travel = 1.15 * (np.abs(extents[s] @ np.abs(d)) + 0.5 * np.hypot(ow, oh))
        u = np.clip((t - s) / max(length - 1, 1), 0, 1)
        along = (2 * u - 1) * travel
        side = rng.uniform(-0.12, 0.12) * np.sqrt(bw * bh)
        offset = along[:, None] * d[None, :] + side * np.array([-d[1], d[0]])[None, :]
        occluders.append({"sprite": sprite, "offset": offset, "window": [s, s + length - 1],
                          "size": (ow, oh)})
    return occluders
