"""StyleGAN generator and discriminator (NVlabs stylegan2-ada-pytorch), NHWC.

Owns the FIR resampling op (`upfirdn2d`, `upsample2d`, `downsample2d`), the
reference's convolution with resampling (`conv2d_resample`), the equalized-learning
-rate layers (`FullyConnectedLayer`, `Conv2dLayer`), weight (de)modulation
(`modulate_weights`, `modulated_conv2d`), the minibatch-stddev feature, and the two
networks: `StyleGANGenerator` (mapping, then StyleGAN2's 'skip' synthesis with
modulated convolutions, or StyleGAN1's AdaIN synthesis: NVlabs stylegan's
`G_synthesis`, without progressive growing) and `StyleGANDiscriminator` ('resnet'
or 'orig').

Parameter for parameter (G with synthesis='modulated'; 'adain' is StyleGAN1's)
the reference's `training/networks.py` with c_dim = 0 (no label embedding, no
cmap), so the counts are the reference's. Layouts follow Flax:
dense kernels are [in, out] (the reference's weight transposed), conv kernels HWIO
(the reference's OIHW transposed), the 4x4 constant [4, 4, C]. With weights loaded
that way every op here computes what the reference's does (including which convs
are correlations and which true convolutions). Not kept from the reference:
conditioning labels, fp16 pre-normalisation, and the w_avg buffer (the running
average of w is the task's; it is passed to `mapping` as `w_avg`). `conv_clamp`
(clamping conv outputs to +-X, None = off) is the reference's, on the same layers.
The synthesis layers' buffers, the 'const' noise (drawn from a fixed seed) and the
resampling filters ([1, 3, 3, 1]), may instead be given as arrays (`buffers`, laid out
as `default_buffers`: e.g. an imported reference snapshot's).

Compute runs in `dtype` with float32 parameters, except where the reference forces
float32: the mapping network, the toRGB outputs and the running image, and the
discriminator's 4x4 epilogue. Outputs are float32 and raw: no tanh on the images, no
sigmoid on the logits.
"""

import functools
import math
import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import JaxganError
from jaxgan.models import cpu_conv

Array = jax.Array
Dtype = Any

RESAMPLE_FILTER = (1, 3, 3, 1)
# StyleGAN1 (synthesis='adain'): the blur after each upsampling conv, and the output
# resolution from which its upscale2d_conv2d is fused (fused_scale='auto').
BLUR_FILTER = (1, 2, 1)
FUSED_UPSCALE_MIN_RES = 128
LRELU_SLOPE = 0.2
# The reference's `bias_act` def_gain per activation: lrelu's output is scaled by
# sqrt(2) so that unit-variance inputs stay unit-variance.
ACT_GAINS = {'linear': 1.0, 'lrelu': math.sqrt(2.0)}
SYNTHESES = ('modulated', 'adain')
ARCHITECTURES = ('resnet', 'orig')
NOISE_MODES = ('random', 'const', 'none')
IMG_CHANNELS = (1, 3)
# Seed of the fixed 'const' noise (the reference's per-layer `noise_const` buffers,
# which are randn at construction): derived, not stored, so it is not a parameter.
NOISE_CONST_SEED = 0
DEMOD_EPS = 1e-8
ADAIN_EPS = 1e-8  # StyleGAN1's instance-norm epsilon.
MBSTD_EPS = 1e-8

_DN = ('NHWC', 'HWIO', 'NHWC')


# ---------------------------------------------------------------------------------
# FIR resampling.


def setup_filter(f=RESAMPLE_FILTER, *, normalize: bool = True,
                 gain: float = 1.0) -> np.ndarray:
  """The reference's `setup_filter` as a 2-D float32 array.

  A 1-D filter becomes its outer product (the reference keeps filters of >= 8 taps
  separable, which computes the same thing); normalised to sum 1 so a constant image
  keeps its value, then scaled by `gain`.
  """
  f = np.asarray(f, np.float32)
  if f.ndim == 0:
    f = f[np.newaxis]
  if f.ndim == 1:
    f = np.outer(f, f)
  if f.ndim != 2 or f.size == 0:
    raise JaxganError(f'FIR filter has shape {f.shape}; expected [taps] or [h, w]')
  if normalize:
    f = f / f.sum()
  return (f * gain).astype(np.float32)


def _parse_padding(padding) -> tuple[int, int, int, int]:
  """int, (x, y) or (x0, x1, y0, y1) -> (x0, x1, y0, y1), the reference's order."""
  if isinstance(padding, numbers.Integral):
    padding = (padding, padding)
  padding = tuple(int(p) for p in padding)
  if len(padding) == 2:
    padding = (padding[0], padding[0], padding[1], padding[1])
  if len(padding) != 4:
    raise JaxganError(f'padding {padding!r} must be an int, (x, y) or '
                      '(x0, x1, y0, y1)')
  return padding


def _as_filter(f) -> np.ndarray | Array:
  if f is None:
    return np.ones((1, 1), np.float32)
  if isinstance(f, (list, tuple)) or (hasattr(f, 'ndim') and f.ndim == 1):
    # A bare 1-D filter is applied separably in the reference: its outer product.
    f = np.asarray(f, np.float32)
    return np.outer(f, f)
  return f


def _separable(f) -> tuple[np.ndarray, np.ndarray] | None:
  """(column taps, row taps) whose outer product is the concrete 2-D filter `f`, or
  None when f is traced (an imported snapshot's buffer) or not of rank 1."""
  if not isinstance(f, np.ndarray) or f.sum() == 0:
    return None
  col, row = f.sum(axis=1), f.sum(axis=0) / f.sum()
  if not np.allclose(np.outer(col, row), f, rtol=1e-6, atol=1e-7 * np.abs(f).max()):
    return None
  return col, row


def _slice(x: Array, axis: int, start: int, count: int, step: int) -> Array:
  """x[..., start : start + step * count : step, ...] along `axis`."""
  begin, end, strides = [0] * x.ndim, list(x.shape), [1] * x.ndim
  begin[axis], end[axis], strides[axis] = start, start + step * (count - 1) + 1, step
  return jax.lax.slice(x, begin, end, strides)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _fir_1d(x: Array, taps: tuple[float, ...], axis: int, count: int,
            step: int) -> Array:
  """sum_t taps[t] * x[t + step * o] along `axis`, o < count: a valid 1-D
  correlation with fixed taps that keeps every `step`-th output, as shifted slices
  (one fused loop in XLA). Its gradient is the same op over the zero-inserted, padded
  output gradient with the taps reversed (so at every order of differentiation it is
  one fused loop, where autodiff of the slices pads each tap's gradient to the full
  input, one pass per tap)."""
  terms = [_slice(x, axis, t, count, step) * tap for t, tap in enumerate(taps)]
  return functools.reduce(jnp.add, terms)


def _fir_1d_fwd(x, taps, axis, count, step):
  return _fir_1d(x, taps, axis, count, step), x.shape[axis]


