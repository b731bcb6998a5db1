"""2-D convolution with CPU formulations that beat XLA:CPU's own on this model's layers.

XLA:CPU (YNNPACK since jax 0.10) runs most convolutions near PyTorch's speed, but some
layers far slower (`experiments/profile_layers.py`, and a `jax.profiler` trace of the
CycleGAN step; BUILD_NOTES "CPU speed against the PyTorch baseline"):

  * convolutions with few output channels: the 7x7 64->3 output conv of the ResNet
    generator took 21 ms forward at 64² (3.7 GFLOP/s, 16% of the whole step) and
    186 ms at 256²;
  * kernel gradients of large layers: a 3x3 256->256 conv at 64²: forward 17 ms,
    kernel gradient 111 ms;
  * an unpadded conv over a large pre-padded (reflection) input: 2.8x slower than the
    zero-padded conv of the same size (3x3 256->256 at 64²: 47 vs 17 ms);
  * layers with few output pixels and large kernels (U-Net's inner layers at batch 1),
    where re-laying out the kernel cost more than the arithmetic.

Placed on CPU (`placement`), `conv2d` picks per layer, from the shapes alone (`plan`):

  * 'narrow' (stride 1, K²·O <= _NARROW_MAX_WIDTH, i.e. few output channels): one GEMM
    of the padded input with all K² taps at once, [N·P·Q, C] x [C, K²·O], then the K²
    shifted slices summed (18 -> 0.65 ms at 64², 186 -> 8 ms at 256²); gradients as
    GEMMs too: dw = Xpad^T · dZ and dXpad = dZ · W^T, dZ the K² shifted copies of the
    output gradient;
  * 'taps' (both channel counts >= _TAPS_MIN_CHANNELS): XLA's forward pass and input
    gradient, and dw[i, j] = X_ij^T G for each of the K² taps, X_ij the (strided)
    slice of the padded input that tap (i, j) reads ([N·Ho·Wo, C] x [N·Ho·Wo, O]);
  * 'gemm' (few output pixels, e.g. U-Net's inner layers at batch 1): the K² input
    slices side by side ([N·Ho·Wo, K²·C]) times the kernel as a [K²·C, O] matrix; its
    gradients (autodiff) are GEMMs in the kernel's own layout, where XLA spent more
    time re-laying out large kernels than computing;
  * 'xla': XLA's convolution and gradients.

In 'taps' and 'xla', an unpadded stride-1 conv with at least _SAME_CROP_MIN_POSITIONS
output pixels is computed as the zero-padded conv, cropped (`_forward`).

Which convolution runs is decided by where the computation is placed, not by
`jax.default_backend()` (a process can hold CPU and GPU devices, and a mesh of CPU
devices can be traced in a process whose default backend is a GPU): `placement(target)`
sets, for the code traced inside it, the platform of `target` (a platform name, a
device, devices, a mesh or a sharding) and whether transposed convolutions are split
into phases (`layers.ConvTranspose`). `jit_placed(fn, target, **jit_kwargs)` is
`jax.jit` of `fn` traced under `target`'s placement; use it at every jit site whose
computation runs convolutions. With no placement set, and on any other platform (GPU,
TPU: cuDNN is fast there), `conv2d` is XLA's convolution: the safe choice anywhere.

The phase split is on by default, on every platform: it is exact (the same sums as the
dilated convolution), it was what every backend ran before the switch existed, and on
CPU it was faster at every size measured (BUILD_NOTES); `experiments/convt_check.py`
measures it against XLA's dilated conv on the backend at hand, through
`placement(..., phase_split=...)`. Results equal XLA's up to float rounding
(tests/test_models.py).
"""

import contextlib
import contextvars
import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

