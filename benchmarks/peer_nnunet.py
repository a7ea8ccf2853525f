"""nnU-Net v2's own planning, training and prediction on a raw dataset, for ``benchmarks/bench_peer.py``.

Run by bench_peer.py in a process of its own (torch and TensorFlow never share one), with ``nnUNet_raw``,
``nnUNet_preprocessed`` and ``nnUNet_results`` set; needs ``pip install -e .[peers]``. Three steps:

- ``prepare --dataset-id N``: nnU-Net's fingerprint, plans and preprocessing, for its ``2d`` configuration only
  (``nnUNetv2_plan_and_preprocess -d N -c 2d --verify_dataset_integrity``).
- ``train --dataset-id N --fold F --minutes M``: ``nnUNetTrainer`` (its augmentation, loss, SGD and poly schedule,
  deep supervision) for M minutes of training on the CPU (epochs of ``--iterations`` batches, the last one shortened
  to the batches that still fit), the schedule stretched over the epochs that fit; writes
  ``budget.json`` beside ``checkpoint_final.pth``. As ``nnUNetv2_train N 2d F -device cpu``, without the final
  validation.
- ``predict --dataset-id N --fold F --images-csv CASES --out DIR``: nnU-Net's predictor (sliding window, Gaussian
  weighting, mirroring unless ``--disable-tta``) on each image of CASES (columns ``case``, ``image``), one at a time,
  timed after the model is loaded; writes ``DIR/<case>.nii.gz`` and ``DIR/seconds.json``.

The trainer class is built here directly instead of being looked up by name: nnU-Net's lookup imports every trainer
module, and one of them needs timm and torchvision, which fail to import beside a CPU-only torch wheel.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

CONFIGURATION = "2d"
TRAINER_NAME = "nnUNetTrainerBudget"
PLANS = "nnUNetPlans"


def build_parser() -> argparse.ArgumentParser:
    """The command line of the three steps."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    steps = parser.add_subparsers(dest="step", required=True)
    prepare = steps.add_parser("prepare", help="fingerprint, plan and preprocess (2d)")
    train = steps.add_parser("train", help="train nnUNetTrainer for a wall-clock budget")
    predict = steps.add_parser("predict", help="predict images one at a time, timed")
    for step in (prepare, train, predict):
        step.add_argument("--dataset-id", type=int, required=True, help="nnU-Net dataset number")
        step.add_argument(
            "--processes", type=int, default=1, help="worker processes (preprocessing, data augmentation; default: 1)"
        )
    for step in (train, predict):
        step.add_argument("--fold", default="all", help="'all' or a fold number (default: all)")
    train.add_argument("--minutes", type=float, required=True, help="training budget in minutes")
    train.add_argument(
        "--iterations", type=int, default=10, help="training batches per epoch (nnU-Net: 250; default: 10)"
    )
    predict.add_argument("--images-csv", type=Path, required=True, help="CSV with columns case and image")
    predict.add_argument("--out", type=Path, required=True, help="folder for <case>.nii.gz and seconds.json")
    predict.add_argument("--disable-tta", action="store_true", help="no mirroring (nnU-Net's default mirrors)")
    return parser


def budget_trainer_class():
    """``nnUNetTrainer`` that trains for ``self.budget_seconds`` of wall clock instead of 1000 epochs."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    class nnUNetTrainerBudget(nnUNetTrainer):  # noqa: N801 (nnU-Net's naming of trainers)
        budget_seconds = 600.0

        def run_training(self):
            """nnU-Net's training loop, ended by the budget: after each epoch the batches that still fit are
            estimated from the time per batch so far; the next epoch is shortened to them if fewer than an epoch's
            remain, and the poly schedule is stretched over the epochs that fit."""
            self.on_train_start()
            started = time.monotonic()
            iterations = self.num_iterations_per_epoch
            epochs = batches = 0
            while self.current_epoch < self.num_epochs:
                self.on_epoch_start()
                self.on_train_epoch_start()
                outputs = [self.train_step(next(self.dataloader_train)) for _ in range(self.num_iterations_per_epoch)]
                self.on_train_epoch_end(outputs)
                with torch.no_grad():
                    self.on_validation_epoch_start()
                    outputs = [
                        self.validation_step(next(self.dataloader_val))
                        for _ in range(self.num_val_iterations_per_epoch)
                    ]
                    self.on_validation_epoch_end(outputs)
                self.on_epoch_end()
                epochs, batches = epochs + 1, batches + self.num_iterations_per_epoch
                elapsed = time.monotonic() - started
                left = int((self.budget_seconds - elapsed) // (elapsed / batches))  # batches that still fit
                self.num_iterations_per_epoch = max(1, min(iterations, left))
                self.num_val_iterations_per_epoch = max(1, self.num_iterations_per_epoch // 5)
                self.num_epochs = self.current_epoch + (math.ceil(left / iterations) if left >= 1 else 0)
                self.lr_scheduler.max_steps = max(self.num_epochs, 1)
            seconds = time.monotonic() - started
            self.on_train_end()
            record = {
                "budget_s": self.budget_seconds,
                "train_s": round(seconds, 1),
                "epochs": epochs,
                "batches": batches,
                "batch_size": int(self.batch_size),
                "patch_size": [int(size) for size in self.configuration_manager.patch_size],
            }
            Path(self.output_folder, "budget.json").write_text(json.dumps(record, indent=2) + "\n")

    return nnUNetTrainerBudget


def prepare(dataset_id: int, processes: int) -> None:
    """nnU-Net's fingerprint, plans and 2d preprocessing of the dataset."""
    from nnunetv2.experiment_planning.plan_and_preprocess_api import extract_fingerprints, plan_experiments, preprocess

    extract_fingerprints([dataset_id], num_processes=processes, check_dataset_integrity=True)
    plan_experiments([dataset_id])
    preprocess([dataset_id], configurations=(CONFIGURATION,), num_processes=(processes,))