def _fir_1d_bwd(taps, axis, count, step, length, g):
  # dx[i] = sum_t taps[t] g[(i - t) / step]: g with step - 1 zeros between its
  # entries, K - 1 before and the rest of the input's length after.
  k = len(taps)
  pad = [(0, 0, 0)] * g.ndim
  pad[axis] = (k - 1, length - step * (count - 1) - 1, step - 1)
  g = jax.lax.pad(g, jnp.zeros((), g.dtype), pad)
  return (_fir_1d(g, taps[::-1], axis, length, 1),)


_fir_1d.defvjp(_fir_1d_fwd, _fir_1d_bwd)


def upfirdn2d(x: Array, f, up: int = 1, down: int = 1, padding=(0, 0, 0, 0),
              gain: float = 1.0, flip_filter: bool = False) -> Array:
  """Upsample, pad, FIR-filter and downsample NHWC images, as the reference.

  In the reference's order: insert up-1 zeros after every pixel (also after the
  last), pad by `padding` = (x0, x1, y0, y1) with respect to the upsampled image
  (x is the width axis; negative values crop), convolve (a true convolution, the
  filter flipped, unless flip_filter) with f * gain keeping only outputs whose
  footprint lies inside, and keep every `down`-th pixel. `f` is a 2-D filter (from
  `setup_filter`), a 1-D one (applied separably: its outer product) or None.

  Computed as shifted, strided slices times the filter's taps, not as a convolution:
  XLA:CPU ran the per-channel (depthwise) convolution this used to be, and its
  gradients, at a few GFLOP/s (BUILD_NOTES, "StyleGAN on CPU (issue 20)"). A concrete
  filter of rank 1 (the [1, 3, 3, 1] one) is two 1-D passes, fh + fw slices; a traced
  one (an imported snapshot's buffer) fh x fw. Only the kept (every down-th) outputs are
  computed. The same sums as the convolution, in another order.
  """
  f = _as_filter(f)
  px0, px1, py0, py1 = _parse_padding(padding)
  # Zero insertion and the pad/crop as one lax.pad: interior up-1 zeros, up-1 more
  # after the last pixel, then the (possibly negative) padding on each side.
  x = jax.lax.pad(x, jnp.zeros((), x.dtype),
                  [(0, 0, 0), (py0, py1 + up - 1, up - 1),
                   (px0, px1 + up - 1, up - 1), (0, 0, 0)])
  fh, fw = f.shape
  out_h, out_w = (x.shape[1] - fh) // down + 1, (x.shape[2] - fw) // down + 1
  if out_h < 1 or out_w < 1:
    raise JaxganError(f'upfirdn2d: a {fh}x{fw} filter does not fit the padded '
                      f'{x.shape[1]}x{x.shape[2]} image')
  sep = _separable(f)
  if sep is not None:
    col, row = sep
    if not flip_filter:  # correlation with the flipped filter = convolution
      col, row = col[::-1], row[::-1]
    x = _fir_1d(x, tuple(float(t) * gain for t in col), 1, out_h, down)
    return _fir_1d(x, tuple(float(t) for t in row), 2, out_w, down)
  f = jnp.asarray(f, jnp.float32) * gain
  if not flip_filter:
    f = f[::-1, ::-1]
  f = f.astype(x.dtype)
  terms = [_slice(_slice(x, 1, i, out_h, down), 2, j, out_w, down) * f[i, j]
           for i in range(fh) for j in range(fw)]
  return functools.reduce(jnp.add, terms)


def upsample2d(x: Array, f=None, up: int = 2, padding=0, gain: float = 1.0) -> Array:
  """x2 (by default) FIR upsampling: output exactly up times the input's size.

  The filter is scaled by up**2, as the zero insertion leaves 1/up**2 of the signal.
  `f` defaults to the normalised [1, 3, 3, 1].
  """
  f = setup_filter() if f is None else _as_filter(f)
  fh, fw = f.shape
  px0, px1, py0, py1 = _parse_padding(padding)
  p = (px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2,
       py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2)
  return upfirdn2d(x, f, up=up, padding=p, gain=gain * up * up)


def downsample2d(x: Array, f=None, down: int = 2, padding=0,
                 gain: float = 1.0) -> Array:
  """/2 (by default) FIR downsampling: output exactly 1/down of the input's size."""
  f = setup_filter() if f is None else _as_filter(f)
  fh, fw = f.shape
  px0, px1, py0, py1 = _parse_padding(padding)
  p = (px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2,
       py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2)
  return upfirdn2d(x, f, down=down, padding=p, gain=gain)


# ---------------------------------------------------------------------------------
# Convolution with resampling.


def _conv(x, w, *, stride=1, padding=(0, 0), groups=1, flip_weight=True):
  """Plain conv; `padding` = (y, x). flip_weight: True = correlation (as PyTorch's
  conv2d), False = true convolution. A strided conv placed on CPU is
  `cpu_conv.conv2d_im2col` (its second derivatives, which R1 takes, ran as XLA:CPU's
  generic convolution: BUILD_NOTES, "StyleGAN on CPU (issue 20)")."""
  if not flip_weight:
    w = w[::-1, ::-1]
  py, px = padding
  if stride > 1 and groups == 1:
    return cpu_conv.conv2d_im2col(x, w, stride, ((py, py), (px, px)))
  return jax.lax.conv_general_dilated(
      x, w, (stride, stride), ((py, py), (px, px)), dimension_numbers=_DN,
      feature_group_count=groups)


def _conv_transpose(x, w, *, stride, padding=(0, 0), groups=1, flip_weight=True):
  """The reference's strided conv_transpose2d (padding (y, x)) as a correlation over
  the zero-dilated input: the transposed conv correlates with the spatially flipped
  kernel over the input dilated by `stride` and padded by k - 1 - p, so the
  reference's flip_weight (it flips the kernel it passes when flip_weight is True)
  leaves w itself as the correlation kernel when True and flip(w) when False.
  `cpu_conv.conv_transpose` computes it as stride² phase convolutions."""
  kh, kw = w.shape[:2]
  if not flip_weight:
    w = w[::-1, ::-1]
  py, px = padding
  return cpu_conv.conv_transpose(x, w, stride, ((kh - 1 - py,) * 2, (kw - 1 - px,) * 2),
                                 groups)


