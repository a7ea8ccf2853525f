"""``fetal-keras finetune``: adapt the packaged localiser + segmenter pair to a few labelled stacks of one's own."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fetal_keras.training.recipes import ROLE_SHARES, SMALL_COHORT_RECIPE, STARTS

# Slabs of every batch of 5 drawn from --rehearsal-csv: 2.
DEFAULT_REHEARSAL_SHARE = 0.4
# The default recipe, chosen by docs/finetune.md's orientation protocol (issue 34): train the segmenter only, for 200
# batches, and deploy it as a mean with the packaged segmenter in which the trained model weighs 0.25. It was the
# heaviest weight with every split above the packaged pair on the real stacks of the other orientations and within
# 0.01 of it on a held-out simulated cohort of all ages.
DEFAULT_ROLES = "segmenter"
DEFAULT_STEPS = 200
DEFAULT_FINE_TUNED_WEIGHT = 0.25


def add_parser(subparsers) -> None:
    """Register ``finetune``."""
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune the packaged localiser + segmenter pair on a few labelled stacks",
        description="Train the segmenter (or both roles: --roles both) on --train-csv with the small-cohort recipe "
        f"({json.dumps(SMALL_COHORT_RECIPE)}; time split {json.dumps(ROLE_SHARES)}), starting from the packaged pair "
        f"(or from scratch), for {DEFAULT_STEPS} batches by default, keep each role's last epoch, deploy each trained "
        f"role as a mean with the packaged one in which it weighs {DEFAULT_FINE_TUNED_WEIGHT} (a default that never "
        "fell below the packaged pair in docs/finetune.md's protocol), write OUT/pair.json, and score the pair on "
        "--val-csv with "
        "the deploy code (OUT/validation.csv and OUT/validation_summary.json: the Dice fetal-keras predict will "
        "give), beside the packaged pair's on the same stacks, warning when fine-tuning made it worse. Deploy with: "
        "fetal-keras predict --model OUT.",
    )
    parser.add_argument("--train-csv", required=True, help="labelled stacks to train on (iFIND_id,image,segmentation)")
    parser.add_argument(
        "--val-csv",
        required=True,
        help="labelled stacks that are not trained on: scored at the end (never used to choose weights)",
    )
    parser.add_argument("--out", required=True, help="new folder for the pair: OUT/localiser/, OUT/segmenter/")
    parser.add_argument(
        "--minutes",
        type=float,
        default=10.0,
        help="training time of the trained roles together: with --steps an upper bound (default: %(default)s)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_STEPS,
        help="train exactly this many batches per role (the same seed then gives the same weights on one machine); "
        "--minutes is then an upper bound; 0: no count, the --minutes budget decides (default: %(default)s)",
    )
    parser.add_argument(
        "--start", choices=STARTS, default="pretrained", help="starting weights of both roles (default: %(default)s)"
    )
    parser.add_argument(
        "--roles",
        choices=("both", "segmenter"),
        default=DEFAULT_ROLES,
        help="train both roles, or only the segmenter (the packaged localiser is copied into OUT and kept; the "
        "segmenter gets the whole budget) (default: %(default)s)",
    )
    parser.add_argument(
        "--freeze-encoder",
        action="store_true",
        help="keep each network's encoder (weights and batch-norm statistics) as packaged and train the decoder only",
    )
    parser.add_argument(
        "--l2sp",
        type=float,
        default=None,
        help="pull every convolution kernel toward the packaged one with this strength times the squared distance "
        "(L2-SP; e.g. 0.01; default: none)",
    )
    parser.add_argument(
        "--rehearsal-csv",
        default=None,
        help="a labelled cohort to keep rehearsing while fine-tuning (e.g. simulated stacks made with fetal-keras "
        "simulate --preset realistic, or stacks the pair already does well on): part of every batch is drawn "
        "from it (default: none)",
    )
    parser.add_argument(
        "--rehearsal-share",
        type=float,
        default=None,
        help="with --rehearsal-csv: the share of every batch drawn from it, rounded to whole slabs, at least one "
        f"(default: {DEFAULT_REHEARSAL_SHARE})",
    )
    parser.add_argument(
        "--average-with-packaged",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deploy each trained role as a weighted mean of its prediction and the packaged role's (copied into "
        "OUT/packaged/; pair.json lists both): the fine-tuned pair stays near the packaged one, and on what the few "
        "stacks do not show (other ages, contrasts) it stays the packaged pair; deploy takes about 1.5 times as "
        "long; --no-average-with-packaged deploys the trained roles alone (default: on when starting from the "
        "packaged pair)",
    )
    parser.add_argument(
        "--fine-tuned-weight",
        type=float,
        default=None,
        help="with --average-with-packaged: the trained model's weight in the mean, 0-1 (the packaged model's: 1 "
        "minus it); below 0.5 the packaged model decides wherever it is sure "
        f"(default: {DEFAULT_FINE_TUNED_WEIGHT})",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default: the recipe's, 5)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: TrainConfig's, 42)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``finetune``."""
    from fetal_keras.deploy.loading import load_predictor
    from fetal_keras.evaluation.labelled_cohort import segment_and_score, summarise
    from fetal_keras.files import atomic_output, write_json
    from fetal_keras.models.pretrained import PAIR_ROLES, PRETRAINED_SPEC
    from fetal_keras.training.small_cohort import fine_tune_pair

    out = Path(args.out)
    settings = {
        name: value for name, value in (("seed", args.seed), ("batch_size", args.batch_size)) if value is not None
    }
    if args.freeze_encoder:
        settings["freeze_encoder"] = True
    if args.l2sp:
        settings["l2sp_strength"] = args.l2sp
    if args.rehearsal_share is not None and not args.rehearsal_csv:
        raise ValueError("--rehearsal-share needs --rehearsal-csv (the cohort to rehearse).")
    if args.rehearsal_csv:
        share = DEFAULT_REHEARSAL_SHARE if args.rehearsal_share is None else args.rehearsal_share
        settings |= {"rehearsal_csv": args.rehearsal_csv, "rehearsal_share": share}
    if args.average_with_packaged is None:
        args.average_with_packaged = args.start == "pretrained"
    if args.fine_tuned_weight is not None and not args.average_with_packaged:
        raise ValueError("--fine-tuned-weight needs --average-with-packaged (the mean it weighs).")
    if args.average_with_packaged:
        settings["fine_tuned_weight"] = (
            DEFAULT_FINE_TUNED_WEIGHT if args.fine_tuned_weight is None else args.fine_tuned_weight
        )
    if args.steps < 0:
        raise ValueError(f"--steps must be 0 (the --minutes budget decides) or more, got {args.steps}.")
    roles = PAIR_ROLES if args.roles == "both" else ("segmenter",)
    fine_tune_pair(
        args.train_csv,
        args.val_csv,
        out,
        args.start,
        args.minutes,
        args.steps or None,
        roles,
        average_with_packaged=args.average_with_packaged,
        **settings,
    )

    def scored(model, masks: str):
        table = segment_and_score(*load_predictor(model), args.val_csv, out / masks)
        return table, summarise(table)

    packaged = scored(PRETRAINED_SPEC, "validation_masks_packaged")[1]
    table, summary = scored(out, "validation_masks")
    summary["packaged_pair"] = packaged
    with atomic_output(out / "validation.csv") as temporary:
        table.to_csv(temporary, index=False)
    write_json(out / "validation_summary.json", summary)
    print(table[["iFIND_id", "dice", "hd95_mm", "predicted_volume_ml", "true_volume_ml"]].to_string(index=False))
    print(before_and_after(packaged, summary, out))
    return 0


def before_and_after(packaged: dict, fine_tuned: dict, out: Path) -> str:
    """What ``finetune`` says at its end: the validation Dice of the packaged pair and of the fine-tuned one (deploy
    code, the same stacks), with a warning when fine-tuning made the pair worse there."""
    lines = [
        f"validation (deploy code, {fine_tuned['stacks']} stacks), mean Dice: packaged pair {packaged['mean_dice']}, "
        f"fine-tuned {fine_tuned['mean_dice']} (min {packaged['min_dice']} -> {fine_tuned['min_dice']}, median HD95 "
        f"{packaged['median_hd95_mm']} -> {fine_tuned['median_hd95_mm']} mm)."
    ]
    if (fine_tuned["mean_dice"] or 0.0) < (packaged["mean_dice"] or 0.0):
        lines.append(
            "WARNING: the fine-tuned pair is worse than the packaged pair on the validation stacks: keep the packaged "
            "pair (fetal-keras predict --model pretrained), or fine-tune with more labelled stacks or steps."
        )
    else:
        lines.append(f"Deploy: fetal-keras predict --model {out} ...")
    return "\n".join(lines)
