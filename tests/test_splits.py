import json

import pandas as pd
import pytest

from fetal_keras.data.cohort import read_cohort
from fetal_keras.data.splits import SplitSettings, ensure_disjoint, load_split, make_splits, subject_ids, write_splits


def _bids_cohort(write_cohort, subjects=10, runs=3):
    ids = [f"sub-{s:02d}_run-{r}" for s in range(subjects) for r in range(runs)]
    return write_cohort(ids=ids)


def test_subjects_with_several_stacks_stay_in_one_set(write_cohort):
    table = read_cohort(_bids_cohort(write_cohort))
    splits = make_splits(table, SplitSettings(0.2, 0.2, seed=3, group_by=r"^(sub-\d+)"))
    subjects = {name: set(splits[name]["subject"]) for name in ("train", "val", "test")}
    assert subjects["train"].isdisjoint(subjects["val"]) and subjects["train"].isdisjoint(subjects["test"])
    assert subjects["val"].isdisjoint(subjects["test"])
    assert {len(s) for s in subjects.values()} == {6, 2}
    assert sum(len(splits[name]) for name in ("train", "val", "test")) == 30
    assert all(len(splits[name]) == 3 * len(subjects[name]) for name in subjects)


def test_same_seed_same_split_other_seed_other_split(write_cohort):
    table = read_cohort(write_cohort(12))
    first = make_splits(table, SplitSettings(seed=1))
    again = make_splits(table, SplitSettings(seed=1))
    other = make_splits(table, SplitSettings(seed=2))
    assert all(first[n]["iFIND_id"].tolist() == again[n]["iFIND_id"].tolist() for n in first)
    assert any(first[n]["iFIND_id"].tolist() != other[n]["iFIND_id"].tolist() for n in first)


def test_folds_partition_the_non_test_subjects(write_cohort):
    table = read_cohort(_bids_cohort(write_cohort, subjects=8, runs=2))
    splits = make_splits(table, SplitSettings(0.2, 0.25, seed=0, folds=3, group_by=r"^(sub-\d+)"))
    test_subjects = set(splits["test"]["subject"])
    validated = []
    for fold in range(3):
        train, val = splits[f"fold-{fold}/train"], splits[f"fold-{fold}/val"]
        assert set(train["subject"]).isdisjoint(val["subject"])
        assert test_subjects.isdisjoint(set(train["subject"]) | set(val["subject"]))
        validated += val["subject"].unique().tolist()
    assert sorted(validated) == sorted(set(table["iFIND_id"].str[:6]) - test_subjects)


def test_group_by_column_and_default_subject_column(write_cohort):
    csv = write_cohort(4)
    table = read_cohort(csv).assign(scan_of=["a", "a", "b", "b"])
    assert subject_ids(table, "scan_of").tolist() == ["a", "a", "b", "b"]
    assert subject_ids(table.assign(subject=["x", "y", "y", "z"])).tolist() == ["x", "y", "y", "z"]
    assert subject_ids(table).tolist() == table["iFIND_id"].tolist()


def test_group_by_regex_that_does_not_match_names_the_line(write_cohort):
    table = read_cohort(write_cohort(2))
    with pytest.raises(ValueError, match=r"Line 3: iFIND_id 'sub-01' does not match"):
        subject_ids(table, r"^sub-00")
    with pytest.raises(ValueError, match="neither a CSV column nor a valid regular expression"):
        subject_ids(table, "sub-(")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(val_fraction=0.5, test_fraction=0.5), "leaves no training"),
        (dict(val_fraction=1.2), r"in \[0, 1\)"),
        (dict(folds=1), "at least 2"),
    ],
)
def test_invalid_settings_are_rejected(settings, message):
    with pytest.raises(ValueError, match=message):
        SplitSettings(**settings)


def test_too_few_subjects_is_a_clear_error(write_cohort):
    with pytest.raises(ValueError, match="subject"):
        make_splits(read_cohort(write_cohort(2)), SplitSettings(0.2, 0.2))
    with pytest.raises(ValueError, match="Cannot make 5 folds from"):
        make_splits(read_cohort(write_cohort(5)), SplitSettings(0, 0.2, folds=5))


def test_written_split_round_trips_with_portable_paths(tmp_path, write_cohort):
    csv = write_cohort(10)
    table = read_cohort(csv)
    settings = SplitSettings(0.2, 0.2, seed=0, folds=2)
    write_splits(make_splits(table, settings), tmp_path / "splits" / "demo", csv, settings)

    train_csv = pd.read_csv(tmp_path / "splits" / "demo" / "train.csv")
    assert train_csv["image"].str.startswith("../../cohort/images/").all()
    loaded = load_split(tmp_path / "splits" / "demo")
    assert sorted(sum((t["iFIND_id"].tolist() for t in loaded.values()), [])) == sorted(table["iFIND_id"])
    assert set(loaded["train"]["image"]) <= set(table["image"])
    assert len(load_split(tmp_path / "splits" / "demo", fold=1)) == 3
    record = json.loads((tmp_path / "splits" / "demo" / "split.json").read_text())
    assert record["settings"]["seed"] == 0 and record["sets"]["test"]["stacks"] == 2


def test_existing_split_is_not_overwritten_by_default(tmp_path, write_cohort):
    csv = write_cohort(5)
    settings = SplitSettings(0.2, 0.2)
    splits = make_splits(read_cohort(csv), settings)
    write_splits(splits, tmp_path / "s", csv, settings)
    before = (tmp_path / "s" / "train.csv").read_text()
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_splits(splits, tmp_path / "s", csv, settings)
    assert (tmp_path / "s" / "train.csv").read_text() == before
    write_splits(splits, tmp_path / "s", csv, settings, overwrite=True)


def test_loader_refuses_a_subject_in_two_sets(tmp_path, write_cohort):
    csv = write_cohort(10)
    settings = SplitSettings(0.2, 0.2)
    write_splits(make_splits(read_cohort(csv), settings), tmp_path / "s", csv, settings)
    train_rows = (tmp_path / "s" / "train.csv").read_text().splitlines()
    with open(tmp_path / "s" / "test.csv", "a") as test_csv:
        test_csv.write(train_rows[1] + "\n")
    with pytest.raises(ValueError, match="Subject leak: train and test share 1 iFIND_id"):
        load_split(tmp_path / "s")


def test_same_image_under_another_id_is_a_leak(write_cohort):
    """The original deploy evaluated a training stack under a test id; paths catch that."""
    table = read_cohort(write_cohort(3))
    test = table.iloc[[0]].assign(iFIND_id="renamed")
    with pytest.raises(ValueError, match="share 1 image"):
        ensure_disjoint({"train": table, "test": test})