def conv2d_resample(x: Array, w: Array, f=None, up: int = 1, down: int = 1,
                    padding=0, groups: int = 1, flip_weight: bool = True) -> Array:
  """The reference's `conv2d_resample` on NHWC input with an HWIO kernel.

  Same padding bookkeeping and the same fast paths, so the FIR filter sits where
  the reference puts it: upsampling convs are a stride-`up` transposed conv then
  the filter (gain up**2), downsampling 3x3 convs the filter then a stride-`down`
  conv, 1x1 downsampling convs the filtered downsample then the conv. `padding` is
  with respect to the upsampled image, (x0, x1, y0, y1) or shorter as in
  `upfirdn2d`.
  """
  kh, kw = w.shape[:2]
  if f is not None:
    f = _as_filter(f)
  fh, fw = (1, 1) if f is None else f.shape
  px0, px1, py0, py1 = _parse_padding(padding)
  if up > 1:
    px0 += (fw + up - 1) // 2
    px1 += (fw - up) // 2
    py0 += (fh + up - 1) // 2
    py1 += (fh - up) // 2
  if down > 1:
    px0 += (fw - down + 1) // 2
    px1 += (fw - down) // 2
    py0 += (fh - down + 1) // 2
    py1 += (fh - down) // 2
  pad = (px0, px1, py0, py1)
  conv_kw = {'groups': groups, 'flip_weight': flip_weight}

  if kw == 1 and kh == 1 and down > 1 and up == 1:
    x = upfirdn2d(x, f, down=down, padding=pad)
    return _conv(x, w, **conv_kw)
  if kw == 1 and kh == 1 and up > 1 and down == 1:
    x = _conv(x, w, **conv_kw)
    return upfirdn2d(x, f, up=up, padding=pad, gain=up ** 2)
  if down > 1 and up == 1:
    x = upfirdn2d(x, f, padding=pad)
    return _conv(x, w, stride=down, **conv_kw)
  if up > 1:
    px0 -= kw - 1
    px1 -= kw - up
    py0 -= kh - 1
    py1 -= kh - up
    pxt = max(min(-px0, -px1), 0)
    pyt = max(min(-py0, -py1), 0)
    x = _conv_transpose(x, w, stride=up, padding=(pyt, pxt), **conv_kw)
    x = upfirdn2d(x, f, padding=(px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt),
                  gain=up ** 2)
    if down > 1:
      x = upfirdn2d(x, f, down=down)
    return x
  if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:
    return _conv(x, w, padding=(py0, px0), **conv_kw)
  x = upfirdn2d(x, None, padding=pad)
  return _conv(x, w, **conv_kw)


# ---------------------------------------------------------------------------------
# Modulation.


def modulate_weights(weight: Array, styles: Array, *, demodulate: bool = True) -> Array:
  """Per-sample weights: w'[n, kh, kw, i, o] = w[kh, kw, i, o] * s[n, i], then (if
  demodulate) divided by sqrt(sum over kh, kw, i of w'^2 + 1e-8), giving every
  output channel of every sample unit norm. weight HWIO, styles [N, I]."""
  w = weight[None] * styles[:, None, None, :, None]
  if demodulate:
    w = w * jax.lax.rsqrt(jnp.sum(jnp.square(w), axis=(1, 2, 3), keepdims=True)
                          + DEMOD_EPS)
  return w


def modulated_conv2d(x: Array, weight: Array, styles: Array, *, noise=None,
                     up: int = 1, padding: int = 0, resample_filter=None,
                     demodulate: bool = True, flip_weight: bool = True,
                     fused: bool = True, dtype: Dtype = jnp.float32) -> Array:
  """The reference's `modulated_conv2d`, NHWC; weight HWIO float32, styles [N, I].

  fused: one grouped convolution (feature_group_count = N) with the per-sample
  weights of `modulate_weights`. Not fused: scale the activations by the styles,
  convolve with the shared weight and scale the outputs by the demodulation
  coefficients, the same numbers without N weight copies (the reference's choice
  in training). Noise (broadcastable to the output) is added after demodulation.
  """
  n, _, _, in_ch = x.shape
  kh, kw, _, out_ch = weight.shape
  styles = styles.astype(jnp.float32)
  if not fused:
    x = x * styles.astype(dtype)[:, None, None, :]
    x = conv2d_resample(x, weight.astype(dtype), resample_filter, up=up,
                        padding=padding, flip_weight=flip_weight)
    if demodulate:
      # sum_{kh,kw,i} (w s_i)^2 = sum_i s_i^2 * sum_{kh,kw} w^2
      dcoefs = jax.lax.rsqrt(
          jnp.square(styles) @ jnp.sum(jnp.square(weight), axis=(0, 1)) + DEMOD_EPS)
      x = x * dcoefs.astype(dtype)[:, None, None, :]
  else:
    w = modulate_weights(weight, styles, demodulate=demodulate)
    # Batch folded into channels: group g reads channels [g*I, (g+1)*I) and writes
    # [g*O, (g+1)*O) with sample g's weights.
    w = w.transpose(1, 2, 3, 0, 4).reshape(kh, kw, in_ch, n * out_ch)
    h, wd = x.shape[1:3]
    x = x.transpose(1, 2, 0, 3).reshape(1, h, wd, n * in_ch)
    x = conv2d_resample(x, w.astype(dtype), resample_filter, up=up,
                        padding=padding, groups=n, flip_weight=flip_weight)
    x = x.reshape(x.shape[1], x.shape[2], n, out_ch).transpose(2, 0, 1, 3)
  if noise is not None:
    x = x + noise.astype(dtype)
  return x


# ---------------------------------------------------------------------------------
# Equalized-learning-rate layers.


def bias_act(x: Array, b: Array | None, act: str = 'linear',
             gain: float = 1.0, clamp: float | None = None) -> Array:
  """The reference's `bias_act`: (act(x + b)) * def_gain(act) * gain, clamped to
  [-clamp, clamp] when clamp is not None."""
  if b is not None:
    x = x + b.astype(x.dtype)
  if act == 'lrelu':
    x = nn.leaky_relu(x, LRELU_SLOPE)
  elif act != 'linear':
    raise JaxganError(f'unknown activation {act!r}')
  g = ACT_GAINS[act] * gain
  x = x * g if g != 1 else x
  if clamp is not None:
    x = jnp.clip(x, -clamp, clamp)
  return x


def _clamp(conv_clamp: float | None, gain: float = 1.0) -> float | None:
  """The reference's act_clamp: conv_clamp * gain (None = no clamping)."""
  return None if conv_clamp is None else conv_clamp * gain


