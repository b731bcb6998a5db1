"""Applying a GAN's named Flax modules inside a pure step.

`Nets` calls modules by name ('G', 'D_A', ...) in train or inference mode. In train mode
batch-norm statistics are threaded through the calls in the order they are made (what
PyTorch's in-place running stats do), and each call gets its own dropout key, so the
step stays a pure function of (state, batch).
"""

from typing import Any, Mapping

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxgan.errors import JaxganError

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str) -> DTypeLike:
  if name not in DTYPES:
    raise JaxganError(f"unknown dtype '{name}'; valid: {', '.join(DTYPES)}")
  return DTYPES[name]


def init_variables(module, rng: jax.Array, input_shape) -> tuple[Any, Any]:
  """(params, batch_stats) of `module` for NHWC inputs of `input_shape`."""
  variables = module.init({'params': rng}, jnp.zeros(input_shape, jnp.float32),
                          train=False)
  return variables['params'], variables.get('batch_stats', {})


class Nets:
  """Calls named modules with the given params and (threaded) batch stats."""

  def __init__(self, modules: Mapping[str, Any], params: Mapping[str, Any],
               batch_stats: Mapping[str, Any], *, train: bool, rng=None):
    self.modules = modules
    self.params = params
    self.stats = dict(batch_stats)
    self.train = train
    self._rng = rng
    self._calls = 0

  def _variables(self, name):
    variables = {'params': self.params[name]}
    if self.stats.get(name):
      variables['batch_stats'] = self.stats[name]
    return variables

  def _rngs(self):
    if not self.train or self._rng is None:
      return {}
    self._calls += 1
    return {'dropout': jax.random.fold_in(self._rng, self._calls)}

  def _apply(self, name: str, x: jax.Array, keep_stats: bool) -> jax.Array:
    module = self.modules[name]
    if not (self.train and self.stats.get(name)):
      return module.apply(self._variables(name), x, train=self.train, rngs=self._rngs())
    y, updates = module.apply(self._variables(name), x, train=True, rngs=self._rngs(),
                              mutable=['batch_stats'])
    if keep_stats:
      self.stats[name] = updates['batch_stats']
    return y

  def __call__(self, name: str, x: jax.Array) -> jax.Array:
    return self._apply(name, x, keep_stats=True)

  def frozen(self, name: str, x: jax.Array) -> jax.Array:
    """Like calling, but batch-stat updates are dropped (for inner derivatives such as
    the gradient penalty, which must not leak into the state)."""
    return self._apply(name, x, keep_stats=False)
