"""StyleGAN2-ADA's augmentation pipeline (Karras et al. 2020) as a pure function.

`augment(images, p, key)` is NVlabs stylegan2-ada-pytorch's `training/augment.py`
`AugmentPipe` with its default 'bgc' preset (`train.py`: pixel blitting, general
geometry and colour, every probability multiplier 1; the image-space filtering, noise
and cutout ops are not built). The strength `p` is an argument, not module state: the
caller keeps it in the train state, so a resumed run goes on with the same p (the
reference loses it on resume), and a changed p needs no recompile.

What it computes, in the reference's order and float32 arithmetic:

* Geometry. Each enabled op is applied to an image with probability p x multiplier
  (rotation: pre- and post-anisotropy, each with 1 - sqrt(1 - p) so that one of them
  happens with p), and all of them compose into one inverse 3x3 matrix per image. The
  image is reflect-padded by the margin that the transformed corners need (plus the
  filter's), upsampled 2x with the sym6 wavelet low-pass, resampled bilinearly on the
  transformed grid (zeros outside the padded image, like `grid_sample`), and
  downsampled 2x with the same filter back to the input size.
* Colour. Brightness, contrast, luma flip, hue rotation and saturation compose into
  one 4x4 matrix per image, applied to each pixel's RGB; a 1-channel image gets the
  reference's grayscale path (hue and saturation off, the mean of the matrix's RGB
  rows); C = 3k channels (pix2pix's (input, output) pairs: C = 6) are k RGB groups
  that share one geometric transform and one colour matrix (the reference supports
  C in {1, 3} only).

`debug_percentile=q` is the reference's debug mode: every random draw is replaced by
the q-quantile of its distribution and every enabled op is applied (the
post-rotation stays 0). At q = 0 or 1 the Gaussian ops' quantiles are infinite and
the output is not finite, as the reference's (which fails in its padding there).

How it is computed (static shapes, jit-able, p traced): the reference's
data-dependent padding becomes a fixed canvas padded by the largest margin there can
be (H - 1 and W - 1), masked to the batch's margin, and an offset into it. Padding,
mask and 2x upsampling are one [2 (3H - 2) + 2, H] matrix per axis, applied to the
images as two matmuls; grid_sample's bilinear taps are four element gathers from that
canvas per output pixel, their transpose (the backward pass) one scatter-add of 2x2
blocks (custom_vjp: autodiff's element scatters were ~10x slower on CPU); the 2x
downsampling is one matrix per axis again. The map is affine in the images (the
brightness offset), differentiable in reverse mode to any order (R1 takes the
gradient of D(augment(x)) and then differentiates that), and vmap-able; forward-mode
(jax.jvp) is not available through the custom_vjp. CPU time per call on one core
(taskset; jit; bgc at p = 0.5; backward: value_and_grad of sum(augment(x) * cos x)):
[32, 32, 32, 1] forward 1.6 ms, forward + backward 8.8 ms; [32, 32, 32, 3] 5.1 and
36 ms. The canvas is 9x the image, so the cost grows as H^2 W + H W^2 per image and
channel ([16, 64, 64, 3]: 28 and 90 ms).

Where it differs from the reference:
* Random numbers are JAX's, all drawn at once from `key` (a fixed column per draw);
  the distributions, the per-image and per-op independence and the gating are the
  reference's.
* The padding margin is, as in the reference, the largest any image in the batch
  needs, but 'the batch' is the array given to one call: under data parallelism the
  reference pads each GPU's share by its own largest margin. The margin only moves
  where zeros start beyond the reflected image; samples reach there (through the
  filters' tails) only at zoom-outs and large rotations, and then an image's result
  depends slightly on the other images' transforms, as in the reference.
* p = 0 is the identity only to float32 rounding (the resampling always runs, as in
  the reference's 'bgc' pipe): a few 1e-6 at 16x16, ~1e-5 at 64x64.
* C = 3k channels are allowed (see above); a traced debug percentile is allowed.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan.errors import JaxganError

Array = jax.Array

# Probability multipliers of the reference's 'bgc' preset (train.py augpipe_specs).
BGC = {'xflip': 1.0, 'rotate90': 1.0, 'xint': 1.0, 'scale': 1.0, 'rotate': 1.0,
       'aniso': 1.0, 'xfrac': 1.0, 'brightness': 1.0, 'contrast': 1.0,
       'lumaflip': 1.0, 'hue': 1.0, 'saturation': 1.0}
GEOMETRIC = ('xflip', 'rotate90', 'xint', 'scale', 'rotate', 'aniso', 'xfrac')
COLOUR = ('brightness', 'contrast', 'lumaflip', 'hue', 'saturation')

# The reference's AugmentPipe defaults for the ranges of the draws.
XINT_MAX = 0.125  # integer translation, relative to the image size
SCALE_STD = 0.2  # log2 std of isotropic scaling
ROTATE_MAX = 1.0  # arbitrary rotation, 1 = full circle
ANISO_STD = 0.2  # log2 std of anisotropic scaling
XFRAC_STD = 0.125  # fractional translation, relative to the image size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # log2
HUE_MAX = 1.0  # 1 = full circle
SATURATION_STD = 1.0  # log2

# Low-pass filter of the Symlet-6 orthogonal wavelet, the reference's `wavelets['sym6']`
# (in its order): orthogonal, so upsampling then downsampling with it is the identity.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057,
        -0.048311742585633, 0.4910559419267466, 0.787641141030194,
        0.3379294217276218, -0.07263752278646252, -0.021060292512300564,
        0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
# The reference's Hz_pad: the output grid extends this far (in input pixels) beyond
# the image on each side, and the margin gets twice this for the filters.
FILTER_PAD = len(SYM6) // 4


def _float(x) -> Array:
  return jnp.asarray(x, jnp.float32)


# ---------------------------------------------------------------------------------
# Homogeneous matrices, one per image: [N, k, k].


def _unit(k: int, *entries) -> np.ndarray:
  """[k, k] float32 with ones at the (row, column) `entries`."""
  m = np.zeros((k, k), np.float32)
  for i, j in entries:
    m[i, j] = 1
  return m


def _matrix(n: int, const: np.ndarray, *terms) -> Array:
  """const + sum of coeff * basis over the (coeff: scalar or [N], basis [k, k]) terms,
  as [N, k, k]: the reference's matrices, entry for entry (the basis entries are 0 or
  1, so each entry is the reference's expression exactly), in a few ops each."""
  m = jnp.broadcast_to(_float(const), (n,) + const.shape)
  for coeff, basis in terms:
    m = m + jnp.reshape(_float(coeff), (-1, 1, 1)) * _float(basis)
  return m


