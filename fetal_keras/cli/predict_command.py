"""``fetal-keras predict``: segment stacks with a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

from fetal_keras.choices import DEFAULT_LOCALISER_SLAB_STEP, DEPLOY_DEFAULTS

BIDS_DEFAULTS = {"out_derivatives": "fetal_keras", "suffix": "T2w"}


def add_parser(subparsers) -> None:
    """Register ``predict``."""
    parser = subparsers.add_parser(
        "predict",
        help="segment stacks with a trained model",
        description="Segment stacks and write OUT/<id>_mask.nii.gz (uint8, the stack's exact header), optional "
        "OUT/<id>_prob.nii.gz and OUT/<id>_uncertainty.nii.gz (with --tta), and OUT/predictions.csv (seconds, brain "
        "volume, slices flagged for QC, errors). With --bids, the masks go to the dataset's "
        "derivatives/NAME/sub-XX/[ses-YY/]anat/<stack>_desc-brain_mask.nii.gz with JSON sidecars and a "
        "dataset_description.json. Exit 1 if any stack failed; the others are still written.",
    )
    parser.add_argument(
        "--model",
        default="pretrained",
        help="'pretrained' (the packaged model trained on simulated stacks, checksum-verified), a training run "
        "folder (its newest SavedModel), a SavedModel folder, a .keras file, or a pair folder (pair.json naming a "
        "localiser and a segmenter) (default: %(default)s)",
    )
    parser.add_argument(
        "--localiser",
        default=None,
        help="a localiser (run folder, SavedModel folder or .keras file trained with --task localiser, or "
        "'pretrained': the packaged pair's localiser) that finds the head first; --model is then the segmenter run on "
        "a crop around it ('pretrained': the packaged segmenter). A fine-tuned segmenter with the packaged localiser: "
        "--localiser pretrained --model RUN",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", help="cohort CSV (iFIND_id,image[,segmentation]) of stacks to segment")
    source.add_argument("--input", nargs="+", help="stack file(s) to segment; ids are the file names without extension")
    source.add_argument("--bids", metavar="DATASET", help="a BIDS dataset: segment its stacks (see --suffix)")
    parser.add_argument("--out", help="output folder (with --csv or --input)")
    bids = parser.add_argument_group("BIDS (with --bids)")
    bids.add_argument(
        "--out-derivatives",
        metavar="NAME",
        default=BIDS_DEFAULTS["out_derivatives"],
        help="write the masks to DATASET/derivatives/NAME, a BIDS derivatives dataset (default: %(default)s)",
    )
    bids.add_argument(
        "--participant-label", nargs="+", metavar="LABEL", help="segment these subjects only (01 or sub-01)"
    )
    bids.add_argument(
        "--suffix", default=BIDS_DEFAULTS["suffix"], help="BIDS suffix of the stacks to segment (default: %(default)s)"
    )
    bids.add_argument(
        "--keep-suffix",
        action="store_true",
        help="keep the stack's suffix in the derivatives' names (sub-01_run-1_T2w_desc-brain_mask.nii.gz, the layout "
        "of MIALSRTK's sample data) instead of BIDS' sub-01_run-1_desc-brain_mask.nii.gz",
    )
    bids.add_argument("--overwrite", action="store_true", help="replace masks already in derivatives/NAME")
    parser.add_argument(
        "--tta", action="store_true", help="test-time augmentation (in-plane flips) and uncertainty maps"
    )
    parser.add_argument("--tta-transpose", action="store_true", help="with --tta, also swap the in-plane axes")
    parser.add_argument("--no-postprocess", action="store_true", help="keep every component and hole of the raw mask")
    parser.add_argument("--save-probabilities", action="store_true", help="also write <id>_prob.nii.gz")
    parser.add_argument("--batch-size", type=int, default=4, help="slabs per forward pass (default: %(default)s)")
    parser.add_argument(
        "--sliding-window",
        action="store_true",
        help="the original's 3x128x128 windows every 1x64x64 voxels instead of whole slices (for comparison)",
    )
    parser.add_argument(
        "--slab-step",
        type=int,
        choices=(1, 3),
        default=1,
        help="1: every slice averaged over the 3 slabs containing it; 3: non-overlapping slabs, about 3x faster "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--localiser-slab-step",
        type=int,
        choices=(1, 3),
        default=DEFAULT_LOCALISER_SLAB_STEP,
        help="--slab-step of a pair's localiser, which only has to find the head (default: %(default)s: its whole "
        "field of view is most of a pair's time)",
    )
    parser.add_argument(
        "--margin-mm",
        type=float,
        default=0.0,
        metavar="M",
        help="grow every mask by M mm in physical space (0-50; thick slices grow by fewer voxels), as "
        "slice-to-volume reconstruction tools ask for; brain_volume_ml stays the brain's (default: %(default)s)",
    )
    add_deploy_switches(parser)
    parser.add_argument(
        "--report",
        action="store_true",
        help="also write qc_report.html beside predictions.csv: one self-contained page of every stack's slices "
        "and mask outline, flagged masks first",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def add_deploy_switches(parser: argparse.ArgumentParser) -> None:
    """The deploy steps that are on or off by default (``DEPLOY_DEFAULTS``) as ``--[no-]<step>`` options (also
    ``benchmarks/bench_real.py``'s, so that it takes them as predict does)."""
    for flag, help_text in (
        ("--fill-slice-holes", "post-processing also fills each slice's holes, not only those closed in 3D"),
        (
            "--stack-batch-norm",
            "re-estimate every batch normalisation's statistics on the stack being masked (a test-time adaptation; "
            "Keras models only, not SavedModels)",
        ),
        (
            "--pad-cut-margin",
            "for a localiser + segmenter pair, replicate the segmenter crop's border outward where the head lies "
            "closer to the image's edge than the crop's margin (a field of view that cuts the head)",
        ),
    ):
        parser.add_argument(
            flag,
            action=argparse.BooleanOptionalAction,
            default=DEPLOY_DEFAULTS[flag.removeprefix("--").replace("-", "_")],
            help=f"{help_text} (default: %(default)s)",
        )


def run(args: argparse.Namespace) -> int:
    """Run ``predict``."""
    _options(args)  # a bad option is named before any model is loaded
    if args.bids:
        return _run_bids(args)
    if not args.out:
        raise ValueError("--out is required with --csv or --input (with --bids the masks go to derivatives/NAME).")
    bids_only = [
        flag
        for flag, given in (
            ("--out-derivatives", args.out_derivatives != BIDS_DEFAULTS["out_derivatives"]),
            ("--participant-label", bool(args.participant_label)),
            ("--suffix", args.suffix != BIDS_DEFAULTS["suffix"]),
            ("--keep-suffix", args.keep_suffix),
            ("--overwrite", args.overwrite),
        )
        if given
    ]
    if bids_only:
        raise ValueError(f"{', '.join(bids_only)} only apply with --bids.")
    from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, read_cohort
    from fetal_keras.files import id_from_filename

    if args.csv:
        table = read_cohort(args.csv)
        stacks = list(zip(table[ID_COLUMN], table[IMAGE_COLUMN], strict=True))
    else:
        stacks = [(id_from_filename(path), path) for path in args.input]
        duplicated = sorted({name for name, _ in stacks if [n for n, _ in stacks].count(name) > 1})
        if duplicated:
            raise ValueError(f"Several --input files would be written under the same id: {duplicated}.")
    table = _segment(args, stacks, args.out)
    return _report(table, Path(args.out) / "predictions.csv", args.report)


def _options(args: argparse.Namespace):
    from fetal_keras.deploy.predict import PredictOptions

    return PredictOptions(
        tta=args.tta,
        tta_transpose=args.tta_transpose,
        postprocess=not args.no_postprocess,
        save_probabilities=args.save_probabilities,
        batch_size=args.batch_size,
        sliding_window=args.sliding_window,
        slab_step=args.slab_step,
        localiser_slab_step=args.localiser_slab_step,
        margin_mm=args.margin_mm,
        fill_slice_holes=args.fill_slice_holes,
        stack_batch_norm=args.stack_batch_norm,
        pad_cut_margin=args.pad_cut_margin,
    )


def _load(args: argparse.Namespace):
    """(predictor, preprocessing, description) of --model (and --localiser)."""
    from fetal_keras.deploy.loading import load_pair, load_predictor  # TensorFlow only for the commands that need it

    if args.localiser:
        return load_pair(args.localiser, args.model)
    return load_predictor(args.model)


def _segment(args: argparse.Namespace, stacks: list[tuple[str, str]], out: str | Path, stack_outputs=None, loaded=None):
    from fetal_keras.deploy.predict import predict_many

    predictor, preprocess, description = loaded or _load(args)
    return predict_many(predictor, stacks, out, _options(args), preprocess, description, not args.quiet, stack_outputs)


def _report(table, predictions_csv: Path, html_report: bool) -> int:
    """Print what was segmented, failed and flagged (and write the HTML report when asked); the exit code."""
    failed = table[table["error"] != ""]
    for _, row in failed.iterrows():
        print(f"failed: {row['iFIND_id']} ({row['input']}): {row['error']}")
    model = table["model"].iloc[0] if len(table) else ""
    print(f"Segmented {len(table) - len(failed)} of {len(table)} stacks with {model}: {predictions_csv}")
    suspect = table[(table["error"] == "") & table["qc_flag"].astype(bool)].sort_values("qc_score", ascending=False)
    if len(suspect):
        print(f"QC flagged {len(suspect)} of {len(table) - len(failed)} masks as likely wrong; look at them first:")
        for _, row in suspect.iterrows():
            print(f"  {row['iFIND_id']}: score {row['qc_score']:.2f} ({row['qc_reasons'].replace(';', ', ')})")
    else:
        print("QC flagged no mask as likely wrong.")
    if html_report:
        from fetal_keras.figures.qc_report import write_qc_report

        print(f"QC report (open it in a browser): {write_qc_report(predictions_csv)}")
    return 1 if len(failed) else 0


def _run_bids(args: argparse.Namespace) -> int:
    """``predict --bids``: every stack of the dataset, masks written as BIDS derivatives."""
    from fetal_keras.data.bids import find_stacks
    from fetal_keras.deploy.bids_derivatives import (
        derivative_paths,
        derivatives_folder,
        refuse_existing_outputs,
        start_derivatives,
        with_member_paths,
        write_sidecars,
    )
    from fetal_keras.deploy.predict import averaged_model_count

    if args.out:
        raise ValueError("--out is not used with --bids: the masks go to DATASET/derivatives/NAME (--out-derivatives).")
    folder = derivatives_folder(args.bids, args.out_derivatives)
    stacks = find_stacks(args.bids, args.suffix, args.participant_label)
    outputs = [derivative_paths(folder, stack, args.keep_suffix) for stack in stacks]
    wanted = {"mask"} | ({"prob"} if args.save_probabilities else set()) | ({"uncertainty"} if args.tta else set())
    loaded = _load(args)
    members = averaged_model_count(loaded[0])
    written = [
        with_member_paths({kind: path for kind, path in paths.items() if kind in wanted}, members) for paths in outputs
    ]
    refuse_existing_outputs(written, args.overwrite)
    start_derivatives(folder, loaded[2], args.overwrite)
    table = _segment(args, [(s.stack_id, str(s.path)) for s in stacks], folder, outputs, loaded)
    write_sidecars(stacks, written, table, args.bids, args.tta)
    return _report(table, folder / "predictions.csv", args.report)
