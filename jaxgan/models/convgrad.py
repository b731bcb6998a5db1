"""2-D convolution whose kernel gradient is computed as matrix products on CPU.

XLA:CPU computes a convolution's forward pass and its input gradient at about
PyTorch's speed, but its kernel gradient (a correlation of the input with the output
gradient, a convolution with a window as large as the image) runs 3-40x slower
(`experiments/profile_layers.py`; e.g. a 3x3 256->256 conv at 64²: forward 17 ms,
kernel gradient 118 ms; the 7x7 64->3 output conv at 256²: 7 ms and 300 ms). That
made the CycleGAN step slower than PyTorch's on CPU. On CPU, `conv2d` keeps XLA's
forward pass and input gradient and computes dL/dw one of two ways, both plain GEMMs:

  * taps: dw[i, j] = X_ij^T G for each of the K² kernel taps, X_ij the (strided) slice
    of the padded input that tap (i, j) reads ([N·Ho·Wo, C] x [N·Ho·Wo, O]): good
    when C and O are large (118 -> 35 ms for the 3x3 256->256 case);
  * output patches (stride 1 only): dw[i, j, c, o] = sum_pq Xpad[p, q, c]
    G[p - i, q - j, o], one GEMM of the padded input against the K x K patches of G
    ([N·P·Q, C] x [N·P·Q, K²·O]): good when K²·O is small, i.e. few output channels
    (the 64->3 output conv: 300 -> 79 ms at 256²).

Which one is used depends only on the shapes (`_kernel_grad_method`); other backends
(GPU, TPU) keep XLA's own gradient (cuDNN is fast there), so this never slows them.
Results equal XLA's up to float rounding (tests/test_models.py).
"""

import functools

import jax
import jax.numpy as jnp
from jax import lax

_DN = ('NHWC', 'HWIO', 'NHWC')
# Layers with fewer than _MIN_POSITIONS output pixels keep XLA's gradient (there, K²
# small GEMMs cost more in dispatch than they save); above it: output patches when
# K² x O is at most _PATCHES_MAX_WIDTH (few output channels), taps when both channel
# counts are at least _TAPS_MIN_CHANNELS. Measured on the CycleGAN step (BUILD_NOTES,
# "CPU speed against the PyTorch baseline"): taps on every layer made the 64² step 8%
# slower; from 32² output layers on, the 128² step 8% slower; from 64² on, 64² and
# 128² are unchanged and 256² is 1.5x faster.
_MIN_POSITIONS = 4096
_PATCHES_MAX_WIDTH = 160
_TAPS_MIN_CHANNELS = 16


def _plain(x, w, stride, padding):
  return lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=_DN)


def _kernel_grad_method(x_shape, w_shape, stride, padding) -> str:
  k_h, k_w, c, o = w_shape
  n, h, w, _ = x_shape
  (lo_h, hi_h), (lo_w, hi_w) = padding
  positions = n * ((h + lo_h + hi_h - k_h) // stride + 1) * (
      (w + lo_w + hi_w - k_w) // stride + 1)
  if positions < _MIN_POSITIONS:
    return 'xla'
  if stride == 1 and k_h * k_w * o <= _PATCHES_MAX_WIDTH:
    return 'patches'
  if min(c, o) >= _TAPS_MIN_CHANNELS:
    return 'taps'
  return 'xla'


def _pad(x, padding):
  (lo_h, hi_h), (lo_w, hi_w) = padding
  zero = jnp.zeros((), x.dtype)
  return lax.pad(x, zero, ((0, 0, 0), (lo_h, hi_h, 0), (lo_w, hi_w, 0), (0, 0, 0)))


def _grad_taps(x, g, w_shape, stride, padding):
  k_h, k_w, c, o = w_shape
  xp = _pad(x, padding)
  n, ho, wo, _ = g.shape
  g2 = g.reshape(-1, o)
  rows = []
  for i in range(k_h):
    cols = []
    for j in range(k_w):
      xs = lax.slice(xp, (0, i, j, 0),
                     (n, i + stride * (ho - 1) + 1, j + stride * (wo - 1) + 1, c),
                     (1, stride, stride, 1))
      cols.append(jnp.dot(xs.reshape(-1, c).T, g2))
    rows.append(jnp.stack(cols))
  return jnp.stack(rows)


def _grad_patches(x, g, w_shape, padding):
  k_h, k_w, c, o = w_shape
  xp = _pad(x, padding)  # [N, P, Q, C], P = Ho + K - 1 at stride 1
  gp = lax.conv_general_dilated_patches(
      g, (k_h, k_w), (1, 1), ((k_h - 1, k_h - 1), (k_w - 1, k_w - 1)),
      dimension_numbers=_DN)  # [N, P, Q, O*K*K]: g[p - (K-1) + a, q - (K-1) + b, o]
  gp = gp.reshape(-1, o, k_h, k_w)
  dw = jnp.einsum('mc,moab->abco', xp.reshape(-1, c), gp)
  return dw[::-1, ::-1]  # tap i reads offset a = K - 1 - i


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_cpu(x, w, stride, padding):
  return _plain(x, w, stride, padding)


def _conv_cpu_fwd(x, w, stride, padding):
  return _plain(x, w, stride, padding), (x, w)


def _conv_cpu_bwd(stride, padding, residuals, g):
  x, w = residuals
  dx = jax.vjp(lambda x_: _plain(x_, w, stride, padding), x)[1](g)[0]
  method = _kernel_grad_method(x.shape, w.shape, stride, padding)
  if method == 'patches':
    dw = _grad_patches(x, g, w.shape, padding)
  else:
    dw = _grad_taps(x, g, w.shape, stride, padding)
  return dx, dw.astype(w.dtype)


_conv_cpu.defvjp(_conv_cpu_fwd, _conv_cpu_bwd)


def conv2d(x, w, stride: int, padding) -> jax.Array:
  """NHWC x HWIO convolution, `padding` ((lo, hi), (lo, hi)) (negative crops);
  on CPU with the GEMM kernel gradient where the shapes favour it."""
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  if (jax.default_backend() == 'cpu'
      and _kernel_grad_method(x.shape, w.shape, stride, padding) != 'xla'):
    return _conv_cpu(x, w, stride, padding)
  return _plain(x, w, stride, padding)
