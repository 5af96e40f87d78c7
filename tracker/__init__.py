"""Meta-learned visual object trackers behind got10k's ``init``/``update`` interface.

``tracker.make(name, **options)`` builds a registered tracker; ``tracker.names()`` lists them.
"""
from .api import IdentityTracker, Tracker, make, names, register
from foundation.errors import UserError

__all__ = ["IdentityTracker", "Tracker", "UserError", "make", "names", "register"]