def _normal_over(scale: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.normal(key, shape, dtype) / scale
  return init


class FullyConnectedLayer(nn.Module):
  """The reference's FullyConnectedLayer, equalized learning rate.

  'kernel' [in, out] stored N(0, 1) / lr_multiplier and used times
  lr_multiplier / sqrt(in); 'bias' stored as bias_init and used times
  lr_multiplier. With Adam, whose steps do not depend on the gradient's scale, the
  layer then learns lr_multiplier times as fast as a plainly initialised one.
  """
  features: int
  use_bias: bool = True
  activation: str = 'linear'
  lr_multiplier: float = 1.0
  bias_init: float = 0.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    in_features = x.shape[-1]
    w = self.param('kernel', _normal_over(self.lr_multiplier),
                   (in_features, self.features), jnp.float32)
    weight_gain = self.lr_multiplier / math.sqrt(in_features)
    x = x.astype(self.dtype) @ (w * weight_gain).astype(self.dtype)
    b = None
    if self.use_bias:
      b = self.param('bias', nn.initializers.constant(self.bias_init),
                     (self.features,), jnp.float32)
      if self.lr_multiplier != 1:
        b = b * self.lr_multiplier
    return bias_act(x, b, self.activation)


class Conv2dLayer(nn.Module):
  """The reference's Conv2dLayer: 'kernel' HWIO ~ N(0, 1) used times
  1 / sqrt(in * k * k), 'bias' zeros, padding k // 2, optional FIR up/down by 2
  ([1, 3, 3, 1]); a true convolution when upsampling (the reference's
  flip_weight = up == 1). `gain` scales the activation's output."""
  features: int
  kernel_size: int
  use_bias: bool = True
  activation: str = 'linear'
  up: int = 1
  down: int = 1
  conv_clamp: float | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, gain: float = 1.0) -> Array:
    k, in_ch = self.kernel_size, x.shape[-1]
    w = self.param('kernel', nn.initializers.normal(1.0),
                   (k, k, in_ch, self.features), jnp.float32)
    w = w * (1 / math.sqrt(in_ch * k * k))
    f = setup_filter() if (self.up > 1 or self.down > 1) else None
    x = conv2d_resample(x.astype(self.dtype), w.astype(self.dtype), f, up=self.up,
                        down=self.down, padding=k // 2, flip_weight=self.up == 1)
    b = (self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
         if self.use_bias else None)
    return bias_act(x, b, self.activation, gain, _clamp(self.conv_clamp, gain))


def normalize_2nd_moment(x: Array, axis: int = -1, eps: float = 1e-8) -> Array:
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


# ---------------------------------------------------------------------------------
# Generator.


def num_ws_for(img_resolution: int, synthesis: str = 'modulated') -> int:
  """Styles (ws) the synthesis consumes, one per styled layer.

  'modulated' (stylegan2-ada-pytorch's skip synthesis): every conv layer (1 at 4x4,
  2 at each higher resolution) plus the last toRGB (each other toRGB shares the next
  block's first w). 'adain' (StyleGAN1's `G_synthesis`): two layer epilogues at
  every resolution from 4x4 on (the constant's and the conv's, then the upsampling
  conv's and the second conv's); its one toRGB takes no style. Both come to
  2 * log2(R) - 2, but index i is not the same layer: the last w of 'modulated'
  feeds only the toRGB, the last of 'adain' the final resolution's second conv.
  """
  _check_choice('synthesis', synthesis, SYNTHESES)
  resolutions = int(img_resolution).bit_length() - 2  # 4x4 ... R
  if synthesis == 'adain':
    return 2 * resolutions
  return 1 + 2 * (resolutions - 1) + 1


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_resolution(value) -> None:
  if not _is_int(value) or value < 4 or value & (value - 1):
    raise JaxganError(f'StyleGAN img_resolution={value!r} must be a power of two '
                      '>= 4')


def _check_choice(what: str, value, valid) -> None:
  if value not in valid:
    raise JaxganError(f'StyleGAN {what}={value!r} must be one of '
                      f"{', '.join(map(repr, valid))}")


def _check_positive(what: str, value) -> None:
  if not _is_int(value) or value < 1:
    raise JaxganError(f'StyleGAN {what}={value!r} must be an integer >= 1')


def _channels(res: int, channel_base: int, channel_max: int) -> int:
  return min(channel_base // res, channel_max)


class MappingNetwork(nn.Module):
  """z [N, z_dim] -> ws [N, num_ws, w_dim]: z normalised by its second moment,
  `num_layers` FullyConnectedLayers (lrelu, lr_multiplier 0.01), broadcast to
  num_ws, then truncated towards `w_avg`. Float32 throughout, as the reference."""
  w_dim: int
  num_ws: int
  num_layers: int = 2
  lr_multiplier: float = 0.01

  @nn.compact
  def __call__(self, z: Array, *, w_avg=None, psi=1.0,
               truncation_cutoff: int | None = None) -> Array:
    x = normalize_2nd_moment(z.astype(jnp.float32))
    for i in range(self.num_layers):
      x = FullyConnectedLayer(self.w_dim, activation='lrelu',
                              lr_multiplier=self.lr_multiplier, name=f'fc{i}')(x)
    ws = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, self.w_dim))
    if isinstance(psi, numbers.Real) and psi == 1:
      return ws  # w_avg is not read: psi = 1 is exactly no truncation
    if w_avg is None:
      raise JaxganError(f'truncation psi={psi!r} needs w_avg')
    w_avg = jnp.asarray(w_avg, jnp.float32)
    truncated = w_avg + psi * (ws - w_avg)  # torch.lerp(w_avg, ws, psi)
    if truncation_cutoff is None:
      return truncated
    cut = min(int(truncation_cutoff), self.num_ws)
    return jnp.concatenate([truncated[:, :cut], ws[:, cut:]], axis=1)


def _const_noise(resolution: int, index: int) -> Array:
  """The seeded 'const' noise [1, R, R, 1] of the layer with const index `index`."""
  key = jax.random.fold_in(jax.random.PRNGKey(NOISE_CONST_SEED), index)
  return jax.random.normal(key, (1, resolution, resolution, 1), jnp.float32)


def _adain_layers(resolution: int) -> tuple[tuple[str, str, int], ...]:
  """(name, op, layer index) of StyleGAN1's two layers at `resolution`: the 4x4
  'const' and 'conv', then 'conv0_up' and 'conv1' at each higher resolution (the
  reference's 4x4/Const, 4x4/Conv, RxR/Conv0_up, RxR/Conv1). The layer index is the
  reference's layer_idx: the w the layer reads and its noise%d."""
  first = 2 * (int(resolution).bit_length() - 3)
  ops = (('const', 'const'), ('conv', 'conv')) if resolution == 4 else (
      ('conv0_up', 'up'), ('conv1', 'conv'))
  return tuple((name, op, first + i) for i, (name, op) in enumerate(ops))


def default_buffers(img_resolution: int, synthesis: str = 'modulated') -> dict:
  """The synthesis network's buffers as used when none are given.

  'modulated', in stylegan2-ada-pytorch's layout: {'b4': {'conv1': {'noise_const':
  [4, 4]}}, 'b8': {'resample_filter': [4, 4] (the image's upsampling), 'conv0':
  {'noise_const': [8, 8], 'resample_filter': [4, 4] (the upsampling conv's)},
  'conv1': {'noise_const': [8, 8]}}, ...}: the fixed 'const' noise (layer conv0 at
  resolution R draws from index 2R, conv1 from 2R + 1) and the [1, 3, 3, 1] filter.
  'adain': only the 'const' noise, one per layer as StyleGAN1's noise%d variables:
  {'b4': {'const': {'noise_const': [4, 4]}, 'conv': ...}, 'b8': {'conv0_up': ...,
  'conv1': ...}, ...}, layer i drawing from index i (its blur filter is fixed).
  """
  _check_choice('synthesis', synthesis, SYNTHESES)
  resolutions = [2 ** i for i in range(2, int(img_resolution).bit_length())]
  if synthesis == 'adain':
    return {f'b{res}': {name: {'noise_const': _const_noise(res, index)[0, :, :, 0]}
                        for name, _, index in _adain_layers(res)}
            for res in resolutions}
  out = {}
  f = jnp.asarray(setup_filter())
  for res in resolutions:
    layers = {'conv1': 2 * res + 1} if res == 4 else {'conv0': 2 * res, 'conv1': 2 * res + 1}
    block = {name: {'noise_const': _const_noise(res, index)[0, :, :, 0]}
             for name, index in layers.items()}
    if res > 4:
      block['resample_filter'] = f
      block['conv0']['resample_filter'] = f
    out[f'b{res}'] = block
  return out


