"""``fetal-keras predict``: segment stacks with a trained model."""

from __future__ import annotations

import argparse
from pathlib import Path

from fetal_keras.data.cohort import ID_COLUMN, IMAGE_COLUMN, read_cohort
from fetal_keras.files import id_from_filename


def add_parser(subparsers) -> None:
    """Register ``predict``."""
    parser = subparsers.add_parser(
        "predict",
        help="segment stacks with a trained model",
        description="Segment stacks and write OUT/<id>_mask.nii.gz (uint8, the stack's exact header), optional "
        "OUT/<id>_prob.nii.gz and OUT/<id>_uncertainty.nii.gz (with --tta), and OUT/predictions.csv (seconds, brain "
        "volume, slices flagged for QC, errors). Exit 1 if any stack failed; the others are still written.",
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
    parser.add_argument("--out", required=True, help="output folder")
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``predict``."""
    from fetal_keras.deploy.predict import PredictOptions, predict_many
    from fetal_keras.models.loading import load_pair, load_predictor  # TensorFlow only for the commands that need it

    if args.csv:
        table = read_cohort(args.csv)
        stacks = list(zip(table[ID_COLUMN], table[IMAGE_COLUMN], strict=True))
    else:
        stacks = [(id_from_filename(path), path) for path in args.input]
        duplicated = sorted({name for name, _ in stacks if [n for n, _ in stacks].count(name) > 1})
        if duplicated:
            raise ValueError(f"Several --input files would be written under the same id: {duplicated}.")
    if args.localiser:
        predictor, preprocess, description = load_pair(args.localiser, args.model)
    else:
        predictor, preprocess, description = load_predictor(args.model)
    options = PredictOptions(
        tta=args.tta,
        tta_transpose=args.tta_transpose,
        postprocess=not args.no_postprocess,
        save_probabilities=args.save_probabilities,
        batch_size=args.batch_size,
        sliding_window=args.sliding_window,
        slab_step=args.slab_step,
    )
    table = predict_many(predictor, stacks, args.out, options, preprocess, description, progress=not args.quiet)
    failed = table[table["error"] != ""]
    for _, row in failed.iterrows():
        print(f"failed: {row['iFIND_id']} ({row['input']}): {row['error']}")
    print(
        f"Segmented {len(table) - len(failed)} of {len(table)} stacks with {description}: {Path(args.out) / 'predictions.csv'}"
    )
    return 1 if len(failed) else 0