_I3, _I4 = np.eye(3, dtype=np.float32), np.eye(4, dtype=np.float32)


def _translate2d(n, tx, ty):
  return _matrix(n, _I3, (tx, _unit(3, (0, 2))), (ty, _unit(3, (1, 2))))


def _scale2d(n, sx, sy):
  return _matrix(n, _unit(3, (2, 2)), (sx, _unit(3, (0, 0))), (sy, _unit(3, (1, 1))))


def _rotate2d(n, theta):
  return _matrix(n, _unit(3, (2, 2)), (jnp.cos(theta), _unit(3, (0, 0), (1, 1))),
                 (jnp.sin(-theta), _unit(3, (0, 1))),
                 (jnp.sin(theta), _unit(3, (1, 0))))


# The colour ops' luma axis v (homogeneous RGB1), v v^T and, for rotations about v,
# the cross-product matrix [v]x, all in float32 as the reference's products are.
_LUMA = (np.asarray([1, 1, 1, 0], np.float64) / np.sqrt(3)).astype(np.float32)
_VV = np.outer(_LUMA, _LUMA)
_VX, _VY, _VZ, _ = _LUMA
_CROSS = np.asarray([[0, -_VZ, _VY, 0], [_VZ, 0, -_VX, 0], [-_VY, _VX, 0, 0],
                     [0, 0, 0, 0]], np.float32)
