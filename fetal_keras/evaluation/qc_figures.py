"""How well a QC score finds failed masks: ROC AUC and the flag's operating point, from a per-stack table."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

# A mask with Dice below this against the truth is a failure the QC score should find.
FAILURE_DICE = 0.8
# Masks this bad must all be flagged; masks this good should rarely be (issue 33's rule).
BAD_DICE = 0.7
GOOD_DICE = 0.85


def roc_auc(failed, score) -> float | None:
    """ROC AUC of ``score`` (higher = more likely failed) for ``failed``; None when only one class is present."""
    failed = np.asarray(failed, bool)
    if failed.all() or not failed.any():
        return None
    return round(float(roc_auc_score(failed, np.asarray(score, np.float64))), 3)


def operating_point(dice, score, flag) -> dict:
    """The QC figures of one set of masks: ``stacks``, ``failures`` (Dice < ``FAILURE_DICE``), ``roc_auc``,
    ``flagged``, ``failures_caught``, ``false_alarms``, and the rule's counts: ``bad`` / ``bad_flagged`` (Dice <
    ``BAD_DICE``), ``good`` / ``good_flagged`` (Dice >= ``GOOD_DICE``)."""
    dice = np.asarray(dice, np.float64)
    flag = np.asarray(flag, bool)
    failed = dice < FAILURE_DICE
    bad, good = dice < BAD_DICE, dice >= GOOD_DICE
    return {
        "stacks": int(len(dice)),
        "failures": int(failed.sum()),
        "roc_auc": roc_auc(failed, score),
        "flagged": int(flag.sum()),
        "failures_caught": int((flag & failed).sum()),
        "false_alarms": int((flag & ~failed).sum()),
        "bad": int(bad.sum()),
        "bad_flagged": int((flag & bad).sum()),
        "good": int(good.sum()),
        "good_flagged": int((flag & good).sum()),
    }
