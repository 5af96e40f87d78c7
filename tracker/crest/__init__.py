"""MetaCREST foundations: CREST's correlation filter as a convolution on VGG-16 features.

``features`` (the frozen VGG-16 conv1_1..conv4_3 extractor, functional, with MatConvNet and
torch-state-dict loaders) and ``dcf`` (the target model: 1x1 reduction + correlation-filter conv,
the Gaussian label, masked loss, Hann window, template resizing, peak read-out). Import the
submodules directly; this package imports nothing heavy. The online tracker is not here yet (issue 7).
"""