_RGB = _unit(4, (0, 0), (1, 1), (2, 2))


def _translate3d(n, t):
  return _matrix(n, _I4, (t, _unit(4, (0, 3), (1, 3), (2, 3))))


def _scale3d(n, s):
  return _matrix(n, _unit(4, (3, 3)), (s, _RGB))


def _rotate3d_luma(n, theta):
  """Rotation by theta about the luma axis (Rodrigues: v v^T (1 - cos) + I cos +
  [v]x sin, the reference's entries)."""
  c = jnp.cos(theta)
  return _matrix(n, _unit(4, (3, 3)), (1 - c, _VV), (c, _RGB), (jnp.sin(theta), _CROSS))


# ---------------------------------------------------------------------------------
# Random parameters.


class _Draws:
  """The random parameters of one call, as the reference draws them: per image and
  op a value, and a U[0, 1) gate that applies the op when below its probability; or,
  in debug mode, the debug percentile's value for every image.

  All numbers come from one [N, columns] block with a fixed column per draw: a
  random-bits call per draw (24) was most of the compile time, and fixed columns keep
  each op's numbers the same whichever ops are on."""

  def __init__(self, key, n: int, p: Array, debug_percentile: float | None):
    self.n, self.p = n, p
    self.q = None if debug_percentile is None else _float(debug_percentile)
    if self.q is not None:
      return  # nothing is drawn
    u = jax.random.uniform(key, (n, _N_UNIFORM + _N_NORMAL), jnp.float32)
    self._uniform = u[:, :_N_UNIFORM]
    # Normals from uniforms the way jax.random.normal makes them (the inverse error
    # function on (-1, 1)).
    lo = np.nextafter(np.float32(-1), np.float32(0))
    self._normal = np.float32(np.sqrt(2)) * jax.scipy.special.erfinv(
        jnp.maximum(u[:, _N_UNIFORM:] * 2 - 1, lo))

  def _raw(self, op: str, normal: bool, size: int) -> tuple[Array, Array]:
    """(value [N, size], gate [N, 1]): the op's U[0, 1) or N(0, 1) draws and its
    gate's U[0, 1) draw."""
    columns, block = (_NORMAL, self._normal) if normal else (_UNIFORM, self._uniform)
    start = columns[op]
    return block[:, start:start + size], self._uniform[:, _UNIFORM[op + '/gate'], None]

  def _value(self, op, prob, normal, shape, drawn, identity, debug):
    """Per image [N, *shape]: drawn(the op's raw draw) where its gate (U[0, 1) <
    prob) is open, else `identity`; in debug mode debug(q) for every image."""
    if self.q is not None:
      return jnp.broadcast_to(debug(self.q), (self.n,) + shape)
    value, gate = self._raw(op, normal, int(np.prod(shape, dtype=int)))
    gate = gate.reshape((self.n,) + (1,) * len(shape)) < prob
    return jnp.where(gate, drawn(value.reshape((self.n,) + shape)), identity)

  def integer(self, op, prob, k):
    """floor(U * k), identity 0: a choice among k (flips, quarter turns)."""
    return self._value(op, prob, False, (), lambda u: jnp.floor(u * k), 0.0,
                       lambda q: jnp.floor(q * k))

  def symmetric(self, op, prob, scale, shape=(), debug=None):
    """(2U - 1) * scale, identity 0 (the debug value: the percentile's, or debug)."""
    return self._value(op, prob, False, shape, lambda u: (u * 2 - 1) * scale, 0.0,
                       debug or (lambda q: (q * 2 - 1) * scale))

  def gaussian(self, op, prob, std, shape=()):
    """N(0, std^2), identity 0."""
    return self._value(op, prob, True, shape, lambda z: z * std, 0.0,
                       lambda q: jax.scipy.special.erfinv(q * 2 - 1) * std)

  def log2_normal(self, op, prob, std):
    """2^N(0, std^2), identity 1 (scales)."""
    return self._value(op, prob, True, (), lambda z: jnp.exp2(z * std), 1.0,
                       lambda q: jnp.exp2(jax.scipy.special.erfinv(q * 2 - 1) * std))