def _noise(module: nn.Module, x: Array, resolution: int, noise_mode: str,
           const_index: int, noise_const=None,
           channels: int | None = None) -> Array | None:
  """The layer's noise [N or 1, R, R, 1] times its learned 'noise_strength' (init 0):
  one scalar (StyleGAN2), or one per channel [channels] (StyleGAN1's apply_noise),
  giving [N or 1, R, R, channels]; `noise_const` [R, R], if given, is the 'const'
  noise."""
  strength = module.param('noise_strength', nn.initializers.zeros,
                          () if channels is None else (channels,), jnp.float32)
  if noise_mode == 'random':
    if not (module.has_rng('noise') or module.has_rng('params')):
      raise JaxganError("noise_mode='random' needs apply(..., rngs={'noise': key})")
    noise = jax.random.normal(module.make_rng('noise'),
                              (x.shape[0], resolution, resolution, 1), jnp.float32)
  elif noise_mode == 'const' and noise_const is not None:
    if tuple(noise_const.shape) != (resolution, resolution):
      raise JaxganError(f'const noise of shape {tuple(noise_const.shape)} for a layer of '
                        f'resolution {resolution}')
    noise = jnp.asarray(noise_const, jnp.float32)[None, :, :, None]
  elif noise_mode == 'const':
    noise = _const_noise(resolution, const_index)
  else:
    return None
  return noise * strength


class SynthesisLayer(nn.Module):
  """StyleGAN2's layer: modulated, demodulated 3x3 conv (x2 upsampling with the FIR
  filter when up=2), noise, bias, lrelu. Params: 'affine' (bias_init 1), 'kernel'
  HWIO, 'noise_strength', 'bias'. `fused` picks the grouped per-sample conv."""
  features: int
  resolution: int
  up: int = 1
  const_index: int = 0
  conv_clamp: float | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, w: Array, noise_mode: str, fused: bool,
               gain: float = 1.0, buffers=None) -> Array:
    buffers = buffers or {}
    in_ch = x.shape[-1]
    styles = FullyConnectedLayer(in_ch, bias_init=1.0, name='affine')(w)
    weight = self.param('kernel', nn.initializers.normal(1.0),
                        (3, 3, in_ch, self.features), jnp.float32)
    noise = _noise(self, x, self.resolution, noise_mode, self.const_index,
                   buffers.get('noise_const'))
    f = buffers.get('resample_filter')
    x = modulated_conv2d(x, weight, styles, noise=noise, up=self.up, padding=1,
                         resample_filter=setup_filter() if f is None else f,
                         flip_weight=self.up == 1,
                         fused=fused, dtype=self.dtype)
    b = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    return bias_act(x, b, 'lrelu', gain, _clamp(self.conv_clamp, gain))


def _instance_norm(x: Array) -> Array:
  """StyleGAN1's instance_norm: per sample and channel, over H and W, in float32."""
  x32 = x.astype(jnp.float32)
  x32 = x32 - x32.mean(axis=(1, 2), keepdims=True)
  x32 = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=(1, 2), keepdims=True)
                            + ADAIN_EPS)
  return x32.astype(x.dtype)


def blur2d(x: Array, f=BLUR_FILTER) -> Array:
  """StyleGAN1's blur2d on NHWC: a depthwise correlation with 'SAME' (zero)
  padding and the normalised outer product of `f` (default [1, 2, 1]: [[1, 2, 1],
  [2, 4, 2], [1, 2, 1]] / 16), in float32 as the reference's."""
  k = setup_filter(f)
  p = (k.shape[1] - 1) // 2, k.shape[1] // 2, (k.shape[0] - 1) // 2, k.shape[0] // 2
  return upfirdn2d(x.astype(jnp.float32), k, padding=p,
                   flip_filter=True).astype(x.dtype)


def upscale2d_conv2d(x: Array, weight: Array, fused: bool) -> Array:
  """StyleGAN1's upscale2d_conv2d with a 3x3 HWIO weight: x2 nearest-neighbour
  upscaling, then the conv with padding 1.

  Not fused: a correlation (the reference's conv2d(upscale2d(x))). Fused: the
  reference's conv2d_transpose (stride 2, 'SAME') with the 4x4 kernel made of the
  weight's four shifted copies summed, which is nearest upscaling followed by a
  true convolution (the weight flipped): computed that way, the same linear map.
  """
  x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  return conv2d_resample(x, weight, padding=1, flip_weight=not fused)


class AdaINLayer(nn.Module):
  """One layer of StyleGAN1's synthesis (NVlabs stylegan `G_synthesis`): its op,
  then `layer_epilogue`.

  op 'const': the learned 'const' [R, R, C] initialised to ones (the 4x4/Const
  layer; `x` is not read). 'conv': a 3x3 conv with padding 1. 'up': x2 upscaling and
  a 3x3 conv (`upscale2d_conv2d`, fused from 128x128 outputs on: the reference's
  fused_scale='auto'), then `blur2d` with [1, 2, 1]. Conv weights are get_weight's
  with use_wscale and gain sqrt(2): 'kernel' HWIO ~ N(0, 1), used times
  sqrt(2 / (9 * in)).

  The epilogue: noise [N or 1, R, R, 1] times the per-channel 'noise_strength' [C]
  (init 0), 'bias' [C] (init 0), leaky ReLU 0.2 without a gain (the sqrt(2) is in
  the conv's weight scale), instance norm, then style_mod: x * (y_s + 1) + y_b with
  [y_s, y_b] = 'affine'(w), a dense layer of w to 2C (gain 1, use_wscale, bias init
  0; scales first, as the reference's reshape to [N, 2, C]).
  """
  features: int
  resolution: int
  op: str = 'conv'
  const_index: int = 0  # which seeded 'const' noise (the reference's layer_idx)
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array | None, w: Array, noise_mode: str,
               buffers=None) -> Array:
    buffers = buffers or {}
    c, res = self.features, self.resolution
    if self.op == 'const':
      const = self.param('const', nn.initializers.ones, (res, res, c), jnp.float32)
      x = jnp.broadcast_to(const.astype(self.dtype)[None], (w.shape[0],) + const.shape)
    else:
      in_ch = x.shape[-1]
      weight = self.param('kernel', nn.initializers.normal(1.0), (3, 3, in_ch, c),
                          jnp.float32)
      weight = (weight * math.sqrt(2 / (in_ch * 9))).astype(self.dtype)
      x = x.astype(self.dtype)
      if self.op == 'up':
        x = blur2d(upscale2d_conv2d(x, weight, fused=res >= FUSED_UPSCALE_MIN_RES))
      else:
        x = conv2d_resample(x, weight, padding=1)
    noise = _noise(self, x, res, noise_mode, self.const_index,
                   buffers.get('noise_const'), channels=c)
    if noise is not None:
      x = x + noise.astype(self.dtype)
    b = self.param('bias', nn.initializers.zeros, (c,), jnp.float32)
    x = nn.leaky_relu(x + b.astype(self.dtype), LRELU_SLOPE)
    x = _instance_norm(x)
    style = FullyConnectedLayer(2 * c, name='affine')(w).astype(self.dtype)
    ys, yb = style[:, None, None, :c], style[:, None, None, c:]
    return x * (ys + 1) + yb


