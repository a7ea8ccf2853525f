"""The QC figures of a set of masks: AUC and the flag's operating point, counted on a known table."""

from fetal_keras.evaluation.qc_figures import operating_point, roc_auc


def test_operating_point_counts_failures_flags_and_the_rule():
    dice = [0.1, 0.65, 0.75, 0.82, 0.9, 0.95]
    score = [0.9, 0.2, 0.6, 0.5, 0.1, 0.0]
    flag = [True, False, True, True, False, False]
    figures = operating_point(dice, score, flag)
    assert figures == {
        "stacks": 6,
        "failures": 3,
        "roc_auc": roc_auc([True, True, True, False, False, False], score),
        "flagged": 3,
        "failures_caught": 2,
        "false_alarms": 1,
        "bad": 2,
        "bad_flagged": 1,
        "good": 2,
        "good_flagged": 0,
    }
    assert figures["roc_auc"] == round(8 / 9, 3)  # 8 of the 9 (failure, success) pairs ordered by the score


def test_roc_auc_needs_both_classes():
    assert roc_auc([True, True], [0.1, 0.2]) is None
    assert roc_auc([True, False], [0.9, 0.1]) == 1.0