def _columns(sizes: Mapping[str, int]) -> tuple[dict[str, int], int]:
  starts = np.cumsum([0] + list(sizes.values()))
  return dict(zip(sizes, starts[:-1].tolist())), int(starts[-1])


# The column of each draw in the uniform and the normal block: the ops' values (xint
# and xfrac draw x and y), then every op's gate.
_UNIFORM, _N_UNIFORM = _columns(
    {'xflip': 1, 'rotate90': 1, 'xint': 2, 'rotate': 1, 'rotate_post': 1,
     'lumaflip': 1, 'hue': 1}
    | {op + '/gate': 1 for op in GEOMETRIC + COLOUR + ('rotate_post',)})
_NORMAL, _N_NORMAL = _columns({'scale': 1, 'aniso': 1, 'xfrac': 2, 'brightness': 1,
                               'contrast': 1, 'saturation': 1})


def _geometric_matrix(d: _Draws, mult: Mapping[str, float], h: int, w: int):
  """The composed inverse transform G_inv (output pixel -> input pixel, centred
  coordinates) [N, 3, 3], or None if no geometric op is enabled: the product
  M_1 @ M_2 @ ... of the enabled ops' inverse matrices, in the reference's order."""
  n, p = d.n, d.p
  ms = []
  if mult['xflip'] > 0:
    i = d.integer('xflip', mult['xflip'] * p, 2)
    ms.append(_scale2d(n, 1 / (1 - 2 * i), 1))
  if mult['rotate90'] > 0:
    i = d.integer('rotate90', mult['rotate90'] * p, 4)
    ms.append(_rotate2d(n, -(-np.pi / 2 * i)))
  if mult['xint'] > 0:
    t = d.symmetric('xint', mult['xint'] * p, XINT_MAX, shape=(2,))
    ms.append(_translate2d(n, -jnp.round(t[:, 0] * w), -jnp.round(t[:, 1] * h)))
  if mult['scale'] > 0:
    s = d.log2_normal('scale', mult['scale'] * p, SCALE_STD)
    ms.append(_scale2d(n, 1 / s, 1 / s))
  # Rotation before and after the anisotropic scaling, each with p_rot, so that
  # P(pre or post) = rotate * p; in debug mode only the first.
  p_rot = 1 - jnp.sqrt(jnp.clip(1 - mult['rotate'] * p, 0, 1))
  if mult['rotate'] > 0:
    ms.append(_rotate2d(n, d.symmetric('rotate', p_rot, np.pi * ROTATE_MAX)))
  if mult['aniso'] > 0:
    s = d.log2_normal('aniso', mult['aniso'] * p, ANISO_STD)
    ms.append(_scale2d(n, 1 / s, 1 / (1 / s)))
  if mult['rotate'] > 0:
    ms.append(_rotate2d(n, d.symmetric('rotate_post', p_rot, np.pi * ROTATE_MAX,
                                       debug=lambda q: jnp.zeros(()))))
  if mult['xfrac'] > 0:
    t = d.gaussian('xfrac', mult['xfrac'] * p, XFRAC_STD, shape=(2,))
    ms.append(_translate2d(n, -(t[:, 0] * w), -(t[:, 1] * h)))
  return functools.reduce(jnp.matmul, ms) if ms else None


