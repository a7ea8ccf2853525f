"""The QC score against Dice: how the benchmarks of the QC score draw it."""

from __future__ import annotations

import pandas as pd

from fetal_keras.deploy.stack_qc import QcSettings
from fetal_keras.evaluation.qc_figures import FAILURE_DICE


def score_against_dice(ax, table: pd.DataFrame, by: str, truth: str = "the truth") -> None:
    """Scatter ``table``'s ``qc_score`` against its ``dice``, one colour per value of column ``by`` (with its count),
    with the failure limit (Dice < ``FAILURE_DICE``) and the flag limit."""
    for group, rows in table.groupby(by, sort=False):
        ax.scatter(rows["dice"], rows["qc_score"], s=18, label=f"{group} ({len(rows)})")
    ax.axvline(FAILURE_DICE, color="grey", linestyle=":")
    ax.axhline(QcSettings().flag_score, color="grey", linestyle="--", label="flag limit")
    ax.set(xlabel=f"Dice against {truth}", ylabel="qc_score", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax.legend(loc="best", fontsize=8)
