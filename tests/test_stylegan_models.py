"""Tests for jaxgan.models.stylegan: StyleGAN2(-ADA) G and D, and the AdaIN (StyleGAN1)
generator.

Parameter counts are pinned to NVlabs stylegan2-ada-pytorch's networks (channel_base
16384, channel_max 512, z = w = 512, 2 mapping layers, c_dim 0), the AdaIN G's to
NVlabs stylegan's G_synthesis layer list written out by hand; the big networks are
only shape-evaluated. Numerics are checked against direct numpy implementations of
the reference's definitions (upfirdn2d, its generic conv2d_resample route,
(de)modulation, the minibatch-stddev grouping) and hand-derived facts; anything
executed uses tiny channels (channel_base 64, channel_max 16, z = w = 8) and
8x8-16x16 images so the file stays fast on CPU.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import models
from jaxgan.errors import JaxganError
from jaxgan.models import stylegan

TINY = {'channel_base': 64, 'channel_max': 16}
TINY_G = dict(z_dim=8, w_dim=8, **TINY)


def _key(seed):
  # rbg keys: much cheaper to initialise on CPU than threefry (see test_models).
  return jax.random.key(seed, impl='rbg')


def _rand(shape, seed=0):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _init(module, x, seed=0, **kwargs):
  # Jitted: one compilation instead of one per eagerly dispatched op.
  return jax.jit(functools.partial(module.init, **kwargs))(_key(seed), x)


def _apply(module, variables, x, **kwargs):
  return jax.jit(functools.partial(module.apply, **kwargs))(variables, x)


# --- parameter counts ---------------------------------------------------------


def _adain_g_count(res, img_channels, c=512, w=512, map_layers=2):
  """By hand from StyleGAN1's G_synthesis (structure 'fixed'), every resolution at
  c channels (true for R <= 32 at base 16384): mapping fc: w*w + w each; every layer
  epilogue: c noise weights + c bias + StyleMod (w*2c + 2c); 4x4/Const: 16*c; every
  other layer (4x4/Conv, then Conv0_up and Conv1 per resolution) a 9*c*c conv;
  ToRGB_lod0: c*C + C."""
  mapping = map_layers * (w * w + w)
  epilogue = c + c + (w * 2 * c + 2 * c)
  layers = 2 * (int(math.log2(res)) - 1)
  return (mapping + layers * epilogue + 16 * c + (layers - 1) * 9 * c * c
          + c * img_channels + img_channels)


# The reference's counts (trainable parameters of Generator / Discriminator from
# training/networks.py, channel_base 16384, c_dim 0); the AdaIN G's: the trainable
# variables of NVlabs stylegan's G_synthesis (structure 'fixed', fmap_base 8192,
# fmap_max 512, dlatent 512; 20,735,491 / 23,030,531 / 20,734,465, run in TF1-compat,
# 2026-12-04) plus our 2-layer mapping (2 * (512 * 512 + 512) = 525,312).
@pytest.mark.parametrize('res,channels,g_expected,d_expected,adain_expected', [
    (32, 3, 19_947_539, 21_507_073, 21_260_803),
    (64, 3, 22_243_608, 23_407_361, 23_555_843),
    (32, 1, 19_943_435, 21_506_049, 21_259_777),
])
def test_param_counts_match_reference(res, channels, g_expected, d_expected,
                                      adain_expected):
  g = models.make('stylegan_generator', img_resolution=res, img_channels=channels)
  d = models.make('stylegan_discriminator', img_resolution=res,
                  img_channels=channels)
  g_vars = jax.eval_shape(lambda: g.init(_key(0), jnp.zeros((2, 512))))
  d_vars = jax.eval_shape(lambda: d.init(_key(0), jnp.zeros((4, res, res, channels))))
  assert set(g_vars) == {'params'} and set(d_vars) == {'params'}  # no buffers
  assert models.count_params(g_vars['params']) == g_expected
  assert models.count_params(d_vars['params']) == d_expected
  adain = models.make('stylegan_generator', img_resolution=res,
                      img_channels=channels, synthesis='adain')
  a_vars = jax.eval_shape(lambda: adain.init(_key(0), jnp.zeros((2, 512))))
  a_count = models.count_params(a_vars['params'])
  assert a_count == adain_expected
  if res == 32:  # all resolutions at 512 channels: the hand formula applies
    assert a_count == _adain_g_count(res, channels)


# --- upfirdn2d ----------------------------------------------------------------


def _np_upfirdn2d(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
  """Direct NHWC version of the reference's definition: zero insertion after each
  pixel, pad/crop (x0, x1, y0, y1) (x = width), a true 2-D convolution (the kernel
  flipped) over valid positions, keep every down-th pixel."""
  x0, x1, y0, y1 = pad
  n, h, w, c = x.shape
  u = np.zeros((n, h * up, w * up, c), np.float64)
  u[:, ::up, ::up] = x
  u = np.pad(u, ((0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0)),
                 (0, 0)))
  u = u[:, max(-y0, 0):u.shape[1] - max(-y1, 0), max(-x0, 0):u.shape[2] - max(-x1, 0)]
  fh, fw = f.shape
  k = np.asarray(f, np.float64)[::-1, ::-1] * gain
  out = np.zeros((n, u.shape[1] - fh + 1, u.shape[2] - fw + 1, c))
  for i in range(out.shape[1]):
    for j in range(out.shape[2]):
      out[:, i, j] = np.einsum('nabc,ab->nc', u[:, i:i + fh, j:j + fw], k)
  return out[:, ::down, ::down]


def _np_conv(x, w, stride=1, flip=False):
  """Valid NHWC correlation with an HWIO kernel (a true convolution if flip)."""
  if flip:
    w = w[::-1, ::-1]
  kh, kw = w.shape[:2]
  oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  out = np.zeros((x.shape[0], oh, ow, w.shape[3]))
  for i in range(oh):
    for j in range(ow):
      out[:, i, j] = np.einsum('nabi,abio->no', x[:, i:i + kh, j:j + kw], w)
  return out[:, ::stride, ::stride]


FIR = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64.0


@pytest.mark.parametrize('up,down,pad,gain', [
    (2, 1, (2, 1, 1, 2), 4.0),
    (1, 2, (1, 2, 0, 1), 1.0),
    (1, 1, (3, -1, -2, 2), 1.0),  # padded on some sides, cropped on others
    (2, 2, (1, 0, 2, 1), 2.0),
])
def test_upfirdn2d_matches_direct_definition(up, down, pad, gain):
  x = _rand((2, 5, 6, 3))
  f = _rand((3, 4), seed=1)  # asymmetric and non-square: catches flips and H/W swaps
  got = stylegan.upfirdn2d(jnp.asarray(x), jnp.asarray(f), up=up, down=down,
                           padding=pad, gain=gain)
  np.testing.assert_allclose(got, _np_upfirdn2d(x, f, up, down, pad, gain),
                             rtol=1e-5, atol=1e-5)


def test_upsample_downsample_helpers():
  x = _rand((1, 4, 6, 2))
  # The filter is [1,3,3,1] outer itself over 64; upsampling pads (2, 1) per axis
  # and multiplies by up**2 = 4, downsampling pads (1, 1).
  assert np.allclose(stylegan.setup_filter(), FIR)
  up = stylegan.upsample2d(jnp.asarray(x))
  assert up.shape == (1, 8, 12, 2)
  np.testing.assert_allclose(up, _np_upfirdn2d(x, FIR, 2, 1, (2, 1, 2, 1), 4.0),
                             rtol=1e-5, atol=1e-5)
  down = stylegan.downsample2d(jnp.asarray(x))
  assert down.shape == (1, 2, 3, 2)
  np.testing.assert_allclose(down, _np_upfirdn2d(x, FIR, 1, 2, (1, 1, 1, 1)),
                             rtol=1e-5, atol=1e-5)
  # A constant image stays constant away from the zero-padded border.
  ones = jnp.ones((1, 8, 8, 1))
  np.testing.assert_allclose(stylegan.upsample2d(ones)[0, 2:-2, 2:-2], 1, rtol=1e-6)
  np.testing.assert_allclose(stylegan.downsample2d(ones)[0, 1:-1, 1:-1], 1,
                             rtol=1e-6)


def test_conv2d_resample_matches_reference_generic_route():
  """The fast paths (transposed conv then FIR; FIR then strided conv; FIR
  downsample then 1x1) against the reference's generic route written out: FIR
  upsample (padding k//2 + (2, 1), gain 4) then the conv; or pad k//2 + 1, the
  conv, then FIR downsample."""
  x = _rand((2, 4, 4, 2))
  w3 = _rand((3, 3, 2, 3), seed=2)
  w1 = _rand((1, 1, 2, 3), seed=3)
  f = jnp.asarray(FIR, jnp.float32)
  # Up x2, a true convolution (the synthesis' flip_weight=False).
  got = stylegan.conv2d_resample(jnp.asarray(x), jnp.asarray(w3), f, up=2,
                                 padding=1, flip_weight=False)
  want = _np_conv(_np_upfirdn2d(x, FIR, 2, 1, (3, 2, 3, 2), 4.0), w3, flip=True)
  assert got.shape == (2, 8, 8, 3)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  # Down /2, 3x3 correlation.
  got = stylegan.conv2d_resample(jnp.asarray(x), jnp.asarray(w3), f, down=2,
                                 padding=1)
  want = _np_upfirdn2d(_np_conv(np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0))), w3),
                       FIR, 1, 2)
  assert got.shape == (2, 2, 2, 3)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  # Down /2, 1x1 (the resnet skip): padding 0 + 1.
  got = stylegan.conv2d_resample(jnp.asarray(x), jnp.asarray(w1), f, down=2)
  want = _np_upfirdn2d(_np_conv(np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0))), w1),
                       FIR, 1, 2)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _xla_fir(x, f, up=1, down=1, pad=(0, 0, 0, 0), gain=1.0):
  """upfirdn2d as XLA's per-channel convolution (what the op was before it became
  shifted slices): zero insertion and padding in one lax.pad, the flipped filter."""
  x0, x1, y0, y1 = pad
  c = x.shape[-1]
  x = jax.lax.pad(x, 0.0, [(0, 0, 0), (y0, y1 + up - 1, up - 1),
                           (x0, x1 + up - 1, up - 1), (0, 0, 0)])
  k = jnp.asarray(f, jnp.float32)[::-1, ::-1] * gain
  k = jnp.broadcast_to(k[:, :, None, None], k.shape + (1, c))
  return jax.lax.conv_general_dilated(x, k, (down, down), 'VALID',
                                      dimension_numbers=_DN, feature_group_count=c)


def _xla_conv(x, w, pad=0, stride=1, flip=False):
  w = w[::-1, ::-1] if flip else w
  return jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad)] * 2,
                                      dimension_numbers=_DN)


_DN = ('NHWC', 'HWIO', 'NHWC')
_ASYMMETRIC = np.outer([1.0, 2.0, 4.0, 1.0], [3.0, 1.0, 2.0]) / 72.0
# name -> (the op, the same op through XLA's convolutions: the reference's generic
# routes and its transposed conv over the zero-dilated input), on x [2, 6, 6, 3] and
# w [3, 3, 3, 4] (1x1 for 'down_1x1').
_RESAMPLING_ROUTES = {
    'upfirdn2d_up': (
        lambda x, w: stylegan.upfirdn2d(x, FIR, up=2, padding=(2, 1, 1, 2), gain=4.0),
        lambda x, w: _xla_fir(x, FIR, 2, 1, (2, 1, 1, 2), 4.0)),
    'upfirdn2d_asymmetric_down': (  # rank 1 (two 1-D passes), asymmetric taps
        lambda x, w: stylegan.upfirdn2d(x, _ASYMMETRIC, down=2, padding=(1, 2, 0, 1),
                                        gain=1.5),
        lambda x, w: _xla_fir(x, _ASYMMETRIC, 1, 2, (1, 2, 0, 1), 1.5)),
    'upfirdn2d_asymmetric_up': (
        lambda x, w: stylegan.upfirdn2d(x, _ASYMMETRIC, up=2, padding=(2, 1, 1, 2)),
        lambda x, w: _xla_fir(x, _ASYMMETRIC, 2, 1, (2, 1, 1, 2))),
    'upfirdn2d_traced_filter_down': (
        lambda x, w: stylegan.upfirdn2d(x, jnp.asarray(FIR[:3]) * w[0, 0, 0, 0],
                                        down=2, padding=(1, 2, 0, 1)),
        lambda x, w: _xla_fir(x, jnp.asarray(FIR[:3]) * w[0, 0, 0, 0], 1, 2,
                              (1, 2, 0, 1))),
    'conv_up': (  # the synthesis' upsampling conv: a true convolution
        lambda x, w: stylegan.conv2d_resample(x, w, FIR, up=2, padding=1,
                                              flip_weight=False),
        lambda x, w: _xla_conv(_xla_fir(x, FIR, 2, 1, (3, 2, 3, 2), 4.0), w,
                               flip=True)),
    'conv_transpose_up': (  # the transposed conv alone, both flips
        lambda x, w: stylegan._conv_transpose(x, w, stride=2, flip_weight=True),
        lambda x, w: jax.lax.conv_general_dilated(
            x, w, (1, 1), [(2, 2)] * 2, lhs_dilation=(2, 2), dimension_numbers=_DN)),
    'conv_down': (  # D's downsampling 3x3 conv
        lambda x, w: stylegan.conv2d_resample(x, w, FIR, down=2, padding=1),
        lambda x, w: _xla_fir(_xla_conv(x, w, pad=2), FIR, 1, 2)),
    'conv_down_strided': (  # the strided conv after the FIR filter
        lambda x, w: stylegan._conv(x, w, stride=2, padding=(1, 1)),
        lambda x, w: _xla_conv(x, w, pad=1, stride=2)),
}


@pytest.mark.parametrize('route', sorted(_RESAMPLING_ROUTES))
def test_resampling_ops_equal_xla_convolutions_to_second_order(route):
  """The resampling ops as computed (shifted-slice FIR filters with their own
  gradients, phase-split transposed convs, im2col strided convs), placed on CPU,
  against the same ops through XLA's convolutions: outputs, first derivatives (x
  and w), and the second derivatives that R1 and the path-length penalty take
  (d/dw and d/dx of |d<out, v>/dx|^2)."""
  from jaxgan.models import cpu_conv
  ours, xla = _RESAMPLING_ROUTES[route]
  x = jnp.asarray(_rand((2, 6, 6, 3)), jnp.float32)
  w = jnp.asarray(_rand((3, 3, 3, 4), seed=2), jnp.float32)
  v = jnp.asarray(_rand(xla(x, w).shape, seed=3), jnp.float32)

  def derivatives(op):
    first = lambda x_, w_: jnp.sum(op(x_, w_) * v)
    r1 = lambda x_, w_: jnp.sum(jnp.square(jax.grad(first)(x_, w_)))
    return (op(x, w), *jax.grad(first, (0, 1))(x, w), *jax.grad(r1, (0, 1))(x, w))

  with cpu_conv.placement('cpu'):
    got = jax.jit(lambda: derivatives(ours))()
  want = jax.jit(lambda: derivatives(xla))()
  for what, a, b in zip(('out', 'dx', 'dw', 'd2x', 'd2w'), got, want):
    assert a.shape == b.shape, what
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(jnp.abs(b).max()),
                               err_msg=f'{route}: {what}')


# --- modulation and equalized learning rate ------------------------------------


def test_demodulation_gives_unit_norm_weights():
  weight = _rand((3, 3, 5, 4))
  styles = _rand((2, 5), seed=1) * np.array([[0.1, 1, 10, 3, 0.5]], np.float32)
  w = np.asarray(stylegan.modulate_weights(jnp.asarray(weight), jnp.asarray(styles)))
  assert w.shape == (2, 3, 3, 5, 4)
  norms = np.sqrt(np.square(w).sum(axis=(1, 2, 3)))  # per sample, output channel
  np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
  raw = np.asarray(stylegan.modulate_weights(jnp.asarray(weight), jnp.asarray(styles),
                                             demodulate=False))
  np.testing.assert_allclose(raw[1, 2, 0, 3, 1], weight[2, 0, 3, 1] * styles[1, 3],
                             rtol=1e-6)


@pytest.mark.parametrize('fused', [True, False])
def test_modulated_conv_matches_per_sample_conv(fused):
  x = _rand((3, 5, 5, 4))
  weight = _rand((3, 3, 4, 2), seed=1)
  styles = _rand((3, 4), seed=2) + 1
  got = stylegan.modulated_conv2d(jnp.asarray(x), jnp.asarray(weight),
                                  jnp.asarray(styles), padding=1, fused=fused)
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  for n in range(3):
    wn = weight * styles[n][None, None, :, None]
    wn = wn / np.sqrt(np.square(wn).sum(axis=(0, 1, 2)) + 1e-8)
    np.testing.assert_allclose(got[n], _np_conv(xp[n:n + 1], wn)[0], rtol=1e-4,
                               atol=1e-4)


def test_equalized_lr_dense():
  layer = stylegan.FullyConnectedLayer(64, lr_multiplier=0.01)
  variables = _init(layer, jnp.zeros((1, 256)))
  kernel = np.asarray(variables['params']['kernel'])
  assert kernel.shape == (256, 64)
  # Stored N(0, 1) / lr_mul: std ~100 (16384 draws: the estimate is within 3%).
  assert 97 < kernel.std() < 103
  params = {'kernel': kernel, 'bias': np.full((64,), 2.0, np.float32)}
  x = np.zeros((1, 256), np.float32)
  x[0, 5] = 1.0
  out = layer.apply({'params': params}, jnp.asarray(x))
  # Runtime weight = stored * lr_mul / sqrt(fan_in) = stored * 0.01 / 16; the bias
  # is used times lr_mul.
  np.testing.assert_allclose(out[0], kernel[5] * 0.01 / 16 + 0.02, rtol=1e-5,
                             atol=1e-6)


def test_equalized_lr_conv():
  layer = stylegan.Conv2dLayer(3, 3)
  variables = _init(layer, jnp.zeros((1, 5, 5, 4)))
  kernel = np.asarray(variables['params']['kernel'])
  assert kernel.shape == (3, 3, 4, 3)
  params = {'kernel': kernel, 'bias': np.array([1.0, 2.0, 3.0], np.float32)}
  x = np.zeros((1, 5, 5, 4), np.float32)
  x[0, 2, 2, 1] = 1.0  # a delta at the centre, channel 1
  out = np.asarray(layer.apply({'params': params}, jnp.asarray(x)))
  # Correlation with padding 1: output (1, 1) sees the delta under tap (2, 2);
  # runtime scale 1/sqrt(fan_in) = 1/sqrt(4*3*3) = 1/6.
  np.testing.assert_allclose(out[0, 1, 1], kernel[2, 2, 1] / 6 + [1, 2, 3],
                             rtol=1e-5)
  np.testing.assert_allclose(out[0, 0, 0], [1, 2, 3], rtol=1e-6)  # out of reach


# --- mapping and truncation ----------------------------------------------------


@pytest.fixture(scope='module')
def tiny_g():
  g = models.make('stylegan_generator', img_resolution=8, img_channels=3, **TINY_G)
  return g, _init(g, jnp.zeros((2, 8)))


def _map(g, variables, z, **kwargs):
  return jax.jit(functools.partial(g.apply, method='mapping', **kwargs))(variables, z)


def test_mapping_truncation(tiny_g):
  g, variables = tiny_g
  assert g.num_ws == stylegan.num_ws_for(8) == 4  # convs 1 + 2, plus the last toRGB
  z = jnp.asarray(_rand((3, 8)))
  w_avg = jnp.asarray(_rand((8,), seed=5))
  plain = np.asarray(_map(g, variables, z))
  assert plain.shape == (3, 4, 8)
  assert (plain == plain[:, :1]).all()  # one w broadcast to every layer
  # psi = 0 is w_avg exactly; psi = 1 never reads w_avg.
  zero = _map(g, variables, z, w_avg=w_avg, psi=0.0)
  assert np.array_equal(zero, np.broadcast_to(w_avg, (3, 4, 8)))
  one = _map(g, variables, z, w_avg=w_avg * 1e6, psi=1.0)
  assert np.array_equal(one, plain)
  # A cutoff truncates only the first ws: w_avg + psi * (w - w_avg).
  cut = np.asarray(_map(g, variables, z, w_avg=w_avg, psi=0.5, truncation_cutoff=2))
  np.testing.assert_allclose(cut[:, :2], w_avg + 0.5 * (plain[:, :2] - w_avg),
                             rtol=1e-6, atol=1e-6)
  assert np.array_equal(cut[:, 2:], plain[:, 2:])
  # z is normalised by its second moment: its scale does not matter.
  np.testing.assert_allclose(_map(g, variables, 7 * z), plain, rtol=1e-4, atol=1e-5)
  with pytest.raises(JaxganError, match='w_avg'):
    g.apply(variables, z, method='mapping', psi=0.5)


def test_noise_modes(tiny_g):
  g, variables = tiny_g
  z = jnp.asarray(_rand((2, 8)))
  names = [jax.tree_util.keystr(p) for p, _ in
           jax.tree_util.tree_leaves_with_path(variables['params'])]
  # One strength per conv layer (num_ws - 1 of them); const noise is no parameter.
  assert sum('noise_strength' in n for n in names) == g.num_ws - 1
  assert {n.split("'")[-2] for n in names} == {'kernel', 'bias', 'noise_strength',
                                                'const'}

  @jax.jit
  def modes(params, key):  # one compilation: every mode, one noise key
    return {mode: g.apply({'params': params}, z, noise_mode=mode,
                          rngs={'noise': key})
            for mode in stylegan.NOISE_MODES}

  def run(params, mode, seed):
    return np.asarray(modes(params, _key(seed))[mode])

  # Strengths start at 0: noise has no effect yet.
  params = variables['params']
  assert np.array_equal(run(params, 'random', 1), run(params, 'none', 1))
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: jnp.ones_like(v) if 'noise_strength' in jax.tree_util.keystr(p)
      else v, params)
  const_a, const_b = run(params, 'const', 1), run(params, 'const', 2)
  rand_a, rand_b = run(params, 'random', 1), run(params, 'random', 2)
  none = run(params, 'none', 1)
  assert np.array_equal(const_a, const_b)  # deterministic, whatever the key
  assert not np.allclose(rand_a, rand_b)
  assert not np.allclose(rand_a, none)
  assert not np.allclose(const_a, none)
  with pytest.raises(JaxganError, match='noise_mode'):
    g.apply(variables, z, noise_mode='fixed')


# --- shapes -----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('res', [8, 16])
@pytest.mark.parametrize('synthesis', ['modulated', 'adain'])
def test_generator_shapes(res, synthesis):
  g = models.make('stylegan_generator', img_resolution=res, img_channels=3,
                  synthesis=synthesis, **TINY_G)
  z = jnp.asarray(_rand((2, 8)))
  variables = _init(g, z)

  @jax.jit
  def run(variables, z):  # one compilation for every call below
    ws = g.apply(variables, z, method='mapping')
    return (ws,
            g.apply(variables, z, noise_mode='const', train=False),
            g.apply(variables, z, noise_mode='const', train=True),
            g.apply(variables, ws, method='synthesize', noise_mode='const'))

  ws, inference, training, synthesized = run(variables, z)
  assert ws.shape == (2, 2 * int(math.log2(res)) - 2, 8) == (2, g.num_ws, 8)
  for images in (inference, training):
    assert images.shape == (2, res, res, 3) and images.dtype == jnp.float32
  # Per-sample grouped weights (inference) and scaled activations (training) are
  # the same computation.
  np.testing.assert_allclose(training, inference, rtol=1e-4, atol=1e-4)
  # mapping then synthesize is the whole generator (what style mixing builds on).
  np.testing.assert_allclose(synthesized, inference, rtol=1e-5, atol=1e-5)


def test_generator_bfloat16_outputs_float32():
  g = models.make('stylegan_generator', img_resolution=8, img_channels=1,
                  dtype=jnp.bfloat16, **TINY_G)
  z = jnp.asarray(_rand((2, 8)))
  out = _apply(g, _init(g, z), z, rngs={'noise': _key(1)})
  assert out.shape == (2, 8, 8, 1) and out.dtype == jnp.float32


@pytest.mark.parametrize('res', [4, 8, 16])
@pytest.mark.parametrize('architecture', ['resnet', 'orig'])
def test_discriminator_shapes(res, architecture):
  d = models.make('stylegan_discriminator', img_resolution=res, img_channels=3,
                  architecture=architecture, **TINY)
  x = jnp.asarray(_rand((4, res, res, 3)))
  variables = _init(d, x)
  assert ('skip' in variables['params'].get(f'b{res}', {})) == (
      architecture == 'resnet' and res > 4)
  logits = _apply(d, variables, x, train=True)
  assert logits.shape == (4,) and logits.dtype == jnp.float32


# --- AdaIN synthesis (StyleGAN1's G_synthesis, structure 'fixed') -------------------

# The stylegan:demo shape: 32x32x1, channel_base 512, channel_max 64, z = w = 64.
DEMO_ADAIN = dict(img_resolution=32, img_channels=1, z_dim=64, w_dim=64,
                  channel_base=512, channel_max=64, synthesis='adain')


def test_adain_param_count_from_stylegan1_layer_list():
  """The demo's AdaIN G counted from G_synthesis' layer list: channels
  min(512 // R, 64) = 64, 64, 32, 16 at R = 4, 8, 16, 32; each layer epilogue has C
  noise weights, C biases and a StyleMod dense w (64) -> 2C with 2C biases."""
  epilogue = lambda c: c + c + (64 * 2 * c + 2 * c)
  expected = (2 * (64 * 64 + 64)                  # mapping fc0, fc1
              + 4 * 4 * 64 + epilogue(64)         # 4x4/Const
              + 3 * 3 * 64 * 64 + epilogue(64)    # 4x4/Conv
              + 3 * 3 * 64 * 64 + epilogue(64)    # 8x8/Conv0_up
              + 3 * 3 * 64 * 64 + epilogue(64)    # 8x8/Conv1
              + 3 * 3 * 64 * 32 + epilogue(32)    # 16x16/Conv0_up
              + 3 * 3 * 32 * 32 + epilogue(32)    # 16x16/Conv1
              + 3 * 3 * 32 * 16 + epilogue(16)    # 32x32/Conv0_up
              + 3 * 3 * 16 * 16 + epilogue(16)    # 32x32/Conv1
              + 16 * 1 + 1)                       # ToRGB_lod0 (1x1, bias)
  g = models.make('stylegan_generator', **DEMO_ADAIN)
  shapes = jax.eval_shape(g.init, _key(0), jnp.zeros((1, 64)))['params']
  assert models.count_params(shapes) == expected == 200_977
  syn = shapes['synthesis']
  assert {b: set(layers) for b, layers in syn.items()} == {
      'b4': {'const', 'conv'}, 'b8': {'conv0_up', 'conv1'},
      'b16': {'conv0_up', 'conv1'}, 'b32': {'conv0_up', 'conv1'},
      'torgb': {'kernel', 'bias'}}
  assert syn['b4']['const']['const'].shape == (4, 4, 64)
  assert syn['b16']['conv0_up']['noise_strength'].shape == (32,)  # per channel
  assert syn['b32']['conv1']['affine']['kernel'].shape == (64, 32)
  assert syn['torgb']['kernel'].shape == (1, 1, 16, 1)


def test_num_ws_per_synthesis():
  for res in (4, 8, 32):
    log2 = int(math.log2(res))
    # StyleGAN1: two styled layer epilogues per resolution; its toRGB has no style.
    assert stylegan.num_ws_for(res, 'adain') == 2 * (log2 - 1)
    # StyleGAN2: 1 conv at 4x4, 2 per higher resolution, and the last toRGB.
    assert stylegan.num_ws_for(res, 'modulated') == 1 + 2 * (log2 - 2) + 1
    for synthesis in stylegan.SYNTHESES:
      g = models.make('stylegan_generator', img_resolution=res, synthesis=synthesis,
                      **TINY_G)
      assert g.num_ws == stylegan.num_ws_for(res, synthesis)
    g = models.make('stylegan_generator', img_resolution=res, synthesis='adain',
                    **TINY_G)
    shapes = jax.eval_shape(g.init, _key(0), jnp.zeros((1, 8)))['params']
    paths = [jax.tree_util.keystr(p)
             for p, _ in jax.tree_util.tree_leaves_with_path(shapes)]
    styled = [p for p in paths if 'affine' in p and 'kernel' in p]
    assert len(styled) == g.num_ws  # one w per styled layer


def test_adain_demo_forward_is_finite_and_reads_every_style():
  """Random weights (biases too; init and noise are checked below) at the demo's
  shape: finite images, and a gradient from every one of the ws."""
  g = models.make('stylegan_generator', **DEMO_ADAIN)
  shapes = jax.eval_shape(g.init, _key(0), jnp.zeros((1, 64)))
  leaves, tree = jax.tree_util.tree_flatten(shapes)
  variables = jax.tree_util.tree_unflatten(
      tree, [_rand(leaf.shape, seed=i) for i, leaf in enumerate(leaves)])
  ws = jnp.asarray(_rand((2, g.num_ws, 64), seed=100))  # a different w per layer
  y = jnp.asarray(_rand((2, 32, 32, 1), seed=101))

  @jax.jit
  def run(variables, ws):  # one compilation: the images and their pull-back to ws
    images, pull_back = jax.vjp(lambda ws: g.apply(
        variables, ws, method='synthesize', noise_mode='none'), ws)
    return images, pull_back(y)[0]

  images, grads = run(variables, ws)
  assert images.shape == (2, 32, 32, 1) and images.dtype == jnp.float32
  assert np.isfinite(images).all() and np.asarray(images).std() > 0
  per_style = np.abs(np.asarray(grads)).sum(axis=(0, 2))  # [num_ws]
  assert per_style.shape == (8,) and (per_style > 0).all(), per_style


def test_blur2d_by_hand():
  # [1, 2, 1] outer itself / 16, zero padding: on a 3x3 of ones a corner sees
  # 4 + 2 + 2 + 1 = 9 sixteenths, an edge 4 + 3*2 + 2*1 = 12, the centre all 16.
  x = np.ones((1, 3, 3, 2), np.float32)
  x[..., 1] = 2.0
  want = np.array([[9, 12, 9], [12, 16, 12], [9, 12, 9]], np.float32) / 16
  got = np.asarray(jax.jit(stylegan.blur2d)(jnp.asarray(x)))
  np.testing.assert_allclose(got[0, :, :, 0], want, rtol=1e-6)
  np.testing.assert_allclose(got[0, :, :, 1], 2 * want, rtol=1e-6)
  # A delta spreads into the filter itself.
  x = np.zeros((1, 5, 5, 1), np.float32)
  x[0, 2, 2, 0] = 16.0
  got = np.asarray(stylegan.blur2d(jnp.asarray(x)))[0, :, :, 0]
  np.testing.assert_allclose(got[1:4, 1:4], [[1, 2, 1], [2, 4, 2], [1, 2, 1]],
                             rtol=1e-6)
  assert not got[0].any() and not got[:, 0].any()


def _np_blur(x):
  f = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
  xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h, w = x.shape[1:3]
  return sum(f[a, b] * xp[:, a:a + h, b:b + w] for a in range(3) for b in range(3))


def _np_layer_epilogue(x, noise, strength, bias, w, affine_kernel, affine_bias):
  """G_synthesis' layer_epilogue from its formulas: apply_noise (per-channel weight),
  apply_bias, leaky_relu 0.2 (its act: no gain, the sqrt(2) is in get_weight),
  instance_norm (eps 1e-8), style_mod (dense gain 1 with use_wscale: weight /
  sqrt(fan_in); style [N, 2, C]: scales then biases)."""
  x = x + noise[None, :, :, None] * strength
  x = x + bias
  x = np.maximum(x, 0.2 * x)
  x = x - x.mean(axis=(1, 2), keepdims=True)
  x = x / np.sqrt(np.square(x).mean(axis=(1, 2), keepdims=True) + 1e-8)
  style = w @ (affine_kernel / np.sqrt(w.shape[1])) + affine_bias
  c = x.shape[-1]
  return x * (style[:, None, None, :c] + 1) + style[:, None, None, c:]


@pytest.mark.parametrize('op', ['conv', 'up'])
def test_adain_layer_against_numpy(op):
  """One AdaIN layer: its op (a 3x3 conv with get_weight's runtime scale
  sqrt(2) / sqrt(9 * in); for 'up' first x2 nearest upscaling, after it the
  [1, 2, 1] blur), then the layer epilogue, all in numpy."""
  in_ch, c, w_dim, res = 2, 3, 5, 4 if op == 'conv' else 8
  x = _rand((2, 4, 4, in_ch))
  w = _rand((2, w_dim), seed=1)
  params = {'kernel': _rand((3, 3, in_ch, c), seed=2),
            'noise_strength': _rand((c,), seed=3), 'bias': _rand((c,), seed=4),
            'affine': {'kernel': _rand((w_dim, 2 * c), seed=5),
                       'bias': _rand((2 * c,), seed=6) * 0.3}}
  noise = _rand((res, res), seed=7)
  layer = stylegan.AdaINLayer(c, res, op)
  got = jax.jit(functools.partial(layer.apply, noise_mode='const'))(
      {'params': params}, jnp.asarray(x), jnp.asarray(w),
      buffers={'noise_const': jnp.asarray(noise)})
  h = x.astype(np.float64)
  if op == 'up':
    h = h.repeat(2, axis=1).repeat(2, axis=2)
  h = np.pad(h, ((0, 0), (1, 1), (1, 1), (0, 0)))
  h = _np_conv(h, params['kernel'] * math.sqrt(2) / math.sqrt(9 * in_ch))
  if op == 'up':
    h = _np_blur(h)
  want = _np_layer_epilogue(h, noise, params['noise_strength'], params['bias'], w,
                            params['affine']['kernel'], params['affine']['bias'])
  assert got.shape == (2, res, res, c)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_fused_upscale_conv_is_the_references_transposed_conv():
  """From 128x128 outputs StyleGAN1 fuses upscale and conv: the 3x3 weight padded to
  4x4 and its four shifts summed, then conv2d_transpose with stride 2 and 'SAME'
  padding: input pixel i adds k[a] x[i] to output 2i - 1 + a (per axis)."""
  x = _rand((1, 3, 4, 2))
  weight = _rand((3, 3, 2, 3), seed=1)
  wp = np.pad(weight, ((1, 1), (1, 1), (0, 0), (0, 0)))
  k = wp[1:, 1:] + wp[:-1, 1:] + wp[1:, :-1] + wp[:-1, :-1]
  want = np.zeros((1, 6, 8, 3))
  for i in range(3):
    for j in range(4):
      for a in range(4):
        for b in range(4):
          oi, oj = 2 * i - 1 + a, 2 * j - 1 + b
          if 0 <= oi < 6 and 0 <= oj < 8:
            want[0, oi, oj] += x[0, i, j] @ k[a, b]
  got = stylegan.upscale2d_conv2d(jnp.asarray(x), jnp.asarray(weight), fused=True)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert stylegan.FUSED_UPSCALE_MIN_RES == 128  # the reference's 'auto' threshold


def test_adain_init_noise_modes_and_buffers():
  """At init the 4x4 constant is ones and the per-channel noise strengths 0. With
  the strengths set to ones: 'const' is one fixed draw per layer, laid out as
  `default_buffers(R, 'adain')`; 'random' noise is drawn and used."""
  layout = jax.eval_shape(lambda: stylegan.default_buffers(8, 'adain'))
  assert jax.tree.map(lambda a: a.shape, layout) == {
      'b4': {'const': {'noise_const': (4, 4)}, 'conv': {'noise_const': (4, 4)}},
      'b8': {'conv0_up': {'noise_const': (8, 8)}, 'conv1': {'noise_const': (8, 8)}}}
  g = models.make('stylegan_generator', img_resolution=4, img_channels=1,
                  synthesis='adain', **TINY_G)
  z = jnp.asarray(_rand((2, 8)))
  strengths = lambda params: [
      leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params)
      if 'noise_strength' in jax.tree_util.keystr(path)]

  @jax.jit
  def run(key):  # one compilation for init and every mode
    init = g.init(key, z)['params']
    params = jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.ones_like(v) if 'noise_strength' in jax.tree_util.keystr(p)
        else v, init)
    out = lambda mode, **kw: g.apply({'params': params}, z, noise_mode=mode,
                                     rngs={'noise': key}, **kw)
    bufs = stylegan.default_buffers(4, 'adain')
    changed = {'b4': {'const': bufs['b4']['const'],
                      'conv': {'noise_const': -bufs['b4']['conv']['noise_const']}}}
    return init, {'const': out('const'), 'const_bufs': out('const', buffers=bufs),
                  'const_changed': out('const', buffers=changed),
                  'random': out('random'), 'none': out('none')}

  init, a = run(_key(1))
  syn = init['synthesis']
  np.testing.assert_array_equal(syn['b4']['const']['const'], np.ones((4, 4, 16)))
  assert [s.shape for s in strengths(syn)] == [(16,), (16,)]
  assert not any(np.asarray(s).any() for s in strengths(syn))
  a = {k: np.asarray(v) for k, v in a.items()}
  # The defaults given as buffers: the same draws, and so the same whatever the key.
  np.testing.assert_allclose(a['const'], a['const_bufs'], rtol=1e-6, atol=1e-6)
  assert not np.allclose(a['const'], a['const_changed'])
  assert not np.allclose(a['const'], a['none'])
  assert not np.allclose(a['random'], a['none'])
  assert not np.allclose(a['random'], a['const'])


# --- minibatch stddev ---------------------------------------------------------------


def test_minibatch_stddev():
  mbstd = jax.jit(stylegan.minibatch_stddev, static_argnums=(1, 2))  # not one compile per op
  x = np.repeat(_rand((1, 4, 4, 6)), 4, axis=0)
  out = np.asarray(mbstd(jnp.asarray(x), 4, 1))
  assert out.shape == (4, 4, 4, 7)
  np.testing.assert_array_equal(out[..., :6], x)
  # Identical samples: zero variance, so the feature is sqrt(0 + 1e-8) = 1e-4.
  np.testing.assert_allclose(out[..., 6], 1e-4, rtol=1e-5)
  # Groups are strided: with N=4 and G=2, samples (0, 2) and (1, 3) (contiguous
  # groups would be (0, 1) and (2, 3)). Sample 1 differs from the rest by 0.6
  # everywhere: the stddev of two values is half their distance.
  x = np.repeat(_rand((1, 2, 2, 2)), 4, axis=0)
  x[1] += 0.6
  out = np.asarray(mbstd(jnp.asarray(x), 2, 1))
  np.testing.assert_allclose(out[[0, 2], ..., 2], 1e-4, rtol=1e-5)
  np.testing.assert_allclose(out[[1, 3], ..., 2], math.sqrt(0.3 ** 2 + 1e-8),
                             rtol=1e-5)
  # Two features: each from its own half of the channels.
  x = np.zeros((2, 1, 1, 4), np.float32)
  x[1, ..., 2:] = 2.0
  out = np.asarray(mbstd(jnp.asarray(x), 4, 2))  # G = min(4, 2)
  np.testing.assert_allclose(out[:, 0, 0, 4:], [[1e-4, 1.0], [1e-4, 1.0]],
                             rtol=1e-5)
  with pytest.raises(JaxganError, match='group size 4 does not divide the batch '
                                        'size 6'):
    stylegan.minibatch_stddev(jnp.zeros((6, 4, 4, 2)), 4, 1)


# --- factories --------------------------------------------------------------------


@pytest.mark.parametrize('name,kwargs,fragment', [
    ('stylegan_generator', {'img_resolution': 12}, 'img_resolution=12'),
    ('stylegan_generator', {'img_resolution': 2}, 'img_resolution=2'),
    ('stylegan_generator', {'img_resolution': '8'}, "img_resolution='8'"),
    ('stylegan_generator', {'img_resolution': 8, 'img_channels': 2}, 'img_channels=2'),
    ('stylegan_generator', {'img_resolution': 8, 'synthesis': 'style'},
     "synthesis='style'"),
    ('stylegan_generator', {'img_resolution': 8, 'synthesis': 'adain',
                            'conv_clamp': 1.0}, 'conv_clamp=1.0'),
    ('stylegan_discriminator', {'img_resolution': 24}, 'img_resolution=24'),
    ('stylegan_discriminator', {'img_resolution': 8, 'img_channels': 4},
     'img_channels=4'),
    ('stylegan_discriminator', {'img_resolution': 8, 'architecture': 'skip'},
     "architecture='skip'"),
])
def test_bad_factory_arguments(name, kwargs, fragment):
  with pytest.raises(JaxganError) as info:
    models.make(name, **kwargs)
  message = str(info.value)
  assert fragment in message and '\n' not in message


def test_registered():
  assert isinstance(models.make('stylegan_generator', img_resolution=8),
                    stylegan.StyleGANGenerator)
  assert isinstance(models.make('stylegan_discriminator', img_resolution=8),
                    stylegan.StyleGANDiscriminator)
