"""Shipped tracker weights (installed as ``tracker._weights``); see README.md in this folder."""
