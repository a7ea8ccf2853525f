"""The training recipes of the packaged models and of fine-tuning: settings only, importable without loading
TensorFlow or the data stack (the command line's help reads its defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fetal_keras.models.train_config import TrainConfig

STARTS = ("pretrained", "scratch")
# Training settings for a few real stacks (docs/finetune.md has the evidence): many small updates within the budget,
# no validation passes (they cost budget), the last epoch kept.
SMALL_COHORT_RECIPE = {
    "learning_rate": 1e-3,
    "batch_size": 5,
    "steps_per_epoch": 25,
    "epochs": 1000,  # the time budget ends training
    "validation_every": 1000,
}
# Share of the time budget each role gets.
ROLE_SHARES = {"localiser": 0.5, "segmenter": 0.5}

# A fixed number of steps, so that the result does not depend on the machine's speed: starting from the packaged
# whole-stack U-Net (trained on the same simulator), 3 epochs of 15 batches reach a test Dice above 0.9 and fit in
# about 5 minutes of training on a slow day of a 2-core CPU (README, "Two commands"). The time budget is only a guard.
DEMO_EPOCHS = 3
DEMO_STEPS_PER_EPOCH = 15
DEMO_INIT_FROM = "pretrained:v1"
DEMO_GUARD_MINUTES = 20.0


@dataclass(frozen=True)
class PretrainedRecipe:
    """How the pretrained pair is made.

    Attributes:
        subjects: simulated fetuses with images (3 stacks each, T2 contrast). With a bank (``bank_subjects``) they
            only validate (a third of them, at least one) and test (the rest); without one they are also split
            for training (70/15/15 %).
        bank_subjects: fetuses of the training bank: label maps and masks only (``SimulationSettings.labels_only``),
            one stack each, orientations cycling; every training image is rendered from them. 0: train on the
            ``subjects`` cohort's training split (the v2 recipe).
        preset: simulator preset (``realistic``: clinical matrix and field of view).
        seed: seed of the bank, split and training; the imaged cohort's is ``seed + 1000``.
        localiser_epochs, segmenter_epochs: at most this many epochs per role (an epoch count, unlike a time
            budget, does not depend on how busy the machine is).
        localiser_minutes, segmenter_minutes: a time budget per role on top; training stops after the last epoch
            that fits.
        steps_per_epoch, validation_every, batch_size: training settings; one epoch is one validation interval
            (600 batches of 16: a validation takes under 10 % of a run).
        localiser_filters, segmenter_filters: each role's U-Net width (filters of its first level, doubling below).
        localiser_slab_size, segmenter_slab_size: each role's training slab in pixels (deploy runs whole slices).
        localiser_spacing_mm: the localiser's in-plane spacing. 3 mm since v3: its only job is a box around the head,
            and at 3 mm a 64-pixel slab sees 19 cm, a whole fetal head with its surroundings (7 cm at 1.1 mm), and
            deploy's whole field of view is a ninth of the pixels (v2 localised at 1.1 mm: trained for a few
            hundred batches, 3 mm localisers found the head on only 3-5 of the six real labelled stacks,
            ``docs/sim_to_real.md`` rows 7 and 9-10; in the 2026-12-04 run, row 26, the 3 mm localiser's head holds
            82-91 % of the brain on 5 of the 6).
        learning_rate_schedule: ``cosine`` anneals each role's learning rate to 0 by its last epoch or time budget.
        random_surroundings: what the rendering's random shapes replace (``TrainConfig.random_surroundings``;
            ``distractors`` adds fluid-filled round structures of brain size beside the head).
        head_anatomy: the simulated fetuses' brains (``SimulationSettings.head_anatomy``: ``icbm`` or ``atlas``).
        ga_range_weeks: gestational ages of the bank and the imaged fetuses (18-38 weeks since v3: the youngest
            real fetuses were where v2's masks were too small).
        augmentation: the training augmentation (``TrainConfig.augmentation``; ``anatomy`` also scales each in-plane
            axis, shears and warps every slab: a new anatomy for every example).
        selection_csv: a labelled cohort on which each role's checkpoint is chosen instead of the simulated
            validation split; never trained on. The card names it and stars its stacks. None (the default since v3):
            the simulated validation split chooses, so that real stacks stay an honest measure.
        monitor_csv: labelled (e.g. real) stacks measured at every validation (``TrainConfig.monitor_csv``): the
            real-Dice-over-training curve; never trained on, never choosing.
    """

    subjects: int = 3
    bank_subjects: int = 150
    preset: str = "realistic"
    seed: int = 3000
    localiser_epochs: int = 20
    segmenter_epochs: int = 28
    localiser_minutes: float = 40.0
    segmenter_minutes: float = 55.0
    steps_per_epoch: int = 600
    batch_size: int = 16
    validation_every: int = 1
    localiser_filters: int = 8
    segmenter_filters: int = 8
    localiser_slab_size: int = 64
    segmenter_slab_size: int = 64
    localiser_spacing_mm: float = 3.0
    learning_rate_schedule: str = "cosine"
    random_surroundings: str = "distractors"
    head_anatomy: str = "atlas"
    ga_range_weeks: tuple[float, float] = (18.0, 38.0)
    augmentation: str = "anatomy"
    selection_csv: str | None = None
    monitor_csv: str | None = None

    def config(
        self, role: str, split_dir: Path, run_dir: Path, bank_csv: Path | None = None, localiser_run: Path | None = None
    ) -> TrainConfig:
        """The training config of ``role`` (``"localiser"`` or ``"segmenter"``), trained on ``bank_csv`` when
        given, else on the split's training set. A segmenter given the pair's ``localiser_run`` is validated (and
        monitored) on crops around what that localiser finds, as deploy crops: a crop around the true brain tells
        the network where the brain is (``docs/sim_to_real.md`` rows 35-36), and a checkpoint chosen there is not
        the pair's best."""
        return TrainConfig(
            str(bank_csv or split_dir / "train.csv"),
            self.selection_csv or str(split_dir / "val.csv"),
            str(run_dir),
            base_filters=getattr(self, f"{role}_filters"),
            slab_size=getattr(self, f"{role}_slab_size"),
            learning_rate_schedule=self.learning_rate_schedule,
            epochs=getattr(self, f"{role}_epochs"),
            steps_per_epoch=self.steps_per_epoch,
            batch_size=self.batch_size,
            validation_every=self.validation_every,
            seed=self.seed,
            max_minutes=getattr(self, f"{role}_minutes"),
            image_source="labels",
            random_surroundings=self.random_surroundings,
            augmentation=self.augmentation,
            normalisation="foreground",
            task=role,
            target_spacing_mm=self.localiser_spacing_mm if role == "localiser" else None,
            monitor_csv=self.monitor_csv,
            validation_localiser=str(localiser_run) if role == "segmenter" and localiser_run else None,
        )
