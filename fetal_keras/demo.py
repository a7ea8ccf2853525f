"""The main job end to end on CPU in minutes (``fetal-keras demo`` / ``make demo``).

It grows with the project: today it checks the two real unlabelled stacks shipped beside the repository and
writes a mask with each stack's exact header. Simulation, training, evaluation and figures join it as they land.
"""

from __future__ import annotations

import json
from pathlib import Path

from fetal_keras.check import CheckOptions, check_cohort
from fetal_keras.files import atomic_output
from fetal_keras.io import read_stack, write_mask

REAL_STACKS = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_unlabelled"


def run_demo(out_dir: str | Path, real_stacks: str | Path = REAL_STACKS) -> dict:
    """Run every step of the demo that exists, printing where each output went.

    Args:
        out_dir: folder for everything the demo writes (created).
        real_stacks: folder of real unlabelled stacks (``*.nii.gz``) to check and round-trip.

    Returns:
        The summary also written to ``out_dir/summary.json``.

    Raises:
        FileNotFoundError: if ``real_stacks`` holds no stacks.
    """
    out_dir = Path(out_dir)
    stacks = sorted(Path(real_stacks).glob("*.nii.gz"))
    if not stacks:
        raise FileNotFoundError(f"No stacks (*.nii.gz) found in {real_stacks}.")
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / "real_cohort.csv"
    with atomic_output(csv) as temporary:
        temporary.write_text(
            "iFIND_id,image,segmentation\n" + "".join(f"{p.name.split('.')[0]},{p},\n" for p in stacks)
        )
    problems = check_cohort(csv, CheckOptions(purpose="predict"))
    print(f"[1/2] checked {len(stacks)} stacks listed in {csv}: {len(problems)} problem(s)")
    for problem in problems:
        print("      " + problem.describe())
    masks = []
    for path in stacks:
        stack = read_stack(path)
        # A placeholder mask (bright voxels) until a trained model exists: it proves the header round trip.
        mask_path = write_mask(
            stack.array > stack.array.mean(), stack.geometry, out_dir / path.name.replace(".nii", "_mask.nii")
        )
        identical = read_stack(mask_path).geometry == stack.geometry
        masks.append({"stack": str(path), "mask": str(mask_path), "header_identical": identical})
    print(f"[2/2] wrote {len(masks)} threshold masks with the stacks' exact headers to {out_dir}")
    summary = {"cohort_csv": str(csv), "problems": len(problems), "masks": masks}
    with atomic_output(out_dir / "summary.json") as temporary:
        temporary.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"Summary: {out_dir / 'summary.json'}")
    return summary
