"""MetaSDNet: MDNet's network and online tracker with a meta-learned start (Meta-Tracker).

``config`` (the network's shape), ``model`` (the network, functional), ``sampling`` (MDNet's box
samplers), ``roi_align`` (fast mode), ``bbreg`` (ridge box regression), ``online`` (the
``metasdnet`` and ``mdnet`` trackers).
Import the submodules directly; this package imports nothing heavy.
"""