_DN = ('NHWC', 'HWIO', 'NHWC')
# Small layers (fewer multiply-adds and a smaller kernel than these) keep XLA's
# convolution: there the formulations save microseconds and cost compile time (the
# test configs' CycleGAN step compiled in 18.6 s with them, 8.9 s without).
_MIN_MACS = 2**22
_MIN_KERNEL_SIZE = 2**20
# 'narrow' when K² x O is at most this (the 7x7 ->3 output conv: 147; PatchGAN's
# last 4x4 ->1 conv: 16).
_NARROW_MAX_WIDTH = 160
# 'taps' for layers whose channel counts are both at least this and whose output has
# at least _MIN_POSITIONS pixels (summed over the batch); see BUILD_NOTES for the
# whole-step measurements behind the threshold.
_TAPS_MIN_CHANNELS = 16
_MIN_POSITIONS = 4096
# 'gemm' for layers with at most this many output pixels (summed over the batch):
# pix2pix's U-Net at 256², batch 1, step 0.98 -> 0.81 s (its inner layers: 1-16 pixels
# a side, 4x4x1024x512 kernels); the CycleGAN step unchanged at 64² and 128²; from
# 1024 on, the 128² CycleGAN step is 5% slower.
_GEMM_MAX_POSITIONS = 256
# `_forward`'s SAME+crop from this many output pixels on (summed over the batch): the
# 256² CycleGAN step 13.9 -> 10.1 s; from 256 / 1024 on, the 64² step 5% slower and the
# 128² one unchanged.
_SAME_CROP_MIN_POSITIONS = 4096


@dataclasses.dataclass(frozen=True)
class Placement:
  """Where the traced computation runs, as far as the convolutions care.

  platform: 'cpu', 'gpu', 'tpu', ... or None (not known: XLA's convolution).
  phase_split: transposed convs as s*s phase convolutions (True) or as XLA's conv over
  the stride-dilated input (False); see `layers.ConvTranspose`.
  """
  platform: str | None = None
  phase_split: bool = True


# A context variable rather than a module global: it is scoped to the `with` block (and
# to its thread / async task), so setting it for one trace changes no other.
_PLACEMENT = contextvars.ContextVar('jaxgan_cpu_conv_placement', default=Placement())


def current() -> Placement:
  """The placement code traced now sees (the default: platform unknown, phases on)."""
  return _PLACEMENT.get()


def platform_of(target: Any) -> str | None:
  """The platform of a placement target: a platform name ('cpu', 'gpu', 'cuda', ...),
  a `jax.Device`, an iterable of devices, a `jax.sharding.Mesh` or a `Sharding`; None
  stays None. Devices of several platforms are an error: one trace runs on one."""
  if target is None:
    return None
  if isinstance(target, str):
    name = target.lower()
    return 'gpu' if name in ('cuda', 'rocm') else name
  if isinstance(target, jax.sharding.Mesh):
    devices = list(target.devices.flat)
  elif isinstance(target, jax.sharding.Sharding):
    devices = list(target.device_set)
  elif isinstance(target, jax.Device):
    devices = [target]
  else:
    devices = list(target)
  platforms = {platform_of(d.platform) for d in devices}
  if len(platforms) != 1:
    raise ValueError(f'a placement needs devices of one platform, got '
                     f'{sorted(platforms)}')
  return platforms.pop()


def _resolve(target, phase_split) -> Placement:
  default = Placement()
  return Placement(platform_of(target),
                   default.phase_split if phase_split is None else bool(phase_split))


@contextlib.contextmanager
def placement(target, phase_split: bool | None = None):
  """Code traced inside computes its convolutions for `target`'s platform (see
  `platform_of`); `phase_split` None keeps the default (on).

  Only tracing reads it: a function jitted outside and first called inside is traced
  inside, but jax caches the trace, so a later call under another placement reuses
  it. `jit_placed` binds the placement to the function and has no such trap.
  """
  token = _PLACEMENT.set(_resolve(target, phase_split))
  try:
    yield
  finally:
    _PLACEMENT.reset(token)


