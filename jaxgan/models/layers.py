"""Building blocks shared by the generators and discriminators.

Owns the conv / conv-transpose constructors (PyTorch padding semantics, the
reference `init_weights('normal', 0.02)` initialisation), the normalisation
factory (`instance`, `batch`, `none`) and reflection padding.
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.errors import JaxganError

Array = jax.Array
Dtype = Any
NormFn = Callable[[Array, bool], Array]

NORMS = ('instance', 'batch', 'none')

# PyTorch's default eps for InstanceNorm2d and BatchNorm2d.
EPS = 1e-5
# PyTorch BatchNorm2d momentum 0.1 weights the *new* batch; Flax's weights the old
# running value, so the same update is momentum 0.9 here.
BATCH_NORM_MOMENTUM = 0.9
INIT_STD = 0.02

kernel_init = nn.initializers.normal(stddev=INIT_STD)
bias_init = nn.initializers.zeros


def _batch_norm_scale_init(key, shape, dtype=jnp.float32):
  # The reference initialises BatchNorm weights ~ N(1, 0.02), not to ones.
  return 1.0 + INIT_STD * jax.random.normal(key, shape, dtype)


def check_norm(norm: str) -> None:
  if norm not in NORMS:
    raise JaxganError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")


def uses_bias(norm: str) -> bool:
  """The reference's `use_bias = norm_layer == InstanceNorm2d`.

  Taken literally: with norm 'none' the convs also lose their bias, exactly as in
  the reference (where the bias would not be redundant).
  """
  return norm == 'instance'


def conv(features: int, kernel: int, stride: int = 1, padding: int = 0, *,
         use_bias: bool, dtype: Dtype = jnp.float32,
         name: str | None = None) -> nn.Conv:
  """Conv2d(kernel, stride, padding) with PyTorch's symmetric explicit padding."""
  return nn.Conv(
      features, (kernel, kernel), strides=(stride, stride),
      padding=((padding, padding), (padding, padding)), use_bias=use_bias,
      dtype=dtype, param_dtype=jnp.float32, kernel_init=kernel_init,
      bias_init=bias_init, name=name)


def conv_transpose(features: int, kernel: int, stride: int, padding: int,
                   output_padding: int = 0, *, use_bias: bool,
                   dtype: Dtype = jnp.float32,
                   name: str | None = None) -> nn.ConvTranspose:
  """ConvTranspose2d(kernel, stride, padding, output_padding) as in PyTorch.

  PyTorch's output is (H-1)*s - 2p + k + op. `nn.ConvTranspose` pads the
  stride-dilated input explicitly, so that size needs (k-1-p) before and
  (k-1-p+op) after; this also lines the output up with PyTorch's (cropping p
  from the start of the full transposed conv). The kernel is the spatial flip of
  the PyTorch one, which only matters when loading PyTorch weights.
  """
  lo, hi = kernel - 1 - padding, kernel - 1 - padding + output_padding
  return nn.ConvTranspose(
      features, (kernel, kernel), strides=(stride, stride),
      padding=((lo, hi), (lo, hi)), use_bias=use_bias, dtype=dtype,
      param_dtype=jnp.float32, kernel_init=kernel_init, bias_init=bias_init,
      name=name)


def instance_norm(x: Array) -> Array:
  """InstanceNorm2d(affine=False, track_running_stats=False) on NHWC input.

  Statistics are taken in float32 (biased variance, as PyTorch normalises with)
  and the result is returned in the input's dtype.
  """
  x32 = x.astype(jnp.float32)
  mean = x32.mean(axis=(1, 2), keepdims=True)
  var = jnp.square(x32 - mean).mean(axis=(1, 2), keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + EPS)).astype(x.dtype)


def norm_layer(norm: str, dtype: Dtype = jnp.float32,
               name: str | None = None) -> NormFn:
  """Returns `f(x, train)` for the named normalisation.

  Must be called inside a compact method: the batch-norm case creates a
  submodule (scale/bias in `params`, running mean/var in `batch_stats`).
  """
  check_norm(norm)
  if norm == 'instance':
    return lambda x, train: instance_norm(x)
  if norm == 'none':
    return lambda x, train: x
  bn = nn.BatchNorm(
      momentum=BATCH_NORM_MOMENTUM, epsilon=EPS, dtype=dtype,
      param_dtype=jnp.float32, scale_init=_batch_norm_scale_init,
      bias_init=nn.initializers.zeros, use_fast_variance=False, name=name)
  return lambda x, train: bn(x, use_running_average=not train)


def reflect_pad(x: Array, pad: int) -> Array:
  """ReflectionPad2d(pad) on the H and W axes of NHWC input."""
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')
