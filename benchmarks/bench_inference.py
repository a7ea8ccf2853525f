"""Inference speed: whole-slice fully convolutional inference vs the original sliding-window scheme.

On the same stacks and model, in one run: seconds per stack (no TTA) of whole-slice inference with a slab around
every slice (the default), with tiling slabs (``--slab-step 3``), and of the original sliding window; each scheme's
Dice (against --labels when given, else against the sliding-window mask) and the absolute Dice difference to the
sliding window; achieved GFLOP/s of default whole-slice inference, and a measured float32 matmul peak. Targets (2-core CPU, default preset): a
22 x 320 x 320 stack in <= 1 s, >= 10x faster than sliding window at equal Dice (within 0.005).
With ``--localiser`` (``--model`` is then its segmenter) the whole deploy of ``fetal-keras predict`` (read,
preprocess, segment, post-process, write) is also timed end to end for the single model and for the localiser +
segmenter pair; the pair's target is the same <= 1 s. With ``--pairs`` each packaged pair's whole deploy is a row,
with its localiser on every slice and tiling. The last line is one JSON object.

Run: .venv/bin/python benchmarks/bench_inference.py [--model RUN|SAVED_MODEL|FILE.keras] [--localiser LOC]
     [--input STACK ...] [--labels MASK ...] [--repeats 3]
Without --model an untrained default U-Net is timed; without --input a 22 x 320 x 320 stack (1.125 mm, 3.3 mm
slices) is synthesised.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """The command line (built before the heavy imports, so that --help answers at once)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", default=None, help="run folder, SavedModel folder or .keras file (default: untrained unet)"
    )
    parser.add_argument(
        "--localiser", default=None, help="a localiser: also time the pair (localiser + --model) end to end"
    )
    parser.add_argument(
        "--input", nargs="*", default=None, help="stacks to segment (default: one synthetic 22x320x320)"
    )
    parser.add_argument("--labels", nargs="*", default=None, help="reference masks, one per --input")
    parser.add_argument(
        "--pairs",
        nargs="*",
        default=[],
        metavar="SPEC",
        help="packaged pairs (e.g. pretrained:v2 pretrained:v3) whose whole deploy is timed end to end on the same "
        "stacks, each with its localiser on every slice and tiling: one row each",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per scheme (default: %(default)s)")
    return parser


if __name__ == "__main__":
    build_parser().parse_args()  # --help and bad arguments answer before TensorFlow is imported

import keras
import numpy as np
import SimpleITK as sitk

from fetal_keras.data.io import read_stack
from fetal_keras.data.preprocess import PreprocessConfig, normalise_intensity
from fetal_keras.deploy.inference import pad_in_plane, predict_brain_probability, predict_sliding_window
from fetal_keras.deploy.loading import load_pair, load_predictor
from fetal_keras.deploy.predict import PredictOptions, predict_many
from fetal_keras.models.machine_speed import matmul_peak_gflops
from fetal_keras.models.metrics import dice_score
from fetal_keras.models.networks import build_model, flops_per_slab, total_stride


def _keras_twin(spec: str) -> keras.Model | None:
    """The Keras model behind a SavedModel (for counting FLOPs): a run folder's best checkpoint, if any."""
    checkpoint = Path(spec) / "checkpoints" / "best.keras"
    if not checkpoint.is_file():
        checkpoint = Path(spec).parent.parent / "checkpoints" / "best.keras"  # RUN/saved_model/<timestamp>
    return load_predictor(checkpoint)[0] if checkpoint.is_file() else None


def timed(function, repeats: int):
    """(result, best seconds) of ``function()`` over ``repeats`` runs after one warm-up."""
    result = function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return result, best


def synthetic_stack(folder: Path) -> Path:
    """A 22 x 320 x 320 float32 stack of noise (1.125 mm in-plane, 3.3 mm slices) written as NIfTI."""
    image = sitk.GetImageFromArray(np.random.default_rng(0).normal(size=(22, 320, 320)).astype(np.float32))
    image.SetSpacing((1.125, 1.125, 3.3))
    path = folder / "synthetic.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def end_to_end_seconds(
    predictor, preprocess, paths: list[Path], repeats: int, options: PredictOptions | None = None
) -> float:
    """Best seconds per stack of ``fetal-keras predict``'s whole deploy (no TTA), over ``repeats`` runs."""
    options = options or PredictOptions()
    stacks = [(f"s{index}", str(path)) for index, path in enumerate(paths)]
    with tempfile.TemporaryDirectory() as out:
        _, best = timed(lambda: predict_many(predictor, stacks, out, options, preprocess, progress=False), repeats)
    return best / len(paths)


def packaged_pair_rows(specs: list[str], paths: list[Path], repeats: int) -> dict[str, float]:
    """Seconds per stack of each packaged pair's whole deploy, with its localiser on every slice (the deploy until
    2026-12-02) and tiling (``--localiser-slab-step 3``, the default since)."""
    rows = {}
    for spec in specs:
        pair, preprocess, _ = load_predictor(spec)
        for step in (1, 3):
            options = PredictOptions(localiser_slab_step=step)
            rows[f"{spec}, localiser slab step {step}"] = end_to_end_seconds(pair, preprocess, paths, repeats, options)
    return rows