def jit_placed(fn, target, *, phase_split: bool | None = None, **jit_kwargs):
  """`jax.jit(fn, **jit_kwargs)`, with `fn` traced under `placement(target,
  phase_split)`: pass the mesh, sharding or devices the computation runs on."""
  fixed = _resolve(target, phase_split)

  @functools.wraps(fn)
  def placed(*args, **kwargs):
    token = _PLACEMENT.set(fixed)
    try:
      return fn(*args, **kwargs)
    finally:
      _PLACEMENT.reset(token)

  return jax.jit(placed, **jit_kwargs)


def _plain(x, w, stride, padding):
  return lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=_DN)


def _forward(x, w, stride, padding):
  """XLA's convolution; on CPU an unpadded stride-1 conv over a large (pre-padded)
  input as the zero-padded 'same' conv cropped: the same sums, and YNNPACK runs the
  padded form ~2.8x faster (3x3 256->256 at 64²: 47 -> 17 ms)."""
  k_h, k_w = w.shape[:2]
  n, h, wd, _ = x.shape
  if (stride == 1 and padding == ((0, 0), (0, 0)) and k_h % 2 and k_w % 2
      and k_h * k_w > 1
      and n * (h - k_h + 1) * (wd - k_w + 1) >= _SAME_CROP_MIN_POSITIONS):
    a, b = k_h // 2, k_w // 2
    y = _plain(x, w, 1, ((a, a), (b, b)))
    return y[:, a:h - a, b:wd - b]
  return _plain(x, w, stride, padding)