def _fold(text: str) -> int | str:
    return text if text == "all" else int(text)


def train(dataset_id: int, fold: str, minutes: float, iterations: int) -> Path:
    """Train the budget trainer on the CPU; return its output folder."""
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    preprocessed = Path(nnUNet_preprocessed) / maybe_convert_to_dataset_name(dataset_id)
    trainer_class = budget_trainer_class()
    trainer = trainer_class(
        plans=load_json(str(preprocessed / f"{PLANS}.json")) | {"continue_training": False},
        configuration=CONFIGURATION,
        fold=_fold(fold),
        dataset_json=load_json(str(preprocessed / "dataset.json")),
        device=torch.device("cpu"),
    )
    trainer.budget_seconds = 60.0 * minutes
    trainer.num_iterations_per_epoch = iterations
    trainer.num_val_iterations_per_epoch = max(1, iterations // 5)  # nnU-Net's own ratio, 250 to 50
    trainer.run_training()
    return Path(trainer.output_folder)


def predict(dataset_id: int, fold: str, images_csv: Path, out: Path, disable_tta: bool) -> None:
    """Predict each image with the trained model, timing each after the model is loaded."""
    import pandas as pd
    import torch
    from nnunetv2.inference import predict_from_raw_data
    from nnunetv2.paths import nnUNet_results
    from nnunetv2.utilities.dataset_name_id_conversion import maybe_convert_to_dataset_name

    trainer_class = budget_trainer_class()
    # The checkpoint names this script's trainer, which nnU-Net's lookup by name cannot find: give it the class.
    predict_from_raw_data.recursive_find_trainer_class_by_name = lambda name: trainer_class
    model = (
        Path(nnUNet_results) / maybe_convert_to_dataset_name(dataset_id) / f"{TRAINER_NAME}__{PLANS}__{CONFIGURATION}"
    )
    predictor = predict_from_raw_data.nnUNetPredictor(
        use_mirroring=not disable_tta, perform_everything_on_device=False, device=torch.device("cpu"), allow_tqdm=False
    )
    predictor.initialize_from_trained_model_folder(str(model), use_folds=(_fold(fold),))
    out.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for case, image in pd.read_csv(images_csv)[["case", "image"]].itertuples(index=False):
        started = time.perf_counter()
        predictor.predict_from_files_sequential([[image]], [str(out / case)], save_probabilities=False)
        seconds[case] = round(time.perf_counter() - started, 3)
    (out / "seconds.json").write_text(json.dumps(seconds, indent=2) + "\n")


def main() -> None:
    args = build_parser().parse_args()
    missing = [name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results") if name not in os.environ]
    if missing:
        raise SystemExit(f"set {', '.join(missing)} (bench_peer.py does).")
    os.environ.setdefault("nnUNet_n_proc_DA", str(args.processes))  # data-augmentation workers
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    if args.step == "prepare":
        prepare(args.dataset_id, args.processes)
    elif args.step == "train":
        print(train(args.dataset_id, args.fold, args.minutes, args.iterations))
    else:
        predict(args.dataset_id, args.fold, args.images_csv, args.out, args.disable_tta)


if __name__ == "__main__":
    main()
