"""Meta-learned visual object trackers behind got10k's ``init``/``update`` interface.

``tracker.make(name, **options)`` builds a registered tracker; ``tracker.names()`` lists them;
``tracker.factory(name, **options)`` is what the OTB toolkit's experiments take.
"""
from foundation.errors import UserError

from .api import IdentityTracker, Tracker, factory, make, names, register

__all__ = ["IdentityTracker", "Tracker", "UserError", "factory", "make", "names", "register"]
