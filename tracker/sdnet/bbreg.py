"""Bounding-box regression: ridge regression from conv3 features to box corrections.

Targets (one row per training box ``b`` for the ground truth ``g``, centre form)::

    ((g_cx - b_cx) / b_w, (g_cy - b_cy) / b_h, log(g_w / b_w), log(g_h / b_h))

Fitted once on frame 1 with boxes from uniform (0.3, 1.5, 1.1) whose IoU >= 0.6 (MDNet: 1000 of
them; the tracker's ``bbreg_n``, 250 by default), ridge alpha 1000 (MDNet). Features and targets
are centred (the intercept is not penalised); the system is solved by Cholesky in its primal
(D x D) or dual (N x N) form, whichever is smaller. The Gram matrix and its factor are float32
(the Gram product is most of frame 1's box-regression time, and float32 halves it), then
iterative refinement with float64 residuals brings the solution to the float64 one (ridge keeps
the system well conditioned: alpha is added to the diagonal); where it would not converge, the
solve is redone in float64. It lives on the CPU whatever the tracker's device: it takes and gives
numpy arrays (the tracker hands it ``features.cpu().numpy()``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np

from foundation.boxes import as_boxes, cxcywh_to_xywh, xywh_to_cxcywh

if TYPE_CHECKING:
    import torch

__all__ = ["encode", "decode", "BBoxRegressor"]


def encode(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Regression targets of ``boxes`` (N x 4, xywh) towards ``gt`` (4 or N x 4, xywh)."""
    b = xywh_to_cxcywh(as_boxes(boxes))
    g = xywh_to_cxcywh(np.broadcast_to(as_boxes(gt), b.shape))
    return np.stack([(g[:, 0] - b[:, 0]) / b[:, 2], (g[:, 1] - b[:, 1]) / b[:, 3],
                     np.log(g[:, 2] / b[:, 2]), np.log(g[:, 3] / b[:, 3])], axis=1)


def decode(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Apply predicted corrections to ``boxes`` (inverse of :func:`encode`)."""
    b = xywh_to_cxcywh(as_boxes(boxes).reshape(-1, 4))
    d = np.asarray(deltas, dtype=float).reshape(-1, 4)
    c = np.stack([b[:, 0] + d[:, 0] * b[:, 2], b[:, 1] + d[:, 1] * b[:, 3],
                  b[:, 2] * np.exp(d[:, 2]), b[:, 3] * np.exp(d[:, 3])], axis=1)
    return cxcywh_to_xywh(c)


class BBoxRegressor:
    """Ridge regression ``features (N x D) -> targets (N x 4)``."""

    def __init__(self, alpha: float = 1000.0, max_log_scale: float = 0.5) -> None:
        self.alpha = float(alpha)
        self.max_log_scale = float(max_log_scale)
        self.weight: Optional[np.ndarray] = None
        self.x_mean: Optional[np.ndarray] = None
        self.y_mean: Optional[np.ndarray] = None

    @property
    def fitted(self) -> bool:
        return self.weight is not None

    def fit(self, feats: np.ndarray, boxes: np.ndarray, gt: np.ndarray) -> "BBoxRegressor":
        import torch

        X = torch.as_tensor(np.asarray(feats), dtype=torch.float64).reshape(len(boxes), -1)  # device: CPU
        Y = torch.from_numpy(encode(boxes, gt))   # device: CPU, numpy in
        if len(X) == 0:
            return self
        x_mean, y_mean = X.mean(0), Y.mean(0)
        Xc, Yc = X - x_mean, Y - y_mean
        n, d = Xc.shape
        if d <= n:   # (X^T X + a I) W = X^T Y
            w = _ridge_solve(Xc.T, Xc.T @ Yc, self.alpha)
        else:  # dual form: W = X^T (X X^T + a I)^-1 Y
            w = Xc.T @ _ridge_solve(Xc, Yc, self.alpha)
        self.weight, self.x_mean, self.y_mean = w.numpy(), x_mean.numpy(), y_mean.numpy()  # device: CPU
        return self

    def predict(self, feats: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Corrected boxes (unchanged if not fitted). Log-scale corrections are clipped to
        +-``max_log_scale`` so that one bad prediction cannot blow a box up."""
        boxes = as_boxes(boxes).reshape(-1, 4)
        if not self.fitted:
            return boxes.copy()
        X = np.asarray(feats, dtype=np.float64).reshape(len(boxes), -1)
        d = (X - self.x_mean) @ self.weight + self.y_mean
        d[:, 2:] = np.clip(d[:, 2:], -self.max_log_scale, self.max_log_scale)
        return decode(boxes, d)


def _ridge_solve(F: "torch.Tensor", B: "torch.Tensor", alpha: float, tol: float = 1e-12,
                 max_refinements: int = 10) -> "torch.Tensor":
    """float64 ``(F F^T + alpha I)^-1 B`` for float64 ``F`` (M x K) and ``B`` (M x 4): a float32
    Gram matrix and Cholesky factor, then iterative refinement on float64 residuals
    (``F (F^T w)`` costs two thin products instead of the Gram's M x M x K)."""
    import torch

    F32 = F.float()
    A = F32 @ F32.T
    A.diagonal().add_(alpha)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info) == 0:
        w = torch.cholesky_solve(B.float(), L).double()
        scale = float(B.abs().max()) or 1.0
        for _ in range(max_refinements):
            r = B - F @ (F.T @ w) - alpha * w
            if float(r.abs().max()) <= tol * scale:
                return w
            w += torch.cholesky_solve(r.float(), L).double()
    A = F @ F.T    # the float32 factor was not good enough: solve in float64
    A.diagonal().add_(alpha)
    return torch.cholesky_solve(B, torch.linalg.cholesky(A))
