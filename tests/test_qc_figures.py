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


def test_the_score_against_dice_draws_one_series_per_group_with_both_limits():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from fetal_keras.figures.qc_plots import score_against_dice

    table = pd.DataFrame({"dice": [0.2, 0.9, 0.7], "qc_score": [1.0, 0.0, 0.4], "part": ["a", "b", "a"]})
    fig, ax = plt.subplots()
    score_against_dice(ax, table, "part", "the manual mask")
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["a (2)", "b (1)", "flag limit"]
    assert [len(series.get_offsets()) for series in ax.collections] == [2, 1]
    assert ax.get_xlabel() == "Dice against the manual mask" and len(ax.lines) == 2
    plt.close(fig)
