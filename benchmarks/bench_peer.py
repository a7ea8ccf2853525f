"""fetal_keras beside nnU-Net v2 on one's own labelled stacks: the same stacks, the same minutes of training each.

For each ``--minutes`` budget, three systems train on ``--train-csv`` and segment ``--test-csv``:

- ``fetal_keras_scratch``: the small-cohort recipe (``fetal_keras.training.small_cohort``, what ``fetal-keras
  finetune --start scratch --roles both --steps 0`` runs) from random weights: a localiser and a segmenter, half the budget each;
- ``fetal_keras_finetune``: the same recipe from the packaged pair (``fetal-keras finetune --roles both
  --no-average-with-packaged --steps 0``: both roles, the wall-clock budget, no mean with the packaged pair);
- ``nnunet_2d``: nnU-Net v2's ``2d`` configuration, its own planning, preprocessing and trainer
  (``benchmarks/peer_nnunet.py``: ``nnUNetTrainer`` stopped by the budget, its schedule stretched over the epochs
  that fit), its own predictor (sliding window, mirroring).

Training time is the budget (nnU-Net's planning and preprocessing are timed apart, ``preprocess_s``); every system's
masks are scored by the same code (``fetal_keras.evaluation``) against the test segmentations. Validation: nnU-Net
validates on ``--val-csv`` when its stacks are apart from the training ones (fold 0 of its ``splits_final.json``) and
trains fold ``all`` when they are training stacks; fetal_keras's recipe never validates and keeps its last epoch
(it loads ``--val-csv``, or the test stacks when the validation stacks are training stacks, and chooses nothing on
them). nnU-Net and a CPU build of torch come with ``pip install -e .[peers]`` (run ``--nnunet-python`` with another
environment's interpreter to keep them apart).

Writes ``OUT/peer_table.csv`` (``system,budget_min,train_s,mean_dice,min_dice,median_hd95_mm,deploy_s_per_stack``
and more: the date, the day's float32 matmul peak measured before each row, what each system trained),
row by row: a rerun skips the rows it holds. Masks, runs and nnU-Net's folders stay under ``OUT``.

Run: .venv/bin/python benchmarks/bench_peer.py --train-csv T --val-csv V --test-csv S --minutes 10 30 --out DIR
     [--systems fetal_keras_scratch fetal_keras_finetune nnunet_2d] [--nnunet-python PYTHON]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SYSTEMS = ("fetal_keras_scratch", "fetal_keras_finetune", "nnunet_2d")
TABLE_COLUMNS = [
    "system",
    "budget_min",
    "train_s",
    "mean_dice",
    "min_dice",
    "median_hd95_mm",
    "deploy_s_per_stack",
    "preprocess_s",
    "stacks",
    "failed",
    "trained",
    "date",
    "matmul_peak_gflops",
]
INSTALL_HINT = (
    "nnU-Net is not installed for {python}. Install the optional peers (nnU-Net v2 and a CPU build of torch) with\n"
    "  pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu\n"
    "  pip install -e '.[peers]'\n"
    "or point --nnunet-python at the Python of an environment that has them; or leave nnunet_2d out of --systems."
)


def build_parser() -> argparse.ArgumentParser:
    """The command line (built before the heavy imports, so that --help answers at once)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-csv", type=Path, required=True, help="labelled stacks to train on")
    parser.add_argument(
        "--val-csv",
        type=Path,
        required=True,
        help="labelled stacks to validate on where a system validates: none of the training stacks (nnU-Net's "
        "fold 0) or training stacks only (nnU-Net trains fold 'all')",
    )
    parser.add_argument("--test-csv", type=Path, required=True, help="labelled stacks to segment and score")
    parser.add_argument(
        "--minutes", type=float, nargs="+", required=True, help="training budgets, minutes per system (e.g. 10 30)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for peer_table.csv, the runs and the masks")
    parser.add_argument(
        "--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), help="systems to run (default: all three)"
    )
    parser.add_argument(
        "--nnunet-python",
        default=sys.executable,
        help="the Python that runs nnU-Net, in a process of its own (default: this one)",
    )
    parser.add_argument(
        "--nnunet-iterations", type=int, default=10, help="nnU-Net training batches per epoch (its own: 250; 10)"
    )
    parser.add_argument(
        "--nnunet-disable-tta", action="store_true", help="nnU-Net predicts without mirroring (its default mirrors)"
    )
    parser.add_argument("--dataset-id", type=int, default=501, help="nnU-Net dataset number (default: 501)")
    parser.add_argument("--brain-labels", default=None, help="label values that are brain (default: every non-zero)")
    parser.add_argument("--seed", type=int, default=None, help="fetal_keras's random seed (default: the recipe's)")
    return parser


