"""Meta-learning problems built on the engine (sinusoid regression so far)."""