def plan(x_shape, w_shape, stride, padding) -> str:
  """The CPU formulation for this layer: 'narrow', 'taps', 'gemm' or 'xla'."""
  k_h, k_w, c, o = w_shape
  n, h, w, _ = x_shape
  (lo_h, hi_h), (lo_w, hi_w) = padding
  positions = n * ((h + lo_h + hi_h - k_h) // stride + 1) * (
      (w + lo_w + hi_w - k_w) // stride + 1)
  if (positions * k_h * k_w * c * o < _MIN_MACS
      and k_h * k_w * c * o < _MIN_KERNEL_SIZE):
    return 'xla'
  if stride == 1 and k_h * k_w * o <= _NARROW_MAX_WIDTH:
    return 'narrow'
  if positions >= _MIN_POSITIONS and min(c, o) >= _TAPS_MIN_CHANNELS:
    return 'taps'
  if positions <= _GEMM_MAX_POSITIONS:
    return 'gemm'
  return 'xla'


def _pad(x, padding):
  (lo_h, hi_h), (lo_w, hi_w) = padding
  zero = jnp.zeros((), x.dtype)
  return lax.pad(x, zero, ((0, 0, 0), (lo_h, hi_h, 0), (lo_w, hi_w, 0), (0, 0, 0)))


def _narrow(x, w, padding):
  """Stride-1 conv as Z = Xpad · [w_00 | w_01 | ...] and y = sum_ij Z_ij shifted."""
  k_h, k_w, c, o = w.shape
  xp = _pad(x, padding)
  n, p, q, _ = xp.shape
  ho, wo = p - k_h + 1, q - k_w + 1
  z = jnp.dot(xp.reshape(-1, c), w.transpose(2, 0, 1, 3).reshape(c, k_h * k_w * o))
  z = z.reshape(n, p, q, k_h, k_w, o)
  y = None
  for i in range(k_h):
    for j in range(k_w):
      tap = z[:, i:i + ho, j:j + wo, i, j, :]
      y = tap if y is None else y + tap
  return y


def _gemm(x, w, stride, padding):
  """im2col: the K² (strided) input slices side by side, times the reshaped kernel."""
  k_h, k_w, c, o = w.shape
  xp = _pad(x, padding)
  ho = (xp.shape[1] - k_h) // stride + 1
  wo = (xp.shape[2] - k_w) // stride + 1
  p = jnp.stack(_tap_slices(xp, k_h, k_w, stride, ho, wo), axis=3)
  return jnp.dot(p.reshape(-1, k_h * k_w * c), w.reshape(-1, o)).reshape(
      x.shape[0], ho, wo, o)


def _tap_slices(xp, k_h, k_w, stride, ho, wo):
  """The (strided) slice of the padded input each kernel tap reads, [N, Ho, Wo, C]
  each, taps in row-major (i, j) order."""
  n, _, _, c = xp.shape
  return [lax.slice(xp, (0, i, j, 0),
                    (n, i + stride * (ho - 1) + 1, j + stride * (wo - 1) + 1, c),
                    (1, stride, stride, 1)) for i in range(k_h) for j in range(k_w)]


def _grad_taps(x, g, w_shape, stride, padding):
  k_h, k_w, c, o = w_shape
  _, ho, wo, _ = g.shape
  g2 = g.reshape(-1, o)
  taps = _tap_slices(_pad(x, padding), k_h, k_w, stride, ho, wo)
  dw = jnp.stack([jnp.dot(xs.reshape(-1, c).T, g2) for xs in taps])
  return dw.reshape(k_h, k_w, c, o)


def _tap_gradients(g, k_h, k_w):
  """dZ for `_narrow`: [N·P·Q, K_h, K_w, O], dZ[p, q, i, j] = g[p - i, q - j] (0 outside)."""
  n, ho, wo, o = g.shape
  parts = [lax.pad(g, jnp.zeros((), g.dtype),
                   ((0, 0, 0), (i, k_h - 1 - i, 0), (j, k_w - 1 - j, 0), (0, 0, 0)))
           for i in range(k_h) for j in range(k_w)]
  return jnp.stack(parts, axis=-2).reshape(-1, k_h, k_w, o)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_narrow(x, w, padding):
  return _narrow(x, w, padding)


def _conv_narrow_fwd(x, w, padding):
  return _narrow(x, w, padding), (x, w)


def _conv_narrow_bwd(padding, residuals, g):
  """dw = Xpad^T dZ and dXpad = dZ W^T, two GEMMs (autodiff of `_narrow` builds dZ
  from K² padded adds, 5x slower)."""
  x, w = residuals
  k_h, k_w, c, o = w.shape
  xp, unpad = jax.vjp(lambda x_: _pad(x_, padding), x)
  dz = _tap_gradients(g, k_h, k_w)
  dw = jnp.einsum('mc,mijo->ijco', xp.reshape(-1, c), dz)
  dxp = jnp.dot(dz.reshape(dz.shape[0], -1), w.transpose(0, 1, 3, 2).reshape(-1, c))
  return unpad(dxp.reshape(xp.shape))[0], dw.astype(w.dtype)


_conv_narrow.defvjp(_conv_narrow_fwd, _conv_narrow_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv_taps(x, w, stride, padding):
  return _forward(x, w, stride, padding)


def _conv_taps_fwd(x, w, stride, padding):
  return _forward(x, w, stride, padding), (x, w)


def _conv_taps_bwd(stride, padding, residuals, g):
  x, w = residuals
  dx = jax.vjp(lambda x_: _forward(x_, w, stride, padding), x)[1](g)[0]
  dw = _grad_taps(x, g, w.shape, stride, padding)
  return dx, dw.astype(w.dtype)


_conv_taps.defvjp(_conv_taps_fwd, _conv_taps_bwd)


def conv2d_im2col(x, w, stride: int, padding) -> jax.Array:
  """NHWC x HWIO convolution as one GEMM of the K² (strided) input slices side by
  side with the kernel as a [K²·C, O] matrix, placed on CPU ('gemm', for any size);
  elsewhere XLA's convolution. Every derivative, to any order, is then GEMMs and
  slices: StyleGAN's R1 step differentiates D's stride-2 convs twice, and XLA:CPU
  ran those second derivatives as its generic (non-YNNPACK) convolution, 3x slower
  over the whole R1 step (BUILD_NOTES, "StyleGAN on CPU (issue 20)")."""
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  if current().platform != 'cpu':
    return _plain(x, w, stride, padding)
  return _gemm(x, w, stride, padding)


def conv_transpose(x, w, stride: int, padding, groups: int = 1) -> jax.Array:
  """The correlation of HWIO `w` over NHWC `x` dilated by `stride` (s - 1 zeros
  between pixels) and padded by `padding` ((lo, hi), (lo, hi)): a transposed
  convolution, as XLA's `conv_general_dilated(..., lhs_dilation=(s, s))` computes it.

  With the placement's phase split (on by default) it is s² phase convolutions over
  the undilated input, interleaved: output row s·i + a only sees the taps t with
  (a + t - lo) % s == 0, at input row i + (a + t - lo) // s. The dilated form also
  multiplies the inserted zeros and ran ~10x slower on XLA:CPU, its kernel gradient
  most (BUILD_NOTES). Phases are cut to their own lengths when the output is not a
  multiple of s long. Each phase is `conv2d` (grouped ones XLA's convolution).
  """
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  if not current().phase_split:
    return lax.conv_general_dilated(x, w, (1, 1), padding, lhs_dilation=(stride, stride),
                                    dimension_numbers=_DN, feature_group_count=groups)
  s = stride
  k_h, k_w, _, o = w.shape
  n, h, wd, _ = x.shape
  (lo_h, hi_h), (lo_w, hi_w) = padding
  len_h = (h - 1) * s + 1 + lo_h + hi_h - k_h + 1
  len_w = (wd - 1) * s + 1 + lo_w + hi_w - k_w + 1
  rows_h, rows_w = -(-len_h // s), -(-len_w // s)  # the longest phase a side

  def phase(a, b):
    first_a, first_b = (lo_h - a) % s, (lo_w - b) % s  # first tap of each phase
    taps_a, taps_b = range(first_a, k_h, s), range(first_b, k_w, s)
    if not taps_a or not taps_b:
      return jnp.zeros((n, rows_h, rows_w, o), x.dtype)
    d_a = [(a + t - lo_h) // s for t in taps_a]  # consecutive input-row offsets
    d_b = [(b + t - lo_w) // s for t in taps_b]
    # Rows i < rows_h read input rows i + d_a[0] .. i + d_a[-1] (zeros outside x;
    # negative padding crops; rows past this phase's length are cut below).
    pad = ((-d_a[0], rows_h - 1 + d_a[-1] - (h - 1)),
           (-d_b[0], rows_w - 1 + d_b[-1] - (wd - 1)))
    kernel = w[first_a::s, first_b::s]
    if groups == 1:
      return conv2d(x, kernel, 1, pad)
    return lax.conv_general_dilated(x, kernel, (1, 1), pad, dimension_numbers=_DN,
                                    feature_group_count=groups)

  y = jnp.stack([jnp.stack([phase(a, b) for b in range(s)], axis=3)
                 for a in range(s)], axis=2)  # [n, rows_h, s, rows_w, s, o]
  return y.reshape(n, rows_h * s, rows_w * s, o)[:, :len_h, :len_w]


def formulation(x_shape, w_shape, stride, padding) -> str:
  """The formulation `conv2d` uses for this layer under the current placement: `plan`'s
  when placed on CPU, else 'xla' (XLA's convolution, no SAME+crop either)."""
  if current().platform != 'cpu':
    return 'xla'
  return plan(x_shape, w_shape, stride, tuple((int(lo), int(hi)) for lo, hi in padding))


def conv2d(x, w, stride: int, padding) -> jax.Array:
  """NHWC x HWIO convolution, `padding` ((lo, hi), (lo, hi)) (negative crops); placed
  on CPU, in the formulation `plan` picks for the shapes. Reads the placement when
  traced (`placement`, `jit_placed`)."""
  padding = tuple((int(lo), int(hi)) for lo, hi in padding)
  if current().platform != 'cpu':
    return _plain(x, w, stride, padding)
  method = plan(x.shape, w.shape, stride, padding)
  if method == 'narrow':
    return _conv_narrow(x, w, padding)
  if method == 'taps':
    return _conv_taps(x, w, stride, padding)
  if method == 'gemm':
    return _gemm(x, w, stride, padding)
  return _forward(x, w, stride, padding)