if __name__ == "__main__":
    build_parser().parse_args()  # --help and bad arguments answer before TensorFlow is imported

import json
import os
import subprocess
import time

import pandas as pd

from fetal_keras.data.cohort import ID_COLUMN, SEGMENTATION_COLUMN, read_cohort
from fetal_keras.data.labels import parse_label_values
from fetal_keras.data.nnunet_raw import NnunetDataset, nnunet_environment, write_nnunet_raw_dataset
from fetal_keras.deploy.loading import load_predictor
from fetal_keras.evaluation.evaluate import evaluate_pairs
from fetal_keras.evaluation.labelled_cohort import segment_and_score, summarise
from fetal_keras.files import atomic_output, write_json
from fetal_keras.models.machine_speed import matmul_peak_gflops
from fetal_keras.models.train_config import TrainConfig
from fetal_keras.training.small_cohort import fine_tune_pair

NNUNET_SCRIPT = Path(__file__).resolve().with_name("peer_nnunet.py")


def budget_name(minutes: float) -> str:
    """``10min`` for 10, ``2.5min`` for 2.5: the budget's folder name."""
    return f"{minutes:g}min"


def fetal_keras_row(args, start: str, minutes: float, val_csv: Path, brain_labels) -> dict:
    """Train the small-cohort pair from ``start`` for ``minutes``, segment the test stacks, score them."""
    folder = args.out / f"fetal_keras_{start}" / budget_name(minutes)
    record = folder / "train_seconds.json"
    if not record.exists():
        started = time.monotonic()
        settings = {"seed": args.seed} if args.seed is not None else {}
        fine_tune_pair(args.train_csv, val_csv, folder / "pair", start, minutes, **settings)
        write_json(record, {"train_s": round(time.monotonic() - started, 1)})
    table = segment_and_score(
        *load_predictor(folder / "pair"), args.test_csv, folder / "masks", brain_labels=brain_labels
    )
    trained = {role: _examples_trained(folder / "pair" / role) for role in ("localiser", "segmenter")}
    return (
        summarise(table) | json.loads(record.read_text()) | {"trained": json.dumps(trained), "dice": _per_stack(table)}
    )


def _examples_trained(run: Path) -> dict:
    """Epochs, batches and slabs a role of the small-cohort recipe trained (its history and config)."""
    config = TrainConfig.load(run / "config.json")
    epochs = len(pd.read_csv(run / "history.csv"))
    return {"epochs": epochs, "batches": epochs * config.steps_per_epoch, "batch_size": config.batch_size}


def _per_stack(table: pd.DataFrame) -> str:
    return json.dumps(dict(zip(table[ID_COLUMN], table["dice"].round(4), strict=True)))


