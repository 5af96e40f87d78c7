"""meta_learning: one MAML-family engine on torch.func (MAML, FOMAML, Meta-SGD, L2F, DropGrad,
PCGrad/GradDrop across meta-gradients, layer-wise l2 meta-regularisation).  See docs/meta_learning.md."""
from .dropgrad import DropGrad, dropgrad_noise
from .functional import (Params, detach_params, functional_loss, head_names, inner_grads, inner_loop,
                         named_params, non_norm_names, prepare_batch_norm, select_names, sgd_step)
from .l2f import SEED_PAPER_L2F, Attenuator, L2FSettings, attenuate, task_embedding
from .learner import MetaConfig, MetaLearner
from .lr import InnerLR
from .regularizers import l2_meta_grads, layerwise_lambdas
from .surgery import clamp_grads, flatten_task_grads, graddrop, pcgrad, unflatten

__all__ = [
    "Params", "named_params", "detach_params", "select_names", "head_names", "non_norm_names",
    "functional_loss", "prepare_batch_norm", "inner_grads", "inner_loop", "sgd_step",
    "InnerLR", "L2FSettings", "SEED_PAPER_L2F", "Attenuator", "task_embedding", "attenuate", "DropGrad", "dropgrad_noise",
    "pcgrad", "graddrop", "clamp_grads", "flatten_task_grads", "unflatten",
    "layerwise_lambdas", "l2_meta_grads", "MetaConfig", "MetaLearner",
]
__version__ = "0.1.0"
