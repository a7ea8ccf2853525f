"""fetal_keras: fetal brain segmentation in motion-corrupted 2D MR slice stacks (Keras 3 / TensorFlow 2)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fetal_keras")
except PackageNotFoundError:  # running from a source tree that was not pip-installed
    __version__ = "0+unknown"
