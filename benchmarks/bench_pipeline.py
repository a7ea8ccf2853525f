"""Input pipeline speed: fetal_keras' tf.data pipeline vs the original's reader vs one training step.

(a) ``fetal_keras.pipeline.training_dataset`` with its default, full augmentation (stacks decoded once, vectorised TF
    ops), and (a') the same pipeline with the original's augmentation only (flips and offset), like for like with (b);
(b) a naive baseline mimicking the original reader: a Python generator through ``from_generator`` that re-reads and
    decompresses each NIfTI file, whitens and flips the whole volume, and cuts 20 class-balanced slabs from it;
(c) what one training step of the default model consumes on this machine (batch 10);
(d) the pipeline rendering every slab from tissue label maps with a fresh random contrast (``--image-source
    labels``), with the default augmentation on top;
(e) as (d) with the v3 recipe's settings: brain-sized distractors among the surroundings (``--random-surroundings
    distractors``) and a new anatomy per slab (``--augmentation anatomy``).
Targets on a 2-core CPU: a/b >= 10, a/c >= 5, d/c >= 5 and e/c >= 5. The last line is one JSON object with the raw figures.

Run: .venv/bin/python benchmarks/bench_pipeline.py [--cohort CSV] [--stacks 6] [--batches 40]
Without --cohort, stacks of the original's typical size (here 60 x 336 x 336, int16) and their tissue label maps
are written to a temporary folder; a --cohort without a ``labels`` column skips (d).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    """The command line (built before the heavy imports, so that --help answers at once)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", default=None, help="cohort CSV to read (default: write synthetic stacks)")
    parser.add_argument("--stacks", type=int, default=6, help="synthetic stacks to write (default: %(default)s)")
    parser.add_argument("--batches", type=int, default=40, help="batches timed per pipeline (default: %(default)s)")
    return parser


if __name__ == "__main__":
    build_parser().parse_args()  # --help and bad arguments answer before TensorFlow is imported

import numpy as np
import SimpleITK as sitk
import tensorflow as tf
from scipy import ndimage

from fetal_keras.data.augment import AugmentConfig
from fetal_keras.data.cohort import LABELS_COLUMN, read_cohort
from fetal_keras.data.preprocess import PreprocessConfig, label_map_preprocess, label_maps_as_images, whiten
from fetal_keras.data.stack_bank import load_stack_bank
from fetal_keras.models.networks import build_model
from fetal_keras.pipeline import training_dataset
from fetal_keras.rendering.config import RenderConfig
from fetal_keras.simulate.tissues import Tissue

BATCH = 10


def write_stacks(folder: Path, count: int, shape=(60, 336, 336)) -> Path:
    """Write ``count`` int16 stacks with a smooth bright blob as brain, and their cohort CSV."""
    rng = np.random.default_rng(0)
    lines = ["iFIND_id,image,segmentation,labels"]
    maternal = np.array([Tissue.MATERNAL_FAT, Tissue.MATERNAL_MUSCLE, Tissue.MATERNAL_ORGAN, Tissue.AMNIOTIC_FLUID])
    for index in range(count):
        texture = ndimage.zoom(rng.normal(size=(8, 24, 24)), np.array(shape) / (8, 24, 24), order=1)
        z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
        brain = ((z - 30) / 20) ** 2 + ((y - 168) / 45) ** 2 + ((x - 160) / 55) ** 2 < 1
        image = (500 + 150 * texture + 300 * brain + rng.normal(0, 30, shape)).astype(np.int16)
        tissue = np.where(brain, Tissue.WHITE_MATTER, maternal[np.digitize(texture, [-0.5, 0.0, 0.5])])
        for name, array in (("image", image), ("seg", brain.astype(np.uint8)), ("tissue", tissue.astype(np.uint8))):
            sitk.WriteImage(sitk.GetImageFromArray(array), str(folder / f"{index}_{name}.nii.gz"))
        lines.append(f"s{index},{index}_image.nii.gz,{index}_seg.nii.gz,{index}_tissue.nii.gz")
    (folder / "cohort.csv").write_text("\n".join(lines) + "\n")
    return folder / "cohort.csv"


def naive_generator(table, seed: int = 0):
    """The original reader: re-read every volume, augment it whole, cut 20 slabs (10 brain, 10 background)."""
    rng = np.random.default_rng(seed)
    while True:
        for _, row in table.sample(frac=1.0, random_state=int(rng.integers(1 << 31))).iterrows():
            image = whiten(sitk.GetArrayFromImage(sitk.ReadImage(row["image"])))
            labels = sitk.GetArrayFromImage(sitk.ReadImage(row["segmentation"]))
            image += rng.normal(0.0, 1.0)
            for axis in range(3):
                if rng.uniform() < 0.5:
                    image, labels = np.flip(image, axis), np.flip(labels, axis)
            candidates = {wanted: np.argwhere(labels == wanted) for wanted in (0, 1)}
            for wanted in [1] * 10 + [0] * 10:
                z, y, x = candidates[wanted][rng.integers(len(candidates[wanted]))]
                z = int(np.clip(z, 1, image.shape[0] - 2))
                y = int(np.clip(y, 64, image.shape[1] - 64))
                x = int(np.clip(x, 64, image.shape[2] - 64))
                window = np.s_[z - 1 : z + 2, y - 64 : y + 64, x - 64 : x + 64]
                yield image[window][..., None].astype(np.float32), labels[window].astype(np.int32)