class AdaINSynthesisBlock(nn.Module):
  """One resolution of StyleGAN1's fixed-structure synthesis: its two `AdaINLayer`s
  (`_adain_layers`), reading ws [N, 2, w_dim] in order."""
  channels: int
  resolution: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, ws, noise_mode: str, buffers=None):
    buffers = buffers or {}
    for i, (name, op, index) in enumerate(_adain_layers(self.resolution)):
      x = AdaINLayer(self.channels, self.resolution, op, index, self.dtype,
                     name=name)(x, ws[:, i], noise_mode, buffers.get(name))
    return x


class ToRGBLayer(nn.Module):
  """1x1 modulated conv without demodulation, styles times 1/sqrt(in), plus bias
  (linear); float32 output."""
  img_channels: int
  conv_clamp: float | None = None
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, w: Array, fused: bool) -> Array:
    in_ch = x.shape[-1]
    styles = FullyConnectedLayer(in_ch, bias_init=1.0, name='affine')(w)
    styles = styles * (1 / math.sqrt(in_ch))
    weight = self.param('kernel', nn.initializers.normal(1.0),
                        (1, 1, in_ch, self.img_channels), jnp.float32)
    x = modulated_conv2d(x, weight, styles, demodulate=False, fused=fused,
                         dtype=self.dtype)
    b = self.param('bias', nn.initializers.zeros, (self.img_channels,), jnp.float32)
    return bias_act(x.astype(jnp.float32), b, clamp=_clamp(self.conv_clamp))


class SynthesisBlock(nn.Module):
  """One resolution of StyleGAN2's 'skip' synthesis (synthesis='modulated'): the
  4x4 'const' and 'conv1', or 'conv0' (x2 up) and 'conv1'; then 'torgb' added to
  the FIR-upsampled image."""
  in_channels: int  # 0 = the first (4x4) block
  out_channels: int
  resolution: int
  img_channels: int
  dtype: Dtype = jnp.float32
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x, img, ws, noise_mode: str, fused: bool, buffers=None):
    res, clamp = self.resolution, self.conv_clamp
    buffers = buffers or {}
    if self.in_channels == 0:
      const = self.param('const', nn.initializers.normal(1.0),
                         (res, res, self.out_channels), jnp.float32)
      x = jnp.broadcast_to(const.astype(self.dtype)[None],
                           (ws.shape[0],) + const.shape)
      x = SynthesisLayer(self.out_channels, res, const_index=2 * res + 1,
                         conv_clamp=clamp, dtype=self.dtype, name='conv1')(
          x, ws[:, 0], noise_mode, fused, buffers=buffers.get('conv1'))
      w_torgb = ws[:, 1]
    else:
      x = SynthesisLayer(self.out_channels, res, up=2, const_index=2 * res,
                         conv_clamp=clamp, dtype=self.dtype, name='conv0')(
          x, ws[:, 0], noise_mode, fused, buffers=buffers.get('conv0'))
      x = SynthesisLayer(self.out_channels, res, const_index=2 * res + 1,
                         conv_clamp=clamp, dtype=self.dtype, name='conv1')(
          x, ws[:, 1], noise_mode, fused, buffers=buffers.get('conv1'))
      w_torgb = ws[:, 2]
    if img is not None:
      img = upsample2d(img, buffers.get('resample_filter'))
    y = ToRGBLayer(self.img_channels, conv_clamp=clamp, dtype=self.dtype,
                   name='torgb')(x, w_torgb, fused)
    img = y if img is None else img + y
    return x, img


