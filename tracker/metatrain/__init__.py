"""Meta-training of the trackers: training videos, episodes and the training loop."""
