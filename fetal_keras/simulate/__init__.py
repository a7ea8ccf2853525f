"""A simulator of motion-corrupted fetal T2 single-shot stacks with exact brain masks.

Real fetal MRI is private, so every part of fetal_keras can be tried, tested and taught on stacks simulated here.
The layers, each in its own module:

- ``growth``: fetal biometry by gestational age (head and brain size, cortex, CSF, uterus).
- ``priors``: the adult ICBM 2009a grey/white-matter maps that nilearn ships, the shape prior of the brain.
- ``tissues``: tissue classes and their T2 contrast, with SynthSeg-style domain randomisation.
- ``head``: the fetal head (brain, ventricles, cortex, CSF, skull, scalp) on a grid in the fetal frame.
- ``scene``: fetal body and maternal abdomen (uterus, placenta, fat, muscle, spine, organs) as soft shapes.
- ``motion`` and ``acquisition``: stack geometry, interleaved slice order, per-slice fetal motion, slice profile.
- ``artefacts``: bias field, Rician noise, slice drop-outs, spin-history stripes.
- ``cohort``: draws every parameter from a seed, writes the NIfTI files, ``cohort.csv`` and ``simulation.json``.
"""

from fetal_keras.simulate.cohort import PRESETS, SimulationSettings, simulate_cohort, simulate_stack

__all__ = ["PRESETS", "SimulationSettings", "simulate_cohort", "simulate_stack"]