class SynthesisNetwork(nn.Module):
  """ws [N, num_ws, w_dim] -> float32 images [N, R, R, C]; blocks 'b4', 'b8', ...

  'modulated': StyleGAN2's skip synthesis (`SynthesisBlock`, a 'torgb' in every
  block). 'adain': StyleGAN1's fixed-structure synthesis (`AdaINSynthesisBlock`s,
  block 'bR' reading ws 2 log2(R) - 4 and - 3), then one 'torgb' at the end: a 1x1
  equalized conv (gain 1, `Conv2dLayer`) plus bias, no style, in float32.
  """
  img_resolution: int
  img_channels: int
  channel_base: int = 16384
  channel_max: int = 512
  synthesis: str = 'modulated'
  dtype: Dtype = jnp.float32
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, ws: Array, noise_mode: str, fused: bool,
               buffers=None) -> Array:
    log2 = int(self.img_resolution).bit_length() - 1
    buffers = buffers or {}
    resolutions = [2 ** i for i in range(2, log2 + 1)]
    if self.synthesis == 'adain':
      x = None
      for i, res in enumerate(resolutions):
        x = AdaINSynthesisBlock(_channels(res, self.channel_base, self.channel_max),
                                res, self.dtype, name=f'b{res}')(
                                    x, ws[:, 2 * i:2 * i + 2], noise_mode,
                                    buffers.get(f'b{res}'))
      return Conv2dLayer(self.img_channels, 1, name='torgb')(x.astype(jnp.float32))
    x = img = None
    w_idx = 0
    for res in resolutions:
      in_ch = (_channels(res // 2, self.channel_base, self.channel_max)
               if res > 4 else 0)
      out_ch = _channels(res, self.channel_base, self.channel_max)
      num_conv = 1 if res == 4 else 2
      # Each block reads its convs' ws and the next one for its toRGB, which is
      # also the next block's first conv's w (the reference's ws.narrow).
      block_ws = ws[:, w_idx:w_idx + num_conv + 1]
      x, img = SynthesisBlock(in_ch, out_ch, res, self.img_channels, self.dtype,
                              self.conv_clamp, name=f'b{res}')(
                                  x, img, block_ws, noise_mode, fused,
                                  buffers.get(f'b{res}'))
      w_idx += num_conv
    return img


class StyleGANGenerator(nn.Module):
  """StyleGAN2 (synthesis='modulated') or StyleGAN1 (synthesis='adain') G.

  `apply(variables, z [N, z_dim], train=..., rngs={'noise': key})` -> float32
  images [N, R, R, C], raw (no tanh, as the reference; real images are scaled to
  [-1, 1] and G learns that range). `method='mapping'` gives ws [N, num_ws, w_dim]
  (`num_ws`: ask the generator, `num_ws_for` says what each index styles) and
  `method='synthesize'` images from ws, for style mixing by the caller.
  Truncation: w_avg + psi * (w - w_avg) for the first `truncation_cutoff` ws (all
  if None), `w_avg` [w_dim] being the caller's running average of the mapping's
  output; a Python psi of 1 skips truncation and never reads w_avg (an array psi
  always truncates, so it needs w_avg). `train` picks the reference's modulated-conv
  form (per-sample grouped weights in inference, scaled activations in training; the
  latter at inference too where placed on CPU, `cpu_conv.placement`); the numbers
  agree to rounding. Params: 'mapping' {'fc0', ...}, 'synthesis' {'b4', 'b8', ...}.
  `buffers` (laid out as `default_buffers`) replaces the seeded 'const' noise and
  the [1, 3, 3, 1] filters; `conv_clamp` clamps the synthesis convs' outputs.

  With synthesis='adain', `train` picks nothing, 'synthesis' also holds the one
  'torgb', `buffers` (laid out as `default_buffers(R, 'adain')`) holds only the
  'const' noise, and `conv_clamp` is refused (StyleGAN1 has no clamp). The
  synthesis is then NVlabs stylegan's (TF1) `G_synthesis` with structure='fixed',
  layer for layer (`AdaINLayer`, `AdaINSynthesisBlock`; b4/const, b4/conv,
  bR/conv0_up, bR/conv1 and torgb for its 4x4/Const, 4x4/Conv, RxR/Conv0_up,
  RxR/Conv1 and ToRGB_lod0), its variables laid out as ours (conv weights HWIO =
  its [k, k, in, out], dense [in, out], style scales before biases) except the
  constant ([4, 4, C], its [1, C, 4, 4]). Where it still differs, and what that
  changes:
  - No progressive growing: no lod input, no lerp between resolutions, and only the
    final resolution's toRGB (its 'recursive'/'linear' structures also build
    ToRGB_lod1.. and hold their weights; at lod 0 they do not affect the image). So
    training runs at full resolution from step 0, and our parameter count is the
    reference's fixed structure's.
  - Channels min(channel_base // R, channel_max) at resolution R, its
    nf(log2 R - 1) = min(fmap_base * 2 / R, fmap_max) with channel_base =
    2 * fmap_base: the default 16384 / 512 are its 8192 / 512 (the same widths);
    the small demo widths are ours.
  - The mapping is the task's (shared with 'modulated', stylegan2-ada-pytorch's):
    `map_layers` from the config (2 by default, StyleGAN1's 8), every layer w_dim
    wide (its mapping_fmaps, 512 = its dlatent_size by default), lr multiplier
    0.01, z normalised by its second moment (its pixel_norm). The running average
    of w, truncation (psi, cutoff; its G_style defaults 0.7 and 8 are not ours)
    and style mixing are the task's.
  - Equalized learning rate: weights stored N(0, 1) and used times
    gain / sqrt(fan_in) as get_weight(use_wscale=True, lrmul=1), the convs'
    sqrt(2) applied to the weight and lrelu used without a gain, as its
    layer_epilogue: no difference (a gain after the lrelu would only meet the
    instance norm's epsilon).
  - Noise: 'random' draws N(0, 1) [N, R, R, 1] per call (its randomize_noise);
    'const' uses a fixed draw per layer from a fixed key (NOISE_CONST_SEED, layer
    index), where it reads its stored noise%d variables, so 'const' images differ
    from a TF1 snapshot's unless its noise is given as `buffers`; 'none' leaves the
    noise out but keeps the (then unused) strengths, where use_noise=False has
    none.
  - dtype: its activations are all in `dtype` except instance norm and blur
    (float32). Here the convs, noise, bias, lrelu and style_mod run in `dtype`,
    instance norm and blur in float32, and the mapping, the style dense layers and
    the toRGB in float32, so images are float32 whatever `dtype` (its are
    `dtype`). The same numbers in float32.
  - The fused upscale conv (from 128x128 on) is nearest upscaling then a true
    convolution, the same linear map as its conv2d_transpose of the summed 4x4
    kernel; its custom gradients of blur and upscale are the exact adjoints, as
    autodiff's.
  """
  img_resolution: int
  img_channels: int = 3
  z_dim: int = 512
  w_dim: int = 512
  channel_base: int = 16384
  channel_max: int = 512
  map_layers: int = 2
  synthesis: str = 'modulated'
  dtype: Dtype = jnp.float32
  conv_clamp: float | None = None

  def __post_init__(self):
    _check_resolution(self.img_resolution)
    _check_choice('img_channels', self.img_channels, IMG_CHANNELS)
    _check_choice('synthesis', self.synthesis, SYNTHESES)
    for what in ('z_dim', 'w_dim', 'channel_base', 'channel_max', 'map_layers'):
      _check_positive(what, getattr(self, what))
    if self.synthesis == 'adain' and self.conv_clamp is not None:
      raise JaxganError(f'StyleGAN conv_clamp={self.conv_clamp!r} is '
                        "stylegan2-ada-pytorch's: synthesis='adain' (StyleGAN1) has "
                        'no clamp; use conv_clamp 0 (off)')
    super().__post_init__()

  @property
  def num_ws(self) -> int:
    return num_ws_for(self.img_resolution, self.synthesis)

  def setup(self):
    self.mapping_net = MappingNetwork(self.w_dim, self.num_ws, self.map_layers,
                                      name='mapping')
    self.synthesis_net = SynthesisNetwork(
        self.img_resolution, self.img_channels, self.channel_base,
        self.channel_max, self.synthesis, self.dtype, self.conv_clamp,
        name='synthesis')

  def __call__(self, z: Array, *, w_avg=None, psi=1.0,
               truncation_cutoff: int | None = None, noise_mode: str = 'random',
               train: bool = False, buffers=None) -> Array:
    ws = self.mapping(z, w_avg=w_avg, psi=psi, truncation_cutoff=truncation_cutoff,
                      train=train)
    return self.synthesize(ws, noise_mode=noise_mode, train=train, buffers=buffers)

  def mapping(self, z: Array, *, w_avg=None, psi=1.0,
              truncation_cutoff: int | None = None,
              train: bool = False) -> Array:
    del train  # the mapping behaves the same; w_avg is tracked by the caller
    if z.ndim != 2 or z.shape[1] != self.z_dim:
      raise JaxganError(f'StyleGAN generator input has shape {z.shape}; expected '
                        f'[batch, {self.z_dim}]')
    return self.mapping_net(z, w_avg=w_avg, psi=psi,
                            truncation_cutoff=truncation_cutoff)

  def synthesize(self, ws: Array, *, noise_mode: str = 'random',
                 train: bool = False, buffers=None) -> Array:
    _check_choice('noise_mode', noise_mode, NOISE_MODES)
    if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
      raise JaxganError(f'StyleGAN ws have shape {ws.shape}; expected '
                        f'[batch, {self.num_ws}, {self.w_dim}]')
    # The reference's fused_modconv = not training (in float32), except where placed
    # on CPU: there XLA's grouped convolution makes the fused form 5x slower than the
    # unfused one (256 demo images: 0.75 vs 0.14 s; BUILD_NOTES, "StyleGAN on CPU
    # (issue 20)"), which computes the same numbers up to rounding.
    fused = not train and cpu_conv.current().platform != 'cpu'
    return self.synthesis_net(ws.astype(jnp.float32), noise_mode, fused=fused,
                              buffers=buffers)


# ---------------------------------------------------------------------------------
# Discriminator.


def minibatch_stddev(x: Array, group_size: int | None = 4,
                     num_channels: int = 1) -> Array:
  """The reference's MinibatchStdLayer on NHWC: append `num_channels` features,
  each the stddev over a group (averaged over its channel slice and pixels).

  Group size G = min(group_size, N) (N if None) and N must divide by it; groups are
  strided (sample j is in group j mod N/G), as the reference's reshape(G, -1, ...).
  The stddev is sqrt(var + 1e-8), so identical samples give 1e-4.
  """
  n, h, w, c = x.shape
  g = n if group_size is None else min(group_size, n)
  if n % g:
    raise JaxganError(f'minibatch-stddev group size {g} does not divide the batch '
                      f'size {n}; use a batch that is a multiple of {g}')
  f = num_channels
  if c % f:
    raise JaxganError(f'mbstd_num_channels={f} does not divide the {c} channels')
  y = x.astype(jnp.float32).reshape(g, n // g, h, w, f, c // f)
  y = y - y.mean(axis=0)
  y = jnp.sqrt(jnp.square(y).mean(axis=0) + MBSTD_EPS)  # [n/G, H, W, F, c]
  y = y.mean(axis=(1, 2, 4))  # [n/G, F]
  y = jnp.tile(y, (g, 1))  # sample i gets group i mod n/G
  y = jnp.broadcast_to(y[:, None, None, :], (n, h, w, f))
  return jnp.concatenate([x, y.astype(x.dtype)], axis=-1)


class DiscriminatorBlock(nn.Module):
  """'fromrgb' (top block only), 'conv0' 3x3, 'conv1' 3x3 /2 (FIR), and for
  'resnet' the 'skip' 1x1 /2 without bias: (x + skip) * sqrt(0.5)."""
  tmp_channels: int
  out_channels: int
  first: bool
  architecture: str = 'resnet'
  dtype: Dtype = jnp.float32
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    clamp = self.conv_clamp  # not on 'skip', as the reference
    if self.first:
      x = Conv2dLayer(self.tmp_channels, 1, activation='lrelu', conv_clamp=clamp,
                      dtype=self.dtype, name='fromrgb')(x)
    conv0 = Conv2dLayer(self.tmp_channels, 3, activation='lrelu', conv_clamp=clamp,
                        dtype=self.dtype, name='conv0')
    conv1 = Conv2dLayer(self.out_channels, 3, activation='lrelu', down=2,
                        conv_clamp=clamp, dtype=self.dtype, name='conv1')
    if self.architecture == 'resnet':
      y = Conv2dLayer(self.out_channels, 1, use_bias=False, down=2,
                      dtype=self.dtype, name='skip')(x, gain=math.sqrt(0.5))
      return y + conv1(conv0(x), gain=math.sqrt(0.5))
    return conv1(conv0(x))


class DiscriminatorEpilogue(nn.Module):
  """4x4, float32: minibatch stddev, 'conv' 3x3, 'fc' (C*16 -> C), 'out' -> 1."""
  channels: int
  mbstd_group_size: int | None = 4
  mbstd_num_channels: int = 1
  conv_clamp: float | None = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = x.astype(jnp.float32)
    if self.mbstd_num_channels > 0:
      x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_channels)
    x = Conv2dLayer(self.channels, 3, activation='lrelu', conv_clamp=self.conv_clamp,
                    name='conv')(x)
    # Flattened in the reference's NCHW order, so 'fc' rows line up with its weight.
    x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)
    x = FullyConnectedLayer(self.channels, activation='lrelu', name='fc')(x)
    return FullyConnectedLayer(1, name='out')(x)[:, 0]


