"""Acquisition artefacts of single-shot fast spin echo stacks, applied to a clean ``[z, y, x]`` signal.

In order: in-plane blur (point spread), a smooth multiplicative bias field (coil sensitivity), spin-history
stripes (slices of one interleave pass brighter than the other), slice drop-outs (whole slices or bands that
lose signal when the fetus moves during the echo train), Rician noise (magnitude of complex Gaussian noise) at
the stack's SNR, and scaling to the scanner's 16-bit range.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def draw_artefacts(n_slices: int, order: list[int], rng: np.random.Generator, enabled: bool = True) -> dict:
    """Draw every artefact parameter of one stack (JSON-ready). ``enabled=False`` gives a clean stack."""
    gain = float(rng.uniform(400, 3000))
    passes = [order[: (n_slices + 1) // 2], order[(n_slices + 1) // 2 :]]
    dropouts = []
    for position in range(n_slices):
        if rng.uniform() < 0.04:
            band = rng.uniform() < 0.5
            dropouts.append(
                {
                    "slice": position,
                    "factor": float(rng.uniform(0.15, 0.7)),
                    "band": [float(v) for v in np.sort(rng.uniform(0, 1, 2))] if band else [0.0, 1.0],
                }
            )
    return {
        "enabled": enabled,
        "gain": gain,
        "blur_sigma_px": float(rng.uniform(0.3, 0.8)),
        "bias_amplitude": float(rng.uniform(0.05, 0.4)),
        "bias_coefficients": rng.normal(size=(3, 4, 4)).tolist(),
        "second_pass_slices": sorted(passes[1]),
        "spin_history_change": float(rng.normal(0.0, 0.05)),
        "dropouts": dropouts,
        "snr": float(rng.uniform(8.0, 40.0)),
    }


def apply_artefacts(signal: np.ndarray, record: dict, rng: np.random.Generator) -> np.ndarray:
    """Apply the artefacts of ``record`` and return the stack as uint16 ``[z, y, x]``.

    Args:
        signal: clean signal ``[z, y, x]`` (amniotic fluid about 1).
        record: from :func:`draw_artefacts`.
        rng: the stack's random generator (noise).
    """
    image = signal.astype(np.float32)
    if record["enabled"]:
        image = ndimage.gaussian_filter(image, sigma=(0, record["blur_sigma_px"], record["blur_sigma_px"]))
        coefficients = np.asarray(record["bias_coefficients"], dtype=np.float32)
        zoom = np.array(image.shape) / np.array(coefficients.shape)
        field = ndimage.zoom(coefficients, zoom, order=3, mode="nearest", grid_mode=True)[
            tuple(slice(0, n) for n in image.shape)
        ]
        image *= np.exp(record["bias_amplitude"] * field / max(float(np.abs(field).max()), 1e-6))
        image[record["second_pass_slices"]] *= 1.0 + record["spin_history_change"]
        for dropout in record["dropouts"]:
            rows = slice(int(dropout["band"][0] * image.shape[1]), int(np.ceil(dropout["band"][1] * image.shape[1])))
            image[dropout["slice"], rows] *= dropout["factor"]
        sigma = 1.0 / record["snr"]
        image = np.sqrt((image + rng.normal(0, sigma, image.shape)) ** 2 + rng.normal(0, sigma, image.shape) ** 2)
    return np.clip(np.round(image * record["gain"]), 0, np.iinfo(np.uint16).max).astype(np.uint16)
