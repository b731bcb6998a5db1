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
from jaxgan.models import cpu_conv

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
         name: str | None = None) -> 'Conv':
  """Conv2d(kernel, stride, padding) with PyTorch's symmetric explicit padding."""
  return Conv(features, kernel, stride, padding, use_bias=use_bias, dtype=dtype,
              name=name)


class Conv(nn.Module):
  """`nn.Conv` with PyTorch's symmetric padding, the same parameters ('kernel'
  [k, k, in, out], then 'bias'; same initialisers and order, so the same values from
  the same key), computed by `cpu_conv.conv2d` (XLA's convolution; placed on CPU, the
  formulation `cpu_conv.plan` picks for the layer's shapes)."""
  features: int
  kernel: int
  stride: int = 1
  padding: int = 0
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k, p = self.kernel, self.padding
    w = self.param('kernel', kernel_init, (k, k, x.shape[-1], self.features),
                   jnp.float32)
    y = cpu_conv.conv2d(x.astype(self.dtype), w.astype(self.dtype), self.stride,
                        ((p, p), (p, p)))
    if self.use_bias:
      bias = self.param('bias', bias_init, (self.features,), jnp.float32)
      y = y + bias.astype(self.dtype)
    return y


class ConvTranspose(nn.Module):
  """ConvTranspose2d(kernel, stride, padding, output_padding) as in PyTorch.

  Parameters are those of `nn.ConvTranspose` ('kernel' [k, k, in, out], 'bias'): the
  kernel is the spatial flip of PyTorch's, which only matters when loading PyTorch
  weights. PyTorch's output is (H-1)*s - 2p + k + op. Computing it as XLA's
  convolution over the stride-dilated input wastes the zeros and runs ~10x slower on
  XLA:CPU (measured in BUILD_NOTES.md), so it is computed as s*s phase convolutions
  over the undilated input, interleaved (`cpu_conv.conv_transpose`). The placement's
  `phase_split` (`cpu_conv.placement`, on by default) chooses between the two when
  traced; `experiments/convt_check.py` measures both on a backend.
  """
  features: int
  kernel: int
  stride: int
  padding: int
  output_padding: int = 0
  use_bias: bool = True
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k, s, p = self.kernel, self.stride, self.padding
    w = self.param('kernel', kernel_init, (k, k, x.shape[-1], self.features),
                   jnp.float32)
    x, w = x.astype(self.dtype), w.astype(self.dtype)
    lo = k - 1 - p
    y = cpu_conv.conv_transpose(x, w, s, ((lo, lo + self.output_padding),) * 2)
    if self.use_bias:
      bias = self.param('bias', bias_init, (self.features,), jnp.float32)
      y = y + bias.astype(self.dtype)
    return y


def conv_transpose(features: int, kernel: int, stride: int, padding: int,
                   output_padding: int = 0, *, use_bias: bool,
                   dtype: Dtype = jnp.float32,
                   name: str | None = None) -> ConvTranspose:
  """ConvTranspose2d(kernel, stride, padding, output_padding) as in PyTorch."""
  return ConvTranspose(features, kernel, stride, padding, output_padding,
                       use_bias=use_bias, dtype=dtype, name=name)


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
