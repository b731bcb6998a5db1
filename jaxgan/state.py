"""The train state every GAN task uses: one pytree, sharded and checkpointed whole."""

from typing import Any

import jax
from flax import struct


@struct.dataclass
class GANState:
  step: jax.Array  # int32 scalar, number of updates done
  rng: jax.Array  # uint32[2] base key; step randomness = fold_in(rng, step)
  params: dict[str, Any]  # network name -> params ('G', 'F', 'D_A', 'D_B', ...)
  batch_stats: dict[str, Any]  # network name -> batch-norm statistics ({} if none)
  opt_state: dict[str, Any]  # optimizer group name -> optax state
  aux: dict[str, Any]  # task-specific arrays, e.g. the image pools
