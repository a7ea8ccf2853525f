"""Keras functional networks on slabs ``[batch, 3, y, x, 1]`` (3 adjacent slices as depth).

Both presets accept any in-plane size divisible by their total stride (8), so deploy can run whole slices.
Every convolution is followed by batch normalisation before its activation, and every layer is named.

- ``fetal_fcn``: a faithful port of the original DLTK ``fetal_fcn_3d`` (Rajchl et al.): 5 scales of 2 x
  [Conv3D 5x5x5 (3x3x3, 1x1x1 at the coarse end), no bias, LeCun-uniform -> BN -> ReLU6], max-pooling (2, 4, 4)
  with stride (1, 2, 2), and an FCN decoder that upsamples the 2-class score map with FIXED bilinear transposed
  convolutions and adds 1x1x1 conv + BN projections of every encoder output and of the raw input. ~0.72 M
  parameters. No dropout or L2: they had no effect in the original code.
- ``unet`` (default): a 2.5D U-Net: the first convolution of each encoder level mixes the 3 slices (3x3x3), all
  others are in-plane (1x3x3); pooling only in-plane, so the depth stays 3; skips by concatenation. About 5 times
  fewer FLOPs per slab than ``fetal_fcn`` (its 5x5x5 convolutions at full resolution dominate).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from fetal_keras.choices import MODEL_PRESETS

NUM_CLASSES = 2


@keras.saving.register_keras_serializable(package="fetal_keras")
class BilinearUpsamplingKernel(keras.initializers.Initializer):
    """Kernel of a transposed convolution that performs per-channel bilinear upsampling (FCN, Long et al.)."""

    def __call__(self, shape, dtype=None):
        depth, height, width, out_channels, in_channels = shape
        if depth != 1 or out_channels != in_channels:
            raise ValueError(f"A bilinear upsampling kernel needs shape (1, k, k, c, c), got {shape}.")
        factor = (height + 1) // 2
        centre = factor - 1 if height % 2 == 1 else factor - 0.5
        grid = np.arange(height)
        profile = 1 - np.abs(grid - centre) / factor
        bilinear = np.outer(profile, profile)
        kernel = np.zeros(shape, dtype="float32")
        for channel in range(in_channels):
            kernel[0, :, :, channel, channel] = bilinear
        return keras.ops.convert_to_tensor(kernel, dtype=dtype)

    def get_config(self):
        return {}


def conv_bn_relu(
    x,
    filters: int,
    kernel_size,
    name: str,
    activation: str = "relu",
    synchronized: bool = False,
    momentum: float = 0.99,
    **conv_kwargs,
):
    """Conv3D (no bias) -> BatchNormalization -> activation, named ``{name}_conv``, ``{name}_bn``, ``{name}_relu``.

    ``synchronized`` batch normalisation computes statistics over the global batch of all replicas of a
    distribution strategy, so every replica keeps identical moving statistics.
    """
    x = layers.Conv3D(filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv", **conv_kwargs)(x)
    x = layers.BatchNormalization(momentum=momentum, synchronized=synchronized, name=f"{name}_bn")(x)
    if activation == "relu6":
        return layers.ReLU(max_value=6.0, name=f"{name}_relu")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _slab_input(name: str = "slab") -> keras.KerasTensor:
    return keras.Input(shape=(3, None, None, 1), name=name)


def _softmax_head(x, name: str = "head"):
    logits = layers.Conv3D(NUM_CLASSES, 1, name=f"{name}_conv")(x)
    return layers.Activation("softmax", dtype="float32", name="probabilities")(logits)


def build_fetal_fcn(
    filters=(32, 32, 32, 32, 128),
    kernels=(5, 5, 5, 3, 1),
    strides=((1, 1, 1), (1, 2, 2), (1, 2, 2), (1, 2, 2), (1, 1, 1)),
    synchronized_bn: bool = False,
) -> keras.Model:
    """The original FCN (defaults reproduce ``fetal_fcn_3d``), softmax over 2 classes ``[b, 3, y, x, 2]``."""
    inputs = _slab_input()
    x = inputs
    skips = []
    for scale, (width, kernel, stride) in enumerate(zip(filters, kernels, strides, strict=True)):
        if stride != (1, 1, 1):
            x = layers.MaxPooling3D((2, 4, 4), strides=stride, padding="same", name=f"scale{scale}_pool")(x)
        for unit in range(2):
            x = conv_bn_relu(x, width, kernel, f"scale{scale}_unit{unit}", "relu6", kernel_initializer="lecun_uniform")
        skips.append(x)
    # Coarse to fine: project the running score map to 2 classes, upsample it by the stride of the scale it came
    # from (fixed bilinear kernel; identity for stride 1), and add a 1x1x1 conv + BN projection of the skip.
    skip_inputs = [inputs] + skips[:-1]
    for scale in reversed(range(len(filters))):
        name = f"upscore{scale}"
        if x.shape[-1] != NUM_CLASSES:
            x = layers.Conv3D(NUM_CLASSES, 1, use_bias=False, name=f"{name}_project")(x)
        if strides[scale] != (1, 1, 1):
            x = layers.Conv3DTranspose(
                NUM_CLASSES,
                (1, 4, 4),
                strides=strides[scale],
                padding="same",
                use_bias=False,
                kernel_initializer=BilinearUpsamplingKernel(),
                trainable=False,
                name=f"{name}_bilinear",
            )(x)
        skip = layers.Conv3D(NUM_CLASSES, 1, use_bias=False, name=f"{name}_skip_conv")(skip_inputs[scale])
        skip = layers.BatchNormalization(synchronized=synchronized_bn, name=f"{name}_skip_bn")(skip)
        x = layers.Add(name=f"{name}_add")([x, skip])
    return keras.Model(inputs, _softmax_head(x), name="fetal_fcn")


def build_unet(
    base_filters: int = 16, levels: int = 4, synchronized_bn: bool = False, bn_momentum: float = 0.9
) -> keras.Model:
    """2.5D U-Net with ``levels`` resolutions (total stride ``2 ** (levels - 1)``), softmax ``[b, 3, y, x, 2]``.

    ``bn_momentum`` 0.9 (Keras' default is 0.99): the moving statistics used at validation and deploy then follow
    the weights within tens of steps. On a short CPU run (8 x 25 batches of 10, a cohort of an earlier simulator
    version) whole-volume validation Dice per epoch was 0.10 0.29 0.33 0.59 0.33 0.45 0.53 0.53 (0.9) against
    0.00 0.22 0.18 0.44 0.10 0.04 0.16 0.37 (0.99).
    """
    inputs = _slab_input()
    x = inputs
    skips = []
    for level in range(levels):
        width = base_filters * 2**level
        if level:
            x = layers.MaxPooling3D((1, 2, 2), name=f"down{level}_pool")(x)
        x = conv_bn_relu(x, width, (3, 3, 3), f"down{level}_a", synchronized=synchronized_bn, momentum=bn_momentum)
        x = conv_bn_relu(x, width, (1, 3, 3), f"down{level}_b", synchronized=synchronized_bn, momentum=bn_momentum)
        skips.append(x)
    for level in reversed(range(levels - 1)):
        width = base_filters * 2**level
        x = layers.UpSampling3D((1, 2, 2), name=f"up{level}_upsample")(x)
        x = layers.Concatenate(name=f"up{level}_concat")([x, skips[level]])
        x = conv_bn_relu(x, width, (1, 3, 3), f"up{level}_a", synchronized=synchronized_bn, momentum=bn_momentum)
        x = conv_bn_relu(x, width, (1, 3, 3), f"up{level}_b", synchronized=synchronized_bn, momentum=bn_momentum)
    return keras.Model(inputs, _softmax_head(x), name="unet")


def build_model(preset: str = "unet", **kwargs) -> keras.Model:
    """Build a preset (``"unet"`` or ``"fetal_fcn"``); ``kwargs`` go to its builder (e.g. ``base_filters``)."""
    builders = {"unet": build_unet, "fetal_fcn": build_fetal_fcn}
    if preset not in builders:
        raise ValueError(f"Unknown model preset {preset!r}; choose one of {MODEL_PRESETS}.")
    return builders[preset](**kwargs)


# Layer-name prefixes of the encoders: ``down<level>_...`` (unet), ``scale<scale>_...`` (fetal_fcn).
ENCODER_PREFIXES = ("down", "scale")


def freeze_encoder(model: keras.Model) -> int:
    """Make the encoder's layers untrainable (their batch norms then use their moving statistics); return how many.

    Raises:
        ValueError: if ``model`` has no layer named as an encoder layer.
    """
    encoder = [layer for layer in model.layers if layer.name.startswith(ENCODER_PREFIXES) and layer.weights]
    if not encoder:
        raise ValueError(f"{model.name} has no encoder layer (names starting with {ENCODER_PREFIXES}) to freeze.")
    for layer in encoder:
        layer.trainable = False
    return len(encoder)


def total_stride(model: keras.Model) -> int:
    """In-plane factor that input sizes must be divisible by (product of the pooling strides)."""
    return int(np.prod([layer.strides[1] for layer in model.layers if isinstance(layer, layers.MaxPooling3D)]))


def flops_per_slab(model: keras.Model, slab_size: int = 128) -> int:
    """Floating-point operations (2 per multiply-add) of every convolution for one ``[3, s, s]`` slab."""
    convolutions = [layer for layer in model.layers if isinstance(layer, layers.Conv3D | layers.Conv3DTranspose)]
    probe = keras.Model(model.inputs, [layer.output for layer in convolutions])
    outputs = probe.compute_output_spec(keras.KerasTensor((1, 3, slab_size, slab_size, 1)))
    total = 0
    for layer, output in zip(convolutions, outputs, strict=True):
        out_channels, in_channels = (
            layer.filters,
            layer.kernel.shape[-1] if isinstance(layer, layers.Conv3DTranspose) else layer.kernel.shape[-2],
        )
        voxels = int(np.prod(output.shape[1:4]))
        if isinstance(layer, layers.Conv3DTranspose):  # every input voxel scatters a whole kernel
            voxels //= int(np.prod(layer.strides))
        total += 2 * voxels * int(np.prod(layer.kernel_size)) * in_channels * out_channels
    return total