def slabs_per_second(dataset: tf.data.Dataset, batches: int) -> float:
    """Slabs per second over ``batches`` batches after two warm-up batches."""
    iterator = iter(dataset)
    for _ in range(2):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * BATCH / (time.perf_counter() - start)


def main() -> None:
    """Measure (a), (b), (c) and print the figures."""
    parser = build_parser()
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        csv = Path(args.cohort) if args.cohort else write_stacks(Path(folder), args.stacks)
        table = read_cohort(csv, require_segmentation=True)
        memory_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        bank = load_stack_bank(table, PreprocessConfig(), progress=False)
        load_seconds = time.perf_counter() - start
        pipeline = slabs_per_second(training_dataset(bank, BATCH, seed=0), args.batches)
        original = slabs_per_second(training_dataset(bank, BATCH, augment=AugmentConfig.original()), args.batches)
        memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        bank_mb = (bank.images.numpy().nbytes + bank.labels.numpy().nbytes) / 2**20
        shapes = sorted({tuple(shape) for shape in bank.shapes.numpy().tolist()})
        signature = (tf.TensorSpec((3, 128, 128, 1), tf.float32), tf.TensorSpec((3, 128, 128), tf.int32))
        naive_dataset = tf.data.Dataset.from_generator(lambda: naive_generator(table), output_signature=signature)
        naive = slabs_per_second(naive_dataset.shuffle(64, seed=0).batch(BATCH).prefetch(2), max(args.batches // 2, 5))
        rendered = rendered_v3 = None
        if LABELS_COLUMN in table.columns:
            del bank  # one bank in memory at a time
            label_bank = load_stack_bank(
                label_maps_as_images(table, csv), label_map_preprocess(PreprocessConfig()), progress=False
            )
            rendering = training_dataset(label_bank, BATCH, seed=0, render=RenderConfig())
            rendered = slabs_per_second(rendering, args.batches)
            v3_rendering = training_dataset(
                label_bank,
                BATCH,
                augment=AugmentConfig.anatomy(),
                seed=0,
                render=RenderConfig.with_distractors(PreprocessConfig().normalisation),
            )
            rendered_v3 = slabs_per_second(v3_rendering, args.batches)

    model = build_model("unet")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    slabs = np.random.default_rng(0).normal(size=(BATCH, 3, 128, 128, 1)).astype(np.float32)
    labels = (slabs[..., 0] > 0).astype(np.int32)
    model.train_on_batch(slabs, labels)
    steps, start = 5, time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(slabs, labels)
    train_step = steps * BATCH / (time.perf_counter() - start)

    print(f"stacks: {len(table)} of shape(s) {shapes}, decoded and prepared once in {load_seconds:.1f} s")
    print(f"memory: bank {bank_mb:.0f} MB; peak RSS {memory_mb:.0f} MB ({memory_before:.0f} MB before loading)")
    print(f"(a) pipeline      : {pipeline:8.1f} slabs/s")
    print(f"(a') original aug.: {original:8.1f} slabs/s")
    print(f"(b) naive reader  : {naive:8.1f} slabs/s  -> a/b = {pipeline / naive:.1f}, a'/b = {original / naive:.1f}")
    print(f"(c) unet train step: {train_step:7.1f} slabs/s  -> a/c = {pipeline / train_step:.1f} (target >= 5)")
    if rendered is None:
        print("(d) rendering from label maps: skipped (the cohort has no 'labels' column)")
    else:
        print(f"(d) rendered slabs : {rendered:8.1f} slabs/s  -> d/c = {rendered / train_step:.1f} (target >= 5)")
        print(
            f"(e) rendered, anatomy + distractors: {rendered_v3:8.1f} slabs/s  -> e/c = "
            f"{rendered_v3 / train_step:.1f} (target >= 5)"
        )
    figures = {
        "pipeline_slabs_per_s": round(pipeline, 1),
        "naive_slabs_per_s": round(naive, 1),
        "train_step_slabs_per_s": round(train_step, 1),
        "ratio_vs_naive": round(pipeline / naive, 2),
        "ratio_vs_train_step": round(pipeline / train_step, 2),
        "original_augmentation_slabs_per_s": round(original, 1),
        "original_augmentation_ratio_vs_naive": round(original / naive, 2),
        "rendered_slabs_per_s": round(rendered, 1) if rendered else None,
        "rendered_ratio_vs_train_step": round(rendered / train_step, 2) if rendered else None,
        "rendered_v3_slabs_per_s": round(rendered_v3, 1) if rendered_v3 else None,
        "rendered_v3_ratio_vs_train_step": round(rendered_v3 / train_step, 2) if rendered_v3 else None,
        "stacks": len(table),
        "bank_mb": round(bank_mb),
        "peak_rss_mb": round(memory_mb),
        "rss_before_loading_mb": round(memory_before),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