def _colour_matrix(d: _Draws, mult: Mapping[str, float], rgb: bool):
  """The composed colour transform C (colour_in -> colour_out) [N, 4, 4], or None if
  no colour op applies (hue and saturation need RGB): ... @ M_2 @ M_1, the enabled
  ops' matrices in the reference's order."""
  n, p = d.n, d.p
  ms = []
  if mult['brightness'] > 0:
    ms.append(_translate3d(n, d.gaussian('brightness', mult['brightness'] * p,
                                         BRIGHTNESS_STD)))
  if mult['contrast'] > 0:
    ms.append(_scale3d(n, d.log2_normal('contrast', mult['contrast'] * p,
                                        CONTRAST_STD)))
  if mult['lumaflip'] > 0:
    i = d.integer('lumaflip', mult['lumaflip'] * p, 2)
    ms.append(_matrix(n, _I4, (i, -2 * _VV)))  # Householder reflection: I - 2 v v^T i
  if mult['hue'] > 0 and rgb:
    ms.append(_rotate3d_luma(n, d.symmetric('hue', mult['hue'] * p, np.pi * HUE_MAX)))
  if mult['saturation'] > 0 and rgb:
    s = d.log2_normal('saturation', mult['saturation'] * p, SATURATION_STD)
    ms.append(_matrix(n, _VV, (s, _I4 - _VV)))  # v v^T + (I - v v^T) s
  return functools.reduce(lambda c, m: m @ c, ms) if ms else None


# ---------------------------------------------------------------------------------
# Geometric resampling.


def _fir_matrix(f: np.ndarray, n_in: int, n_out: int, phase: int, up: int,
                down: int) -> np.ndarray:
  """A 1-D upfirdn as an [n_out, n_in] matrix: out[k] = sum_r x[r] f[down k - up r +
  phase] (a true convolution with f, up/down the rates, `phase` the alignment)."""
  k = np.arange(n_out)[:, None]
  r = np.arange(n_in)[None, :]
  t = down * k - up * r + phase
  inside = (t >= 0) & (t < len(f))
  return np.where(inside, f[np.clip(t, 0, len(f) - 1)], 0.0)


def _reflect_matrix(n: int, pad: int) -> np.ndarray:
  """[n + 2 pad, n]: reflect padding (the edge pixel not repeated), pad < n."""
  s = np.arange(-pad, n + pad)
  s = np.where(s < 0, -s, s)
  s = np.where(s > n - 1, 2 * (n - 1) - s, s)
  return (s[:, None] == np.arange(n)[None, :]).astype(np.float64)


