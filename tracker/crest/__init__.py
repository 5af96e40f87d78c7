"""MetaCREST: CREST's correlation filter as a convolution on frozen features, with a meta-learned start.

``online`` (the tracker: ``metacrest`` and its variants, and the ``crest`` baseline), ``dcf`` (the
target model, label, masked loss, Hann window, template resizing, peak read-out), ``window`` (the
search window's geometry and crops), ``backbone`` (stride-4 features: VGG-16 or MetaSDNet's conv
layers), ``features`` (VGG-16 conv1_1..conv4_3 with MatConvNet / state-dict loaders) and
``weights`` (our checkpoint format and the official one). Meta-training is in
``tracker.metatrain.crest``. Import the submodules directly; this package imports nothing heavy.
"""
