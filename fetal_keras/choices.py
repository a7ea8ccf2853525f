"""The names users choose from (presets, losses, optimizers, ...), importable without loading TensorFlow."""

MODEL_PRESETS = ("unet", "fetal_fcn")
LOSSES = ("cross_entropy", "dice", "cross_entropy+dice")
OPTIMIZERS = ("adam", "sgd")
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
# default: rotation, scaling, flips, slice motion, intensity; anatomy: also a scale per axis, shear, elastic warp.
AUGMENTATIONS = ("default", "anatomy", "original", "none")
# Training images: the cohort's images, or rendered on the fly from its tissue label maps (``labels`` column).
IMAGE_SOURCES = ("images", "labels")
# What the random background shapes of rendered images cover: the maternal tissues, or also the fetal body outside
# the head (plus many small clutter shapes).
# "distractors": the maternal shapes plus brain-sized fluid-filled round structures beside the head.
SURROUNDINGS = ("maternal", "body", "distractors")
# Intensity normalisation of stacks: whole-stack z-score (the original) or z-score over the foreground (no air).
NORMALISATIONS = ("zscore", "foreground")
# What a trained model does: segment whole stacks, find the head at a coarse spacing, or segment a crop around it.
TASKS = ("whole", "localiser", "segmenter")
# How the learning rate changes over a run: fixed, or annealed to 0 along a half cosine (over epochs or time budget).
LEARNING_RATE_SCHEDULES = ("constant", "cosine")
# The simulated fetal brains: one adult template scaled down, or the fetal brain atlas's label maps.
HEAD_ANATOMIES = ("icbm", "atlas")
# Simulator presets (``fetal_keras.simulate.cohort.PRESETS`` holds their parameters).
SIMULATION_PRESETS = ("small", "realistic")
# What a cohort is checked for: training (segmentations required) or prediction.
CHECK_PURPOSES = ("train", "predict")
# A pair's localiser runs on every third slab by default: it only has to find the head, and its whole field of view
# is most of a pair's deploy time (docs/sim_to_real.md, row 23).
DEFAULT_LOCALISER_SLAB_STEP = 3
# Deploy steps that are on or off by default (``PredictOptions``; predict --[no-]fill-slice-holes,
# --[no-]stack-batch-norm, --[no-]pad-cut-margin), each set by its measured effect on real stacks
# (docs/sim_to_real.md). The last changes no real stack here (none has its head at the image's edge) and lifts
# simulated cut heads from Dice 0.44 to 0.87, but the QC score flags every such stack (``fov_border_in_plane``,
# set when those masks failed), so its good masks would count as false alarms: off until the two are set together
# (docs/qc.md, "Heads at the image's edge").
DEPLOY_DEFAULTS = {"fill_slice_holes": False, "stack_batch_norm": False, "pad_cut_margin": False}
