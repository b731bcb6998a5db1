"""Applying a GAN's named Flax modules inside a pure step.

`Nets` calls modules by name ('G', 'D_A', ...) with any positional and keyword inputs,
in train or inference mode. In train mode batch-norm statistics are threaded through the
calls in the order they are made (what PyTorch's in-place running stats do). Given a
key, each call gets its own key per named RNG stream (Flax `rngs`: 'dropout', 'noise',
...), so the step stays a pure function of (state, batch).
"""

import zlib
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from jaxgan.errors import JaxganError

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: str) -> DTypeLike:
  if name not in DTYPES:
    raise JaxganError(f"unknown dtype '{name}'; valid: {', '.join(DTYPES)}")
  return DTYPES[name]


def init_variables(module, rng: jax.Array, inputs) -> tuple[Any, Any]:
  """(params, batch_stats) of `module` initialised on zeros shaped as `inputs` (its
  positional inputs: a tuple of arrays or jax.ShapeDtypeStruct, or a single one). A
  'noise' stream is given for networks that draw noise in their forward pass (it does
  not touch the 'params' stream, so initial weights do not depend on it)."""
  args = inputs if isinstance(inputs, tuple) else (inputs,)
  args = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), args)
  variables = module.init({'params': rng, 'noise': jax.random.fold_in(rng, 1)}, *args,
                          train=False)
  return variables['params'], variables.get('batch_stats', {})


class Nets:
  """Calls named modules with the given params and (threaded) batch stats."""

  def __init__(self, modules: Mapping[str, Any], params: Mapping[str, Any],
               batch_stats: Mapping[str, Any], *, train: bool, rng=None,
               streams: Sequence[str] = ('dropout',)):
    self.modules = modules
    self.params = params
    self.stats = dict(batch_stats)
    self.train = train
    self._rng = rng
    self._streams = tuple(streams)
    self._calls = 0

  def _variables(self, name):
    variables = {'params': self.params[name]}
    if self.stats.get(name):
      variables['batch_stats'] = self.stats[name]
    return variables

  def _rngs(self) -> dict:
    """This call's key per stream: 'dropout' takes the call's key itself (as before
    there were other streams, so existing runs keep their numbers), any other stream
    the call's key folded with a hash of the stream's name."""
    if self._rng is None:
      return {}
    self._calls += 1
    key = jax.random.fold_in(self._rng, self._calls)
    return {s: key if s == 'dropout' else jax.random.fold_in(key, zlib.crc32(s.encode()))
            for s in self._streams}

  def _apply(self, name: str, args, kwargs, keep_stats: bool):
    module = self.modules[name]
    kwargs = {'train': self.train, 'rngs': self._rngs(), **kwargs}
    if not (self.train and self.stats.get(name)):
      return module.apply(self._variables(name), *args, **kwargs)
    y, updates = module.apply(self._variables(name), *args, mutable=['batch_stats'],
                              **kwargs)
    if keep_stats:
      self.stats[name] = updates['batch_stats']
    return y

  def __call__(self, name: str, *args, **kwargs):
    return self._apply(name, args, kwargs, keep_stats=True)

  def without_stat_updates(self, name: str, *args, **kwargs):
    """Like calling, but the call's batch-stat updates are dropped (for inner
    derivatives such as the gradient penalty, which must not leak into the state);
    gradients flow through it as through any call."""
    return self._apply(name, args, kwargs, keep_stats=False)
