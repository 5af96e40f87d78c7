"""Meta-learning problems built on the engine: sinusoid regression (regression.py) and meta-RL (rl/)."""