def main() -> None:
    """Time both schemes and print the figures."""
    parser = build_parser()
    args = parser.parse_args()
    if args.localiser and args.model is None:
        parser.error("--localiser needs --model (the segmenter to pair it with)")

    keras.utils.set_random_seed(0)
    model, preprocess = (
        (build_model("unet"), PreprocessConfig()) if args.model is None else load_predictor(args.model)[:2]
    )
    counted = model if isinstance(model, keras.Model) else _keras_twin(args.model)
    if args.input:
        # The run's normalisation (its in-plane resampling, if any, is not applied: stacks are timed on their grid).
        images = [normalise_intensity(read_stack(path).array, preprocess) for path in args.input]
    else:
        images = [np.random.default_rng(0).normal(size=(22, 320, 320)).astype(np.float32)]
    labels = [read_stack(path).array > 0 for path in args.labels] if args.labels else None

    schemes = {
        "whole": lambda image: predict_brain_probability(model, image),
        "tiled": lambda image: predict_brain_probability(model, image, slab_step=3),
        "sliding": lambda image: predict_sliding_window(model, image),
    }
    seconds = {name: [] for name in schemes}
    dice = {name: [] for name in schemes}
    flops = 0.0
    for index, image in enumerate(images):
        masks = {}
        for name, scheme in schemes.items():
            repeats = max(1, args.repeats // 2) if name == "sliding" else args.repeats
            probability, best = timed(lambda scheme=scheme, image=image: scheme(image), repeats)
            seconds[name].append(best)
            masks[name] = probability >= 0.5
        for name, mask in masks.items():
            # Against the labels when given, else agreement with the original sliding-window scheme.
            dice[name].append(dice_score(mask, labels[index] if labels is not None else masks["sliding"]))
        if counted is not None:
            padded, _ = pad_in_plane(image, total_stride(counted))
            flops += image.shape[0] * flops_per_slab(counted) * padded.shape[1] * padded.shape[2] / 128**2

    end_to_end, pair_rows = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        paths = [Path(path) for path in args.input] if args.input else [synthetic_stack(Path(scratch))]
        if args.localiser:
            pair, pair_preprocess, _ = load_pair(args.localiser, args.model)
            end_to_end["single"] = end_to_end_seconds(model, preprocess, paths, args.repeats)
            end_to_end["pair"] = end_to_end_seconds(pair, pair_preprocess, paths, args.repeats)
        pair_rows = packaged_pair_rows(args.pairs, paths, args.repeats)

    mean = {name: float(np.mean(values)) for name, values in seconds.items()}
    mean_dice = {name: float(np.mean(values)) for name, values in dice.items()}
    difference = {name: abs(mean_dice[name] - mean_dice["sliding"]) for name in schemes}
    achieved = flops / sum(seconds["whole"]) / 1e9 if flops else None
    peak = matmul_peak_gflops()
    shapes = sorted({image.shape for image in images})
    reference = "Dice vs labels" if labels is not None else "Dice vs the sliding-window mask"
    print(f"stacks: {len(images)} of shape(s) {shapes}")
    for name, title in (
        ("whole", "whole slices, slab every slice"),
        ("tiled", "whole slices, tiling slabs  "),
        ("sliding", "sliding window (original)   "),
    ):
        print(
            f"{title}: {mean[name]:6.2f} s per stack, speed-up vs sliding window {mean['sliding'] / mean[name]:5.1f}x, "
            f"{reference} {mean_dice[name]:.4f}"
        )
    for name, title in (
        ("single", "predict end to end, --model alone  "),
        ("pair", "predict end to end, localiser + model"),
    ):
        if name in end_to_end:
            print(f"{title}: {end_to_end[name]:6.2f} s per stack (read, preprocess, segment, post-process, write)")
    for name, value in pair_rows.items():
        print(f"{name}: {value:6.2f} s per stack end to end")
    print("targets: <= 1 s for a 22x320x320 stack, >= 10x faster than sliding window at Dice within 0.005")
    if achieved:
        print(
            f"achieved {achieved:.1f} GFLOP/s of a measured matmul peak of {peak:.1f} GFLOP/s ({achieved / peak:.0%})"
        )
    print(
        json.dumps(
            {
                "seconds_per_stack": round(mean["whole"], 3),
                "seconds_per_stack_sliding_window": round(mean["sliding"], 3),
                "speedup": round(mean["sliding"] / mean["whole"], 2),
                "dice_difference": round(difference["whole"], 5),
                "seconds_per_stack_tiled": round(mean["tiled"], 3),
                "speedup_tiled": round(mean["sliding"] / mean["tiled"], 2),
                "dice_difference_tiled": round(difference["tiled"], 5),
                "achieved_gflops": round(achieved, 2) if achieved else None,
                "peak_gflops": round(peak, 2),
                "seconds_per_stack_end_to_end": round(end_to_end["single"], 3) if end_to_end else None,
                "seconds_per_stack_pair": round(end_to_end["pair"], 3) if end_to_end else None,
                "packaged_pairs_seconds_per_stack": {name: round(value, 3) for name, value in pair_rows.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
