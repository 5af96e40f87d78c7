"""Meta-reinforcement learning on the engine: task distributions (2D navigation, MuJoCo
velocity/direction), Gaussian MLP policy, linear baseline, GAE, VPG inner loss adapted through
``MetaLearner.adapt``, TRPO outer step, vectorised sampler, training and evaluation.
See docs/rl.md."""
from .baseline import baseline_features, fit_linear_baseline
from .losses import vpg_loss
from .policy import GaussianMLPPolicy, gaussian_kl, gaussian_log_prob
from .returns import discounted_returns, gae, normalize
from .sampler import Episodes, TaskBatch, process, rollout
from .train import RLConfig, config_for, evaluate, run, train
from .trpo import TRPOConfig, conjugate_gradient, trpo_step

__all__ = ["baseline_features", "fit_linear_baseline", "vpg_loss", "GaussianMLPPolicy", "gaussian_kl",
           "gaussian_log_prob", "discounted_returns", "gae", "normalize", "Episodes", "TaskBatch", "process",
           "rollout", "RLConfig", "config_for", "evaluate", "run", "train", "TRPOConfig",
           "conjugate_gradient", "trpo_step"]
