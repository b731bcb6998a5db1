"""The train state every GAN task uses: one pytree, sharded and checkpointed whole,
and the part of it that inference needs (`InferenceState`)."""

from typing import Any

import jax
from flax import struct


@struct.dataclass
class InferenceState:
  """What a generator needs at test time; restored without optimizer or data."""
  params: dict[str, Any]  # network name -> params
  batch_stats: dict[str, Any]  # network name -> batch-norm statistics ({} if none)
  ema_params: dict[str, Any]  # network name -> EMA of its params ({} without EMA)
  aux: dict[str, Any]  # the task's aux arrays that inference needs (e.g. StyleGAN's w_avg)


@struct.dataclass
class GANState:
  step: jax.Array  # int32 scalar, number of training iterations done
  rng: jax.Array  # uint32[2] base key; step randomness = fold_in(rng, step)
  params: dict[str, Any]  # network name -> params ('G', 'F', 'D_A', 'D_B', ...)
  batch_stats: dict[str, Any]  # network name -> batch-norm statistics ({} if none)
  ema_params: dict[str, Any]  # network name -> EMA of its params ({} without EMA)
  opt_state: dict[str, Any]  # optimizer group name -> optax state
  aux: dict[str, Any]  # task-specific arrays, e.g. the image pools



# The fields of GANState that InferenceState restores (a partial restore by name; of
# `aux` only the keys the task's `init_inference` has).
INFERENCE_FIELDS = ('params', 'batch_stats', 'ema_params', 'aux')