def _nnunet(args, dataset: NnunetDataset, step: str, *options: str, results: Path | None = None) -> None:
    """Run one step of ``peer_nnunet.py`` with nnU-Net's folders in ``dataset.root``; its output to a log file."""
    environment = os.environ | nnunet_environment(dataset.root)
    if results is not None:
        environment["nnUNet_results"] = str(results.resolve())
    log = dataset.root / f"{step}.log"
    command = [args.nnunet_python, str(NNUNET_SCRIPT), step, "--dataset-id", str(dataset.dataset_id), *options]
    with open(log, "a") as stream:
        done = subprocess.run(command, env=environment, stdout=stream, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(f"nnU-Net's {step} failed (exit {done.returncode}); its output is in {log}.")


def prepared_nnunet_dataset(args, brain_labels) -> tuple[NnunetDataset, float]:
    """The raw dataset under ``OUT/nnunet`` with nnU-Net's planning and preprocessing done (once); its seconds."""
    root = args.out / "nnunet"
    record = root / "preprocess_seconds.json"
    if record.exists():
        prepared = json.loads(record.read_text())
        return NnunetDataset.load(prepared["raw"]), prepared["s"]
    started = time.monotonic()
    dataset = write_nnunet_raw_dataset(
        root, args.train_csv, args.val_csv, args.test_csv, dataset_id=args.dataset_id, brain_labels=brain_labels
    )
    _nnunet(args, dataset, "prepare")
    seconds = round(time.monotonic() - started, 1)
    write_json(record, {"s": seconds, "raw": str(dataset.raw)})
    return dataset, seconds


def nnunet_row(args, minutes: float, brain_labels) -> dict:
    """Train nnU-Net 2d for ``minutes``, predict the test stacks, score them."""
    dataset, preprocess_s = prepared_nnunet_dataset(args, brain_labels)
    results = dataset.root / f"results_{budget_name(minutes)}"
    masks = dataset.root / f"masks_{budget_name(minutes)}"
    if not list(results.glob("*/*/fold_*/budget.json")):
        fold = ["--fold", dataset.fold]
        _nnunet(
            args,
            dataset,
            "train",
            *fold,
            "--minutes",
            str(minutes),
            "--iterations",
            str(args.nnunet_iterations),
            results=results,
        )
    if not (masks / "seconds.json").exists():
        test = dataset.test_cases()
        images = dataset.root / "test_images.csv"
        with atomic_output(images) as temporary:
            test.to_csv(temporary, index=False)
        tta = ["--disable-tta"] if args.nnunet_disable_tta else []
        _nnunet(
            args,
            dataset,
            "predict",
            "--fold",
            dataset.fold,
            "--images-csv",
            str(images),
            "--out",
            str(masks),
            *tta,
            results=results,
        )
    budget = json.loads(next(results.glob("*/*/fold_*/budget.json")).read_text())
    seconds = json.loads((masks / "seconds.json").read_text())
    test = dataset.test_cases()
    truth = read_cohort(args.test_csv, require_segmentation=True).set_index(ID_COLUMN)[SEGMENTATION_COLUMN]
    pairs = [
        (stack_id, truth[stack_id], str(masks / f"{case}.nii.gz"))
        for case, stack_id in zip(test["case"], test[ID_COLUMN], strict=True)
    ]
    table = evaluate_pairs(pairs, brain_labels, progress=False)
    table = table.assign(seconds=[seconds[case] for case in test["case"]], error_predict="")
    return summarise(table) | {
        "train_s": budget["train_s"],
        "preprocess_s": preprocess_s,
        "trained": json.dumps(budget),
        "dice": _per_stack(table),
    }


def check_nnunet(python: str) -> None:
    """Refuse early, with how to install them, when nnU-Net or torch cannot be imported by ``python``."""
    try:
        found = subprocess.run([python, "-c", "import nnunetv2, torch"], capture_output=True, check=False).returncode
    except OSError:  # no such interpreter
        found = 1
    if found != 0:
        raise SystemExit(INSTALL_HINT.format(python=python))


def fetal_keras_val_csv(args, cohorts: dict[Path, pd.DataFrame]) -> Path:
    """``--val-csv``, or the test stacks where the validation stacks are training stacks (the recipe loads its
    validation stacks but never validates: nothing is chosen on them)."""
    val, train = (set(cohorts[csv][ID_COLUMN]) for csv in (args.val_csv, args.train_csv))
    return args.test_csv if val & train else args.val_csv


def main() -> None:
    args = build_parser().parse_args()
    cohorts = {
        csv: read_cohort(csv, require_segmentation=True) for csv in (args.train_csv, args.val_csv, args.test_csv)
    }
    fetal_keras_val = fetal_keras_val_csv(args, cohorts)
    if "nnunet_2d" in args.systems:
        check_nnunet(args.nnunet_python)
    brain_labels = parse_label_values(args.brain_labels)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "peer_table.csv"
    table = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=[*TABLE_COLUMNS, "dice"])
    for minutes in args.minutes:
        for system in args.systems:
            if ((table["system"] == system) & (table["budget_min"] == minutes)).any():
                continue
            peak = round(matmul_peak_gflops())  # the day's yardstick, before each row's training
            if system == "nnunet_2d":
                row = nnunet_row(args, minutes, brain_labels)
            else:
                start = system.removeprefix("fetal_keras_").replace("finetune", "pretrained")
                row = fetal_keras_row(args, start, minutes, fetal_keras_val, brain_labels)
            row = {"system": system, "budget_min": minutes, "deploy_s_per_stack": row.pop("seconds_per_stack")} | row
            row |= {"date": time.strftime("%Y-%m-%d", time.gmtime()), "matmul_peak_gflops": peak}
            print(json.dumps(row), flush=True)
            table = pd.concat([table, pd.DataFrame([row])], ignore_index=True)[[*TABLE_COLUMNS, "dice"]]
            with atomic_output(path) as temporary:
                table.to_csv(temporary, index=False)
    print(table[TABLE_COLUMNS[:7]].to_string(index=False))


if __name__ == "__main__":
    main()