class StyleGANDiscriminator(nn.Module):
  """Images [N, R, R, C] -> float32 logits [N] (no sigmoid).

  Blocks 'b{R}' ... 'b8' (each halving H and W), then the 4x4 epilogue 'b4'. At
  R = 4 there are no blocks and the epilogue starts with a 'fromrgb' (the
  reference's resnet/orig D does not support 4x4 images).
  """
  img_resolution: int
  img_channels: int = 3
  channel_base: int = 16384
  channel_max: int = 512
  architecture: str = 'resnet'
  mbstd_group_size: int | None = 4
  mbstd_num_channels: int = 1
  dtype: Dtype = jnp.float32
  conv_clamp: float | None = None

  def __post_init__(self):
    _check_resolution(self.img_resolution)
    _check_choice('img_channels', self.img_channels, IMG_CHANNELS)
    _check_choice('architecture', self.architecture, ARCHITECTURES)
    for what in ('channel_base', 'channel_max'):
      _check_positive(what, getattr(self, what))
    if self.mbstd_group_size is not None:
      _check_positive('mbstd_group_size', self.mbstd_group_size)
    if not _is_int(self.mbstd_num_channels) or self.mbstd_num_channels < 0:
      raise JaxganError(f'StyleGAN mbstd_num_channels={self.mbstd_num_channels!r} '
                        'must be an integer >= 0')
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array, *, train: bool = False) -> Array:
    del train  # no batch statistics or dropout
    r = int(self.img_resolution)
    if x.ndim != 4 or x.shape[1:] != (r, r, self.img_channels):
      raise JaxganError(f'StyleGAN discriminator input has shape {x.shape}; '
                        f'expected [batch, {r}, {r}, {self.img_channels}]')
    ch = lambda res: _channels(res, self.channel_base, self.channel_max)
    res = r
    while res > 4:
      x = DiscriminatorBlock(ch(res), ch(res // 2), first=res == r,
                             architecture=self.architecture, dtype=self.dtype,
                             conv_clamp=self.conv_clamp, name=f'b{res}')(x)
      res //= 2
    if r == 4:
      x = Conv2dLayer(ch(4), 1, activation='lrelu', conv_clamp=self.conv_clamp,
                      dtype=self.dtype, name='fromrgb')(x)
    return DiscriminatorEpilogue(ch(4), self.mbstd_group_size,
                                 self.mbstd_num_channels, self.conv_clamp,
                                 name='b4')(x)


# ---------------------------------------------------------------------------------
# Factories (registered in `jaxgan.models.NETWORKS`).


def make_stylegan_generator(*, img_resolution: int, img_channels: int = 3,
                            z_dim: int = 512, w_dim: int = 512,
                            channel_base: int = 16384, channel_max: int = 512,
                            map_layers: int = 2, synthesis: str = 'modulated',
                            dtype: Dtype = jnp.float32,
                            conv_clamp: float | None = None) -> StyleGANGenerator:
  """StyleGAN G; raises a one-line JaxganError on a bad setting."""
  _check_clamp(conv_clamp)
  return StyleGANGenerator(img_resolution=img_resolution, img_channels=img_channels,
                           z_dim=z_dim, w_dim=w_dim, channel_base=channel_base,
                           channel_max=channel_max, map_layers=map_layers,
                           synthesis=synthesis, dtype=dtype, conv_clamp=conv_clamp)


def make_stylegan_discriminator(*, img_resolution: int, img_channels: int = 3,
                                channel_base: int = 16384, channel_max: int = 512,
                                architecture: str = 'resnet',
                                mbstd_group_size: int | None = 4,
                                mbstd_num_channels: int = 1,
                                dtype: Dtype = jnp.float32,
                                conv_clamp: float | None = None
                                ) -> StyleGANDiscriminator:
  """StyleGAN D; raises a one-line JaxganError on a bad setting."""
  _check_clamp(conv_clamp)
  return StyleGANDiscriminator(img_resolution=img_resolution,
                               img_channels=img_channels,
                               channel_base=channel_base, channel_max=channel_max,
                               architecture=architecture,
                               mbstd_group_size=mbstd_group_size,
                               mbstd_num_channels=mbstd_num_channels, dtype=dtype,
                               conv_clamp=conv_clamp)


def _check_clamp(conv_clamp) -> None:
  if conv_clamp is not None and not (isinstance(conv_clamp, numbers.Real)
                                     and conv_clamp > 0):
    raise JaxganError(f'StyleGAN conv_clamp={conv_clamp!r} must be > 0 (or None: off)')
