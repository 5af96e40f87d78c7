"""Meta-learned visual object trackers behind got10k's ``init``/``update`` interface.

``tracker.make(name, **options)`` builds a registered tracker; ``tracker.names()`` lists them;
``tracker.factory(name, **options)`` is what the OTB toolkit's experiments take;
``tracker.track_video(source, boxes, name)`` / ``tracker.iter_video`` track several targets of one
video, camera or stream at once.
"""
from foundation.errors import UserError

from .api import IdentityTracker, Tracker, factory, make, names, register
from .multitrack import iter_video, track_video

__all__ = ["IdentityTracker", "Tracker", "UserError", "factory", "iter_video", "make", "names", "register",
           "track_video"]
