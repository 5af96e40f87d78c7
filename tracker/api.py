"""The tracker interface and the registry every command looks trackers up in.

A tracker follows got10k's interface: ``init(image, box)`` on the first frame and
``update(image) -> box`` on each later one, boxes as ``(x, y, w, h)`` floats. Images may be PIL RGB
(got10k) or numpy BGR (OpenCV). ``track(img_files, box)`` makes any of our trackers usable by
got10k's own experiments without subclassing got10k (which would import matplotlib.pyplot).

``make(name, device=...)`` puts a tracker's tensors on a device (``cpu``, ``cuda``, ``cuda:N``,
``auto``, or a ``torch.device``), checked when the tracker is made: a device that is not there is
one :class:`UserError` line. Without ``device`` our trackers run on the CPU, bit-reproducibly.
Trackers with no tensors (``identity``, the OpenCV baselines) take any device and run on the
CPU, so one ``metatrack eval --device cuda`` can compare them with ours; a registered factory
without a ``device`` parameter takes only the CPU.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from foundation.errors import UserError

from .crest import family as _crest
from .family import Family, load_ref
from .sdnet import family as _sdnet
from .variants import VARIANTS, Variant


class Tracker:
    """Base class: subclasses implement :meth:`init` and :meth:`update`, starting them with
    :meth:`_begin` and :meth:`_next` so that every tracker follows the same rules for a bad
    first box, a frame of another size and ``update`` before ``init``.

    Confidence: after each ``init``/``update`` a tracker sets ``score`` to a float saying how sure
    it is of that frame's box (the family's own number, docs/tracker.md "Confidence"), and
    ``lost`` is ``score < lost_threshold``: the "target lost" flag. ``score`` stays None for a
    tracker that cannot tell, and a ``lost_threshold`` of None never flags (the toolkit reads
    ``score`` duck-typed, so it needs no import of this class)."""

    lost_threshold: float | None = None

    def __init__(self, name: str, is_deterministic: bool = True):
        self.name = name
        self.is_deterministic = is_deterministic
        self._frame_size: tuple[int, int] | None = None
        self.score: float | None = None

    @property
    def lost(self) -> bool:
        """Whether the last frame's score is below the lost threshold (False if either is None)."""
        return self.score is not None and self.lost_threshold is not None and self.score < self.lost_threshold

    def _begin(self, image: Any, box: Sequence[float]) -> np.ndarray:
        """The first box checked by :func:`foundation.boxes.check_box`; remembers the frame size."""
        from foundation.boxes import check_box
        from foundation.images import image_size

        size = image_size(image)
        checked = check_box(box, *size)
        self._frame_size = size
        return checked

    def _next(self, image: Any) -> None:
        """A later frame must come after ``init`` and have the first frame's size."""
        from foundation.images import check_frame_size

        if getattr(self, "_frame_size", None) is None:
            raise UserError(f"tracker {self.name!r}: update() called before init(image, box)")
        check_frame_size(image, self._frame_size, "this frame")

    def init(self, image: Any, box: Sequence[float]) -> None:
        raise NotImplementedError

    def update(self, image: Any) -> np.ndarray:
        raise NotImplementedError

    def track(self, img_files: Sequence[str], box: Sequence[float],
              visualize: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """got10k's ``Tracker.track``: run over files, return ``(boxes N x 4, seconds N)``
        (the OTB toolkit's frame loop, :func:`otb_eval.experiment.track_frames`)."""
        from otb_eval.experiment import track_frames

        return track_frames(self, img_files, box)


class IdentityTracker(Tracker):
    """Repeats the first box: the floor every real tracker must beat, and a fast test double.
    ``device`` is accepted and ignored: nothing here is a tensor."""

    def __init__(self, name: str = "identity", device: Any = None):
        super().__init__(name, is_deterministic=True)
        self._box = np.zeros(4)

    def init(self, image: Any, box: Sequence[float]) -> None:
        self._begin(image, box)
        self._box = np.asarray(box, dtype=float).copy()
        self.score = 1.0

    def update(self, image: Any) -> np.ndarray:
        self._next(image)
        self.score = 1.0   # it never looks: always "sure", never lost
        return self._box.copy()


@dataclass(frozen=True)
class TrackerSpec:
    """A registered tracker: a factory (callable or lazy ``"module:attr"``), its defaults and, for
    a meta-learned family's trackers, the family and the variant."""

    name: str
    factory: Callable[..., Tracker] | str
    description: str = ""
    defaults: dict = field(default_factory=dict)
    family: str | None = None        # the family's name (tracker.family.Family), None outside one
    variant: Variant | None = None   # its row of tracker.variants (None: the family's plain start)

    def build(self, **options: Any) -> Tracker:
        factory = load_ref(self.factory) if isinstance(self.factory, str) else self.factory
        kwargs = {**self.defaults, **options}
        kwargs.setdefault("name", self.name)
        if "device" in kwargs and not _takes_device(factory):
            device = kwargs.pop("device")
            if device is not None and str(device) != "cpu":
                raise UserError(f"tracker {self.name!r} runs on the CPU only (its factory takes no "
                                f"device); got device {str(device)!r}")
        return factory(**kwargs)


def _takes_device(factory: Callable[..., Any]) -> bool:
    """Whether ``factory`` accepts ``device=`` (a parameter of that name or ``**kwargs``)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):   # a builtin without a signature: pass what it was given
        return True
    return any(p.name == "device" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


_REGISTRY: dict[str, TrackerSpec] = {}
_FAMILIES: dict[str, Family] = {}


def _add(s: TrackerSpec, overwrite: bool = False) -> None:
    if s.name in _REGISTRY and not overwrite:
        raise ValueError(f"tracker {s.name!r} is already registered")
    _REGISTRY[s.name] = s


def register(name: str, factory: Callable[..., Tracker] | str, description: str = "",
             overwrite: bool = False, **defaults: Any) -> None:
    """Add a tracker under ``name``; ``factory(name=..., **options)`` must return a Tracker."""
    _add(TrackerSpec(name, factory, description, dict(defaults)), overwrite)


def register_family(fam: Family) -> None:
    """Add a family: its four variants (one per row of :data:`tracker.variants.VARIANTS`, the
    baseline under the family's name) and its plain start, each knowing its family."""
    if fam.name in _FAMILIES:
        raise ValueError(f"family {fam.name!r} is already registered")
    _FAMILIES[fam.name] = fam
    for v in VARIANTS:
        about = f"{fam.title} meta-trained with {v.about}" if v.about else fam.about
        _add(TrackerSpec(v.name(fam.name), fam.tracker, about, family=fam.name, variant=v))
    _add(TrackerSpec(fam.plain, fam.plain_tracker, fam.plain_about, family=fam.name))


def families() -> list[Family]:
    """The registered families, in registration order."""
    return list(_FAMILIES.values())


def family(name: str) -> Family:
    """The family registered as ``name``; an unknown name is a :class:`UserError` listing the known."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise UserError(f"unknown tracker family {name!r}; known families: "
                        f"{', '.join(_FAMILIES)}") from None


def family_of(name: str) -> Family | None:
    """The family of the tracker registered as ``name``; None for a tracker outside every family
    or a name not registered (a results folder of another toolkit)."""
    s = _REGISTRY.get(name)
    return None if s is None or s.family is None else _FAMILIES[s.family]


def variants(family_name: str) -> list[str]:
    """The registered names of a family's four variants, baseline first, in the table's order."""
    return [v.name(family(family_name).name) for v in VARIANTS]


def family_of_weights(path: str) -> Family:
    """The family a weights file was written by (its ``family`` tag; files without one are
    MetaSDNet's); a checkpoint without tracker weights is one :class:`UserError` line."""
    from foundation.checkpoint import load_checkpoint

    from .weights import DEFAULT_FAMILY

    state, _ = load_checkpoint(path)
    if not isinstance(state, dict) or "model" not in state:
        raise UserError(f"{path}: checkpoint holds no tracker weights ('model' missing)")
    return family(state.get("family") or DEFAULT_FAMILY)


def names() -> list[str]:
    """Registered tracker names, sorted."""
    return sorted(_REGISTRY)


def spec(name: str) -> TrackerSpec:
    """The registration of ``name``; an unknown name is a :class:`UserError` listing the known."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown tracker {name!r}; known trackers: {', '.join(names())}") from None


def default_lost_threshold(name: str) -> float | None:
    """The lost threshold a tracker registered as ``name`` uses by default (its family's options
    default, else its class's), without building it; None for a name not registered."""
    s = _REGISTRY.get(name)
    if s is None:
        return None
    if s.family is not None:
        return getattr(_FAMILIES[s.family].load("options")(), "lost_threshold", None)
    factory = load_ref(s.factory) if isinstance(s.factory, str) else s.factory
    return getattr(factory, "lost_threshold", None)


def _device_option(device: Any) -> Any:
    """``device`` checked to exist (an absent CUDA device is one UserError line)."""
    from foundation.devices import resolve_device

    return resolve_device(device)


def make(name: str, device: Any = None, **options: Any) -> Tracker:
    """Build the tracker registered as ``name`` with ``options`` overriding its defaults, its
    tensors on ``device`` (None: the tracker's default, the CPU; see the module's docstring)."""
    s = spec(name)
    if device is not None:
        options["device"] = _device_option(device)
    return s.build(**options)


@dataclass(frozen=True)
class TrackerFactory:
    """``make(name, **options)`` as a picklable zero-argument callable: what the OTB toolkit's
    experiments take to build a fresh tracker per run (also in worker processes)."""

    name: str
    options: dict = field(default_factory=dict)

    def __call__(self) -> Tracker:
        return make(self.name, **self.options)


def factory(name: str, device: Any = None, **options: Any) -> TrackerFactory:
    """A factory of the tracker registered as ``name``; an unknown name and an absent device fail
    here, before work. The device travels as its name (``"cuda:0"``), so factories pickle."""
    spec(name)
    if device is not None:
        options["device"] = str(_device_option(device))
    return TrackerFactory(name, dict(options))


register("identity", IdentityTracker, "repeats the first box (a floor and a test double)")

# OpenCV's classic trackers (tracker/baselines.py; cv2 is imported only when one is built).
for _name, _about in (("kcf", "OpenCV KCF (needs opencv-contrib-python)"),
                      ("csrt", "OpenCV CSRT (needs opencv-contrib-python)"),
                      ("mil", "OpenCV MIL (plain opencv-python)"),
                      ("mosse", "OpenCV MOSSE (needs opencv-contrib-python)"),
                      ("medianflow", "OpenCV MedianFlow (needs opencv-contrib-python)"),
                      ("tld", "OpenCV TLD (needs opencv-contrib-python)")):
    register(_name, "tracker.baselines:OpenCVTracker", _about, algorithm=_name)
del _name, _about

# The meta-learned families: each one module (tracker/<family>/family.py, torch imported only when
# a tracker is built) and one line here; the four variants come from tracker/variants.py.
register_family(_sdnet.FAMILY)
register_family(_crest.FAMILY)
