"""The networks, in one import: build them from the registry, ask what they are, count and copy them.

Importing this module registers the project's custom layers (dcgan.models.layers: DepthToSpace, ICNR, Projection,
LabelMaps), which a saved generator.keras needs before `keras.saving.load_model(..., safe_mode=True)`, and the
builtin architecture (dcgan.models.dcgan). Where the pieces live:

    dcgan.core.upsampling     the upsampling modes (no TensorFlow)
    dcgan.models.layers       custom layers and initialisers
    dcgan.models.upsampling   each mode's x2 block
    dcgan.models.conditioning the label input, conditional BatchNorm, balanced labels
    dcgan.models.dcgan        the builtin generator and discriminator
    dcgan.models.registry     architectures by name, and the Spec every built network carries
    dcgan.models.batchnorm    the EMA generator's BatchNorm recalibration, in chunks
"""

from __future__ import annotations

import numpy as np

from dcgan.models.batchnorm import recalibrate_batchnorm
from dcgan.models.conditioning import balanced_labels, check_classes
from dcgan.models.dcgan import channel_plan
from dcgan.models.layers import ICNR, DepthToSpace, LabelMaps, Projection, weight_init
from dcgan.models.registry import (blocks_of, build_discriminator, build_generator, clone_generator, is_conditional,
                                   latent_dim, num_classes, spec_of)
from dcgan.models.upsampling import upsampling_block

__all__ = ["ICNR", "DepthToSpace", "LabelMaps", "Projection", "balanced_labels", "blocks_of", "build_discriminator",
           "build_generator", "channel_plan", "check_classes", "clone_generator", "count_params", "is_conditional",
           "latent_dim", "num_classes", "recalibrate_batchnorm", "spec_of", "upsampling_block", "weight_init"]


def count_params(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
