"""Per-sample geometry of the features that reach the final linear layer (pure functions).

With x the feature, W_c and b_c the classifier's weight row and bias for class c, and y the true class:

    logit_c = W_c . x + b_c = |W_c| |x| cos(theta_c) + b_c

feature length |x| mainly drives confidence, the angle theta_y to the true class decides whether the
sample is classified right, and the margin is the signed distance from x to the nearest decision
boundary between the true class and any other class:

    margin = min_{j != y} ((W_y - W_j) . x + b_y - b_j) / |W_y - W_j|      (negative when misclassified)

Everything is computed in float32 from one matrix product, so extraction can do it in the same pass as
inference; angles are in degrees. A zero feature (or a zero weight row) has no direction: its cosines
are 0, i.e. 90 degrees to every class. Two identical weight rows have no boundary between them; that
pair is left out of the margin (infinite distance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Fields of one geometry record, in the order of the store schema.
SCALAR_FIELDS = (
    "label", "pred", "correct", "loss", "confidence", "p_true", "feature_norm", "weight_norm_true",
    "cos_true", "angle_true", "angle_pred", "angle_nearest_wrong", "margin", "finite",
)


@dataclass(frozen=True)
class Geometry:
    """Per-sample geometry for a batch of N samples and C classes (all tensors on one device)."""

    label: torch.Tensor  # int64 (N,)
    pred: torch.Tensor  # int64 (N,)
    correct: torch.Tensor  # bool (N,)
    loss: torch.Tensor  # (N,) cross-entropy
    confidence: torch.Tensor  # (N,) softmax probability of the prediction
    p_true: torch.Tensor  # (N,) softmax probability of the true class
    feature_norm: torch.Tensor  # (N,) |x|
    weight_norm_true: torch.Tensor  # (N,) |W_y|
    cos_true: torch.Tensor  # (N,)
    angle_true: torch.Tensor  # (N,) degrees
    angle_pred: torch.Tensor  # (N,) degrees
    angle_nearest_wrong: torch.Tensor  # (N,) degrees, smallest angle to a class other than y
    margin: torch.Tensor  # (N,)
    finite: torch.Tensor  # bool (N,) every value of the sample is finite
    angles: torch.Tensor  # (N, C) degrees
    logits: torch.Tensor  # (N, C)


def cosines(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Cosine between every feature (N, D) and every class weight row (C, D): (N, C), 0 for zero vectors."""
    feature_norm = torch.linalg.vector_norm(features, dim=1, keepdim=True)
    weight_norm = torch.linalg.vector_norm(weight, dim=1)
    # Normalise before the product so huge norms cannot overflow float32.
    unit_features = features / feature_norm.clamp_min(torch.finfo(features.dtype).tiny)
    unit_weight = weight / weight_norm.clamp_min(torch.finfo(weight.dtype).tiny)[:, None]
    return (unit_features @ unit_weight.T).clamp(-1.0, 1.0)


def degrees_from_cosine(cos: torch.Tensor) -> torch.Tensor:
    return torch.rad2deg(torch.arccos(cos))


def margins(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            labels: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
    """Signed distance (N,) from each feature to the nearest boundary between its true class and another.

    Uses the logits (W x + b) already computed for the batch: the numerator for class j is
    logit_y - logit_j, the denominator |W_y - W_j| comes from a (C, C) table of row distances.
    """
    if logits is None:
        logits = F.linear(features, weight, bias)
    n, num_classes = logits.shape
    rows = torch.arange(n, device=logits.device)
    row_distance = torch.cdist(weight[None].double(), weight[None].double())[0].to(weight.dtype)  # (C, C)
    numerator = logits[rows, labels][:, None] - logits  # (N, C)
    denominator = row_distance[labels]  # (N, C)
    distance = numerator / denominator
    no_boundary = (denominator == 0) | F.one_hot(labels, num_classes).bool()
    distance = distance.masked_fill(no_boundary, float("inf"))
    return distance.min(dim=1).values


def compute(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            labels: torch.Tensor) -> Geometry:
    """All per-sample geometry for features (N, D), classifier weight (C, D), bias (C,) or None, labels (N,)."""
    features = features.float()
    weight = weight.float()
    bias = None if bias is None else bias.float()
    labels = labels.long()
    n, num_classes = features.shape[0], weight.shape[0]
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got weight of shape {tuple(weight.shape)}")
    rows = torch.arange(n, device=features.device)

    logits = F.linear(features, weight, bias)
    log_probs = F.log_softmax(logits, dim=1)
    pred = logits.argmax(dim=1)
    cos = cosines(features, weight)
    angles = degrees_from_cosine(cos)
    wrong_angles = angles.masked_fill(F.one_hot(labels, num_classes).bool(), float("inf"))
    margin = margins(features, weight, bias, labels, logits)
    loss = -log_probs[rows, labels]
    p_true = log_probs[rows, labels].exp()
    confidence = log_probs[rows, pred].exp()
    feature_norm = torch.linalg.vector_norm(features, dim=1)
    finite = torch.isfinite(logits).all(dim=1) & torch.isfinite(features).all(dim=1) & torch.isfinite(loss)
    return Geometry(
        label=labels,
        pred=pred,
        correct=pred == labels,
        loss=loss,
        confidence=confidence,
        p_true=p_true,
        feature_norm=feature_norm,
        weight_norm_true=torch.linalg.vector_norm(weight, dim=1)[labels],
        cos_true=cos[rows, labels],
        angle_true=angles[rows, labels],
        angle_pred=angles[rows, pred],
        angle_nearest_wrong=wrong_angles.min(dim=1).values,
        margin=margin,
        finite=finite,
        angles=angles,
        logits=logits,
    )


def stored_classes(logits: torch.Tensor, labels: torch.Tensor, all_up_to: int,
                   top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The classes whose values a store row keeps (store format 2): (classes (N, K), kept (N, K) bool).

    Every class, ascending, when there are at most `all_up_to`; otherwise the `top_k` classes with the
    largest logits (largest first) and then the true class, kept only where it is not among them. So a
    row always holds its prediction's and its true class's logit.
    """
    n, num_classes = logits.shape
    if num_classes <= all_up_to:
        classes = torch.arange(num_classes, device=logits.device).expand(n, num_classes)
        return classes, torch.ones_like(classes, dtype=torch.bool)
    k = min(top_k, num_classes)
    # NaN logits (a non-finite row) would make the order arbitrary; they sort last, deterministically.
    top = torch.nan_to_num(logits.float(), nan=-torch.inf).topk(k, dim=1).indices
    classes = torch.cat([top, labels.long()[:, None]], dim=1)
    kept = torch.ones_like(classes, dtype=torch.bool)
    kept[:, -1] = ~(top == labels.long()[:, None]).any(dim=1)
    return classes, kept


def classifier_norms(weight: torch.Tensor, bias: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class: |W_c| and b_c (0 without bias), in float64, as a format-2 store records them."""
    weight = weight.detach().double()
    norms = torch.linalg.vector_norm(weight, dim=1)
    return norms, torch.zeros_like(norms) if bias is None else bias.detach().double()