def _upsampling_matrix(n: int, lo: Array, hi: Array) -> Array:
  """[2 (3n - 2) + 2, n]: reflect padding by the largest margin (n - 1) on a fixed
  canvas, zeroed outside the batch's margin [n - 1 - lo, 2n - 1 + hi) (the reference
  pads by lo and hi only and its upsampling sees zeros beyond), then the reference's
  2x sym6 upsampling (upsample2d: gain 2 per axis, padding 6 before and 5 after),
  and a zero row at each end, so that every 2x2 block of bilinear taps is inside."""
  pad = n - 1
  canvas = n + 2 * pad
  f = np.asarray(SYM6, np.float64)
  up = _fir_matrix(2 * f / f.sum(), canvas, 2 * canvas,
                   phase=(len(f) + 1) // 2 - 1, up=2, down=1)
  up = np.pad(up, ((1, 1), (0, 0)))
  a = jnp.arange(canvas)
  inside = (a >= pad - lo) & (a < pad + n + hi)
  padded = jnp.where(inside[:, None], _float(_reflect_matrix(n, pad)), 0.0)
  return _float(up) @ padded


def _downsampling_matrix(n: int) -> np.ndarray:
  """[n, 2 (n + 2 FILTER_PAD)]: the reference's downsample2d with flip_filter (a
  correlation with the normalised sym6), cropping 2 FILTER_PAD pixels each side."""
  f = np.asarray(SYM6, np.float64)
  f = f / f.sum()
  # out[k] = sum_t f[t] y[2k + 1 + t] = sum_m y[m] f_rev[2k - m + len(f)].
  return _fir_matrix(f[::-1], 2 * (n + 2 * FILTER_PAD), n,
                     phase=len(f), up=1, down=2).astype(np.float32)


def _separable(x: Array, m_y: Array, m_x: Array) -> Array:
  """x [B, H, W] -> m_y [Y, H] @ x @ m_x [X, W]^T [B, Y, X], as a matmul over the
  minor axis and a batched one over the major, so that no large operand is
  transposed (written as einsums, XLA transposed the sampled grid, and then ran the
  gathers that produce it in transposed order, several times slower)."""
  b, h, w = x.shape
  x = (x.reshape(b * h, w) @ m_x.T).reshape(b, h, -1)
  return jnp.matmul(jnp.broadcast_to(m_y, (b,) + m_y.shape), x)


def _base_grid(size: int) -> np.ndarray:
  """affine_grid's normalised pixel centres (align_corners=False)."""
  return ((2 * np.arange(size) + 1) / size - 1).astype(np.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _bilinear(shape: tuple[int, ...], u: Array, y0: Array, x0: Array,
              weights: tuple[Array, ...]) -> Array:
  """out[n, c, i, j] = sum_ab w_ab[n, i, j] u[n, c, y0 + a, x0 + b] for u [N, C, H, W]
  (its `shape`, static), the 2x2 blocks' corners y0, x0 [N, Ho, Wo] (in range) and
  weights (w_00, w_01, w_10, w_11), each [N, Ho, Wo] -> [N, C, Ho, Wo].

  Forward as four element gathers, backward (w.r.t. u only: the rest is geometry) as
  one scatter-add of 2x2 blocks, written apart: autodiff would transpose the gathers
  into element scatters, which XLA:CPU runs at ~40 ns an element (20-30 ms at
  [32, 32, 32, 1]) against ~1.5 ms for the block scatter; the block gather in turn is
  slower forward than the element gathers (~3 vs 0.6 ms). The backward pass is plain
  JAX, so differentiating it again (R1's gradient of a gradient) is autodiff's: its
  transpose is a block gather."""
  n, c, hu, wu = shape
  flat = u.reshape(n, c, hu * wu)
  out = 0
  for (a, b), weight in zip(_TAPS, weights):
    idx = ((y0 + a) * wu + x0 + b).reshape(n, 1, -1)
    v = jnp.take_along_axis(flat, idx, axis=2, mode='promise_in_bounds')
    out = out + v.reshape((n, c) + y0.shape[1:]) * weight[:, None]
  return out


_TAPS = ((0, 0), (0, 1), (1, 0), (1, 1))


def _bilinear_fwd(shape, u, y0, x0, weights):
  return _bilinear(shape, u, y0, x0, weights), (y0, x0, weights)


def _bilinear_bwd(shape, res, ct):
  y0, x0, weights = res
  n, c, hu, wu = shape
  starts = jnp.stack([jnp.broadcast_to(jnp.arange(n)[:, None, None], y0.shape), y0,
                      x0], -1)
  ct = jnp.moveaxis(ct, 1, 3)  # [N, Ho, Wo, C]
  updates = jnp.stack([ct * w[..., None] for w in weights], -1)
  updates = updates.reshape(updates.shape[:-1] + (2, 2))  # [N, Ho, Wo, C, 2, 2]
  du = jax.lax.scatter_add(
      jnp.zeros((n, c, hu, wu), ct.dtype), starts, updates,
      jax.lax.ScatterDimensionNumbers(update_window_dims=(3, 4, 5),
                                      inserted_window_dims=(0,),
                                      scatter_dims_to_operand_dims=(0, 2, 3)),
      mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS)
  return du, None, None, None


_bilinear.defvjp(_bilinear_fwd, _bilinear_bwd)


def _resample(x: Array, g_inv: Array) -> Array:
  """The reference's pad / upsample / grid_sample / downsample for x [N, H, W, C]."""
  n, h, w, _ = x.shape
  cx, cy = (w - 1) / 2, (h - 1) / 2
  corners = _float(np.asarray([[-cx, -cy, 1], [cx, -cy, 1], [cx, cy, 1], [-cx, cy, 1]]))
  cp = jnp.einsum('nij,kj->nik', g_inv, corners)[:, :2]  # [N, xy, corner]
  margin = jnp.concatenate([-cp, cp], axis=1).max(axis=(0, 2))  # [x0, y0, x1, y1]
  margin = margin + _float([FILTER_PAD * 2 - cx, FILTER_PAD * 2 - cy] * 2)
  margin = jnp.minimum(jnp.maximum(margin, 0), _float([w - 1, h - 1] * 2))
  mx0, my0, mx1, my1 = jnp.ceil(margin).astype(jnp.int32)

  # The output pixel -> upsampled padded-image pixel map, as the reference composes it
  # (then normalised to [-1, 1] on both ends, the form affine_grid takes).
  g = _translate2d(1, (mx0 - mx1) / 2, (my0 - my1) / 2) @ g_inv
  g = _scale2d(1, 2, 2) @ g @ _scale2d(1, 1 / 2, 1 / 2)
  g = _translate2d(1, -0.5, -0.5) @ g @ _translate2d(1, 0.5, 0.5)
  w_out, h_out = (w + FILTER_PAD * 2) * 2, (h + FILTER_PAD * 2) * 2
  w_in, h_in = (w + mx0 + mx1) * 2, (h + my0 + my1) * 2
  g = (_scale2d(1, 2 / w_in, 2 / h_in) @ g
       @ _scale2d(1, 1 / (2 / w_out), 1 / (2 / h_out)))
  # affine_grid: [x, y, 1] of each output pixel centre times theta^T, as matmuls
  # (the reference's bmm), one per output coordinate.
  bx, by = np.meshgrid(_base_grid(w_out), _base_grid(h_out))
  base = _float(np.stack([bx, by, np.ones_like(bx)], -1).reshape(-1, 3))
  gx, gy = (jnp.einsum('oj,nj->no', base, g[:, i]).reshape(n, h_out, w_out)
            for i in range(2))
  # grid_sample's unnormalisation (align_corners=False) and bilinear taps.
  ix = ((gx + 1) * w_in.astype(jnp.float32) - 1) / 2
  iy = ((gy + 1) * h_in.astype(jnp.float32) - 1) / 2
  ix0, iy0 = jnp.floor(ix), jnp.floor(iy)
  fx, fy = ix - ix0, iy - iy0
  ix0, iy0 = ix0.astype(jnp.int32), iy0.astype(jnp.int32)

  # The padded, upsampled images on the fixed canvas (+1 zero row / column each side
  # so that every 2x2 tap block is in range after clipping).
  b_y = _upsampling_matrix(h, my0, my1)
  b_x = _upsampling_matrix(w, mx0, mx1)
  c = x.shape[-1]
  u = _separable(jnp.moveaxis(x, 3, 1).reshape(n * c, h, w), b_y, b_x)
  u = u.reshape((n, c) + u.shape[1:])
  hu, wu = u.shape[2:]
  # Canvas position of the reference's upsampled pixel (iy, ix).
  cy0 = jnp.clip(iy0 + 2 * (h - 1 - my0) + 1, 0, hu - 2)
  cx0 = jnp.clip(ix0 + 2 * (w - 1 - mx0) + 1, 0, wu - 2)

  # Each tap's bilinear weight, 0 where grid_sample reads zeros: outside the
  # reference's padded, upsampled image.
  wy = [jnp.where((iy0 + a >= 0) & (iy0 + a < h_in), wt, 0) for a, wt in
        enumerate((1 - fy, fy))]
  wx = [jnp.where((ix0 + b >= 0) & (ix0 + b < w_in), wt, 0) for b, wt in
        enumerate((1 - fx, fx))]
  y = _bilinear(u.shape, u, cy0, cx0, tuple(wy[a] * wx[b] for a, b in _TAPS))
  y = _separable(y.reshape(n * c, h_out, w_out), _float(_downsampling_matrix(h)),
                 _float(_downsampling_matrix(w)))
  return jnp.moveaxis(y.reshape(n, c, h, w), 1, 3)


# ---------------------------------------------------------------------------------
# Colour.


def _recolour(x: Array, c_mat: Array) -> Array:
  """Applies C [N, 4, 4] to x [N, H, W, C]: per RGB group, or the reference's
  grayscale form for C = 1."""
  n, h, w, c = x.shape
  if c == 1:
    rows = c_mat[:, :3, :].mean(axis=1)  # [N, 4]
    return x * rows[:, None, None, :3].sum(-1, keepdims=True) + rows[:, None, None, 3:]
  x = x.reshape(n, h, w, c // 3, 3)
  x = jnp.einsum('nij,nhwgj->nhwgi', c_mat[:, :3, :3], x) + c_mat[:, None, None, None,
                                                                  :3, 3]
  return x.reshape(n, h, w, c)


# ---------------------------------------------------------------------------------


def _check(images, p, debug_percentile, multipliers):
  if getattr(images, 'ndim', None) != 4:
    raise JaxganError(f'augment: images must be [N, H, W, C], got shape '
                      f'{getattr(images, "shape", type(images).__name__)}')
  if not jnp.issubdtype(images.dtype, jnp.floating):
    raise JaxganError(f'augment: images must be floating point, got {images.dtype}')
  c = images.shape[-1]
  if c != 1 and c % 3 != 0:
    raise JaxganError(f'augment: images have {c} channels; expected 1 (grayscale) or '
                      'a multiple of 3 (RGB groups)')
  if jnp.ndim(p) != 0:
    raise JaxganError(f'augment: p must be a scalar, got shape {jnp.shape(p)}')
  q = debug_percentile
  if isinstance(q, numbers.Real):
    q_ok = 0 <= q <= 1
  else:
    q_ok = q is None or jnp.ndim(q) == 0
  if not q_ok:
    raise JaxganError(f'augment: debug_percentile must be None, a float in [0, 1] or '
                      f'a scalar array, got {q!r}')
  unknown = sorted(set(multipliers) - set(BGC))
  if unknown:
    raise JaxganError(f'augment: unknown ops {unknown}; valid: {sorted(BGC)}')
  bad = {k: v for k, v in multipliers.items()
         if not isinstance(v, numbers.Real) or v < 0}
  if bad:
    raise JaxganError(f'augment: probability multipliers must be floats >= 0: {bad}')


def augment(images: Array, p, key, *, debug_percentile: float | None = None,
            multipliers: Mapping[str, float] = BGC) -> Array:
  """Augments images [N, H, W, C] (float, C = 1 or 3k) with strength p.

  p: float32 scalar (may be traced), the probability of each op per image times the
  op's multiplier. key: a JAX PRNG key, the only source of randomness.
  debug_percentile: None, or q in [0, 1] for the reference's debug mode (every op
  applied with its q-quantile value); a float32 scalar array (e.g. traced, so that
  one compile serves every q) is taken unchecked. multipliers: the ops' probability
  multipliers (static Python floats; default the 'bgc' preset, all 1; ops left out
  are off).
  Returns the augmented images, same shape and dtype.
  """
  _check(images, p, debug_percentile, multipliers)
  mult = {name: float(multipliers.get(name, 0.0)) for name in BGC}
  n, _, _, c = images.shape
  x = images.astype(jnp.float32)
  draws = _Draws(key, n, _float(p), debug_percentile)
  g_inv = _geometric_matrix(draws, mult, *x.shape[1:3])
  if g_inv is not None:
    x = _resample(x, g_inv)
  c_mat = _colour_matrix(draws, mult, rgb=c > 1)
  if c_mat is not None:
    x = _recolour(x, c_mat)
  return x.astype(images.dtype)
