"""The bottom layer every other package of metatrack builds on, importing none of them.

- :mod:`foundation.errors`: :class:`UserError`, the one error for input a user can fix;
- :mod:`foundation.fileio`: atomic writes (readers see the old file or the new one);
- :mod:`foundation.boxes`: box maths and IoU in OTB's convention;
- :mod:`foundation.images`: image reading, colour conversion and a folder's frame files;
- :mod:`foundation.checkpoint`: versioned torch checkpoint files.

``meta_learning`` and ``otb_eval`` sit on it side by side, ``tracker`` above them, and the command
lines (``tracker.cli``, ``meta_learning.cli``) on top; docs/architecture.md draws the layers.
"""
