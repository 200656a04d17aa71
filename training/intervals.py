"""95 % intervals of the validation figures, and the check that a model beats chance. numpy only, so ``promote``
can judge a card without loading scikit-learn or TensorFlow."""

from __future__ import annotations

import numpy as np

Z95 = 1.959964


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion: honest for small folders and rates near 0 or 1."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def balanced_accuracy_interval(tp: int, fn: int, tn: int, fp: int) -> tuple[float, float]:
    """Normal approximation: recall and specificity are independent proportions, averaged."""
    positives, negatives = tp + fn, tn + fp
    if not positives or not negatives:
        return 0.0, 1.0
    tpr, tnr = tp / positives, tn / negatives
    ba = (tpr + tnr) / 2
    # Half a count of slack keeps a perfect score on a handful of photos from claiming zero uncertainty.
    se = 0.5 * np.sqrt(max(tpr * (1 - tpr), 0.5 / positives) / positives + max(tnr * (1 - tnr), 0.5 / negatives) / negatives)
    return max(0.0, float(ba - Z95 * se)), min(1.0, float(ba + Z95 * se))


def auc_interval(auc: float, positives: int, negatives: int) -> tuple[float, float]:
    """95 % interval of a ROC AUC from its standard error (Hanley & McNeil, 1982)."""
    if not positives or not negatives:
        return 0.0, 1.0
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    spread = auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    variance = spread / (positives * negatives)
    se = max(float(np.sqrt(max(variance, 0.0))), 0.5 / np.sqrt(positives * negatives))
    return max(0.0, float(auc - Z95 * se)), min(1.0, float(auc + Z95 * se))


def chance_level_reasons(validation: dict) -> list[str]:
    """Why a model's validation figures do not show it beats a coin toss (empty when they do).

    Works from a card's ``metrics.validation`` alone (its confusion matrix and ROC AUC), so it can judge any card,
    older ones included: the 95 % interval of the balanced accuracy or of the AUC must lie above 0.5."""
    (tn, fp), (fn, tp) = validation["confusion_matrix"]["rows_true_cols_predicted"]
    reasons = []
    low, high = balanced_accuracy_interval(tp, fn, tn, fp)
    balanced = ((tp / (tp + fn) if tp + fn else 0) + (tn / (tn + fp) if tn + fp else 0)) / 2
    if low <= 0.5:
        reasons.append(f"validation balanced accuracy {balanced:.3f} (95 % interval {low:.3f}-{high:.3f}, "
                       f"{tp + fn} fire and {tn + fp} no-fire photos) does not exclude chance (0.5)")
    auc = validation.get("roc_auc")
    if auc is None:
        reasons.append("validation ROC AUC is missing (one class only?)")
    else:
        low, high = auc_interval(auc, tp + fn, tn + fp)
        if low <= 0.5:
            reasons.append(f"validation ROC AUC {auc:.3f} (95 % interval {low:.3f}-{high:.3f}) does not exclude chance (0.5)")
    return reasons
