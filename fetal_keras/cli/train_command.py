"""``fetal-keras train``: train a slab model with checkpoints, resume, TensorBoard and SavedModel export."""

from __future__ import annotations

import argparse
import dataclasses

from fetal_keras.choices import (
    AUGMENTATIONS,
    IMAGE_SOURCES,
    LEARNING_RATE_SCHEDULES,
    LOSSES,
    MODEL_PRESETS,
    NORMALISATIONS,
    OPTIMIZERS,
    STRATEGIES,
    SURROUNDINGS,
    TASKS,
)
from fetal_keras.data.labels import parse_label_values
from fetal_keras.models.train_config import TrainConfig

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(TrainConfig)}


def add_parser(subparsers) -> None:
    """Register ``train``."""
    parser = subparsers.add_parser(
        "train",
        help="train a model on a training and a validation cohort",
        description="Train a slab model. Writes RUN/config.json, RUN/history.csv, RUN/checkpoints/, "
        "RUN/tensorboard/ and RUN/saved_model/<timestamp>/. Rerun the same command to resume an interrupted run. "
        "The original recipe: --preset fetal_fcn --optimizer sgd --learning-rate 0.01 --batch-size 10 "
        "--loss cross_entropy --augmentation original.",
    )
    parser.add_argument("--train-csv", required=True, help="training cohort CSV (iFIND_id,image,segmentation)")
    parser.add_argument(
        "--val-csv", required=True, help="validation cohort CSV; may not share a subject with --train-csv"
    )
    parser.add_argument("--run-dir", required=True, help="folder for everything this run writes")
    parser.add_argument(
        "--config", default=None, help="start from the settings of a config.json (flags given override it)"
    )

    def option(flag: str, field: str, help_text: str, **kwargs) -> None:
        parser.add_argument(flag, dest=field, default=None, help=f"{help_text} (default: {_DEFAULTS[field]})", **kwargs)

    option("--preset", "preset", "network", choices=MODEL_PRESETS)
    option("--base-filters", "base_filters", "filters of the first U-Net level", type=int)
    option("--epochs", "epochs", "epochs", type=int)
    option("--steps-per-epoch", "steps_per_epoch", "training batches per epoch", type=int)
    option("--batch-size", "batch_size", "global batch size (split over replicas)", type=int)
    option("--optimizer", "optimizer", "optimizer", choices=OPTIMIZERS)
    option("--learning-rate", "learning_rate", "learning rate", type=float)
    option(
        "--learning-rate-schedule",
        "learning_rate_schedule",
        "constant, or cosine: annealed to 0 by the last epoch or the end of --max-minutes, whichever comes first",
        choices=LEARNING_RATE_SCHEDULES,
    )
    option("--momentum", "momentum", "SGD momentum", type=float)
    option("--loss", "loss", "loss", choices=LOSSES)
    option("--seed", "seed", "random seed of sampling, augmentation and initialisation", type=int)
    option("--augmentation", "augmentation", "augmentation recipe", choices=AUGMENTATIONS)
    option(
        "--image-source",
        "image_source",
        "training images: the cohort's images, or rendered with random contrasts from its tissue label maps "
        "(the 'labels' column that fetal-keras simulate writes)",
        choices=IMAGE_SOURCES,
    )
    option(
        "--random-surroundings",
        "random_surroundings",
        "with --image-source labels: what the random background shapes replace: the maternal tissues, or also the "
        "fetal body outside the head, with many small clutter shapes on top",
        choices=SURROUNDINGS,
    )
    option("--slabs-per-stack", "slabs_per_stack", "slabs drawn per stack per round", type=int)
    option(
        "--slab-size",
        "slab_size",
        "in-plane pixels of the training slabs, a multiple of 8 (smaller trains faster; deploy runs whole slices)",
        type=int,
    )
    option("--brain-fraction", "brain_fraction", "fraction of slabs centred on brain", type=float)
    option("--validation-every", "validation_every", "epochs between whole-volume validations", type=int)
    option("--max-minutes", "max_minutes", "stop after the last epoch that fits in this many minutes", type=float)
    option("--brain-labels", "brain_labels", "comma-separated label values that are brain", type=parse_label_values)
    option("--target-spacing", "target_spacing_mm", "resample in-plane to this spacing in mm", type=float)
    option(
        "--normalisation",
        "normalisation",
        "intensity normalisation of every stack, in training and deploy: whole-stack z-score, or z-score over the "
        "foreground (voxels with signal; robust to the air around the mother)",
        choices=NORMALISATIONS,
    )
    option(
        "--task",
        "task",
        "what the model does: segment whole stacks alone, find the head at a coarse spacing (localiser: 3 mm unless "
        "--target-spacing says otherwise), or segment a crop around the head (segmenter: 1.1 mm, crops of the brain "
        "plus --crop-margin); a localiser and a segmenter are deployed together (fetal-keras predict --localiser)",
        choices=TASKS,
    )
    option(
        "--crop-margin",
        "crop_margin_mm",
        "segmenters: margin in mm around the brain's bounding box of the training and validation crops, and around "
        "the localiser's head at deploy (segmenter default: 20)",
        type=float,
    )
    option(
        "--init-from",
        "init_from",
        "start from trained weights instead of random ones (fine-tuning): 'pretrained' (the packaged model; of the "
        "packaged pair, the role --task names), a run folder (its checkpoints/best.keras), a pair folder or a "
        ".keras file; the network and preprocessing settings you do not give are taken from it",
    )
    parser.add_argument(
        "--freeze-encoder",
        action="store_true",
        default=None,
        help="with --init-from: keep the encoder's weights and batch-norm statistics fixed, train the decoder only "
        "(on the shared real stacks it did worse than training everything, even from one stack: docs/finetune.md)",
    )
    option(
        "--l2sp",
        "l2sp_strength",
        "with --init-from: pull every convolution kernel toward its starting value with this strength times the "
        "squared distance (L2-SP), so that a few stacks adapt the model without it forgetting",
        type=float,
    )
    option(
        "--validation-localiser",
        "validation_localiser",
        "segmenters: validate on crops around what this localiser finds (run folder, .keras file or 'pretrained'), "
        "as the pair deploys, instead of around the manual masks; brain outside a crop counts as missed",
    )
    option(
        "--monitor-csv",
        "monitor_csv",
        "labelled stacks (e.g. real ones) measured like the validation cohort at every validation and logged as "
        "monitor_volume_dice in history.csv and TensorBoard; never trained on and never used to choose the kept "
        "checkpoint",
    )
    option(
        "--rehearsal-csv",
        "rehearsal_csv",
        "another labelled cohort (e.g. simulated stacks like those the starting model learned from) of which every "
        "batch holds a --rehearsal-share, so that fine-tuning keeps seeing what it should not forget",
    )
    option(
        "--rehearsal-share",
        "rehearsal_share",
        "with --rehearsal-csv: share of every batch drawn from it, rounded to whole slabs, at least one",
        type=float,
    )
    option("--strategy", "strategy", "tf.distribute strategy", choices=STRATEGIES)
    parser.add_argument("--mixed-precision", action="store_true", default=None, help="float16 compute (GPUs)")
    parser.add_argument("--deterministic", action="store_true", default=None, help="enable TensorFlow op determinism")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch instead of progress bars")
    parser.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config: defaults, then ``--config``, then (with ``--init-from``) the starting model's network and
    preprocessing, then the flags given."""
    base = dataclasses.asdict(TrainConfig.load(args.config)) if args.config else {}
    given = {name: value for name, value in vars(args).items() if name in _DEFAULTS and value is not None}
    settings = base | given
    if settings.get("init_from"):
        from fetal_keras.training.initial_weights import inherited_settings

        settings = base | inherited_settings(settings["init_from"], settings.get("task")) | given
    return TrainConfig(**settings)


def run(args: argparse.Namespace) -> int:
    """Run ``train``."""
    from fetal_keras.training.train import train  # TensorFlow is imported only for the commands that need it

    train(config_from_args(args), verbose=2 if args.quiet else "auto")
    return 0
