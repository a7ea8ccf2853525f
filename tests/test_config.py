import dataclasses
import json

import pytest

from fetal_keras.models.train_config import TrainConfig


def test_config_round_trips_through_json_with_provenance(tmp_path):
    config = TrainConfig("a.csv", "b.csv", "run", brain_labels=(2,), clip_percentiles=(0.5, 99.5), epochs=3)
    path = config.save(tmp_path / "config.json")
    assert TrainConfig.load(path) == config
    record = json.loads(path.read_text())
    assert record["package_versions"]["tensorflow"] and "created" in record and "git_commit" in record


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"preset": "resnet"}, "preset must be one of"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"learning_rate": -1.0}, "learning_rate must be positive"),
        ({"loss": "focal"}, "loss must be one of"),
        ({"random_surroundings": "uterus"}, "random_surroundings must be one of"),
        ({"slab_size": 100}, "slab_size must be a multiple of 8"),
        ({"slab_size": 8}, "slab_size must be a multiple of 8 of at least 16"),
    ],
)
def test_invalid_settings_are_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig("a.csv", "b.csv", "run", **change)


def test_unknown_settings_in_a_config_file_are_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"config": dataclasses.asdict(TrainConfig("a", "b", "c")) | {"dropout": 0.5}}))
    with pytest.raises(ValueError, match="dropout"):
        TrainConfig.load(path)


def test_original_recipe_is_expressible():
    original = TrainConfig(
        "a",
        "b",
        "c",
        preset="fetal_fcn",
        optimizer="sgd",
        learning_rate=0.01,
        momentum=0.9,
        batch_size=10,
        loss="cross_entropy",
        augmentation="original",
    )
    assert original.augment.rotation_deg == 0 and original.augment.flip_probability == 0.5


def test_preprocessing_of_a_run_comes_from_its_config():
    config = TrainConfig("a", "b", "c", brain_labels=(2,), target_spacing_mm=0.8, clip_percentiles=(1.0, 99.0))
    preprocess = config.preprocess
    assert (preprocess.brain_labels, preprocess.target_spacing_mm, preprocess.clip_percentiles) == (
        (2,),
        0.8,
        (1.0, 99.0),
    )


def test_random_surroundings_choose_what_the_rendering_covers():
    assert TrainConfig("a", "b", "c").render is None  # images, not label maps
    maternal = TrainConfig("a", "b", "c", image_source="labels").render
    body = TrainConfig("a", "b", "c", image_source="labels", random_surroundings="body").render
    assert not maternal.blobs_over_fetal_body and maternal.clutter_blobs == (0, 0)
    assert body.blobs_over_fetal_body and body.clutter_blobs[1] > 0
