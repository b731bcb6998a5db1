"""The promise: jaxgan.ada.augment is NVlabs stylegan2-ada-pytorch's AugmentPipe with
the 'bgc' preset, pinned by numbers the reference itself computed.

tests/fixtures/ada_reference.npz holds the reference's outputs (made by
tests/fixtures/make_ada_reference.py, which runs the reference on this file's
`formula_images` for this file's cases; see REFERENCE at the bottom):

* debug mode (every op applied with the q-quantile of its distribution) for the whole
  preset at several q, on RGB and grayscale images, and for each op alone;
* random mode at p = 0.6: the reference's own draws (recorded there, replayed here in
  place of ours), so the gating by p, the identity values of the ops not applied, the
  pre/post rotation split and per-image transforms in one batch are the reference's.

Then, without the reference: p = 0 is the identity and p = 1 changes every image (one
compile, p traced), the gradient is the transpose of the (affine) map, under vmap
too, and the gradient of a gradient is right (R1 through D(augment(x))), 6 channels
are two RGB groups sharing one transform, the dtype is kept, and bad inputs fail with
one line.
"""

import functools
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import ada
from jaxgan.errors import JaxganError

# One worker for the file: its tests share compiled functions (~1 s of compile each).
pytestmark = pytest.mark.xdist_group('ada')

FIXTURE = Path(__file__).parent / 'fixtures' / 'ada_reference.npz'
ATOL = 1e-5  # times max(1, largest |reference value|) of the output compared


def formula_images(shape):
  """Images [N, H, W, C] (NHWC) = 0.9 sin(1 + 0.37 k) over the row-major flat index k
  (the reference got the NCHW transpose)."""
  k = np.arange(math.prod(shape), dtype=np.float64)
  return (0.9 * np.sin(1 + 0.37 * k)).reshape(shape).astype(np.float32)


# Debug-mode cases in groups of one image shape, each group one compile (q traced):
# group -> (image shape, percentiles, {case: multipliers}). Non-square sizes, so that
# x / y mix-ups show; q = 0 or 1 is left out (the Gaussian ops' quantiles are infinite
# there). bgc at q = 0.02: zoom-outs (scale and aniso each 2^-0.29) and a rotation by
# -0.96 pi, the widest margins short of the clamp; at q = 0.1 the y margin clamps at
# the image size and zeros come in from beyond the padded image.
DEBUG_GROUPS = {
    'rgb': ((2, 12, 16, 3), (0.1, 0.25, 0.5, 0.9), {'bgc': ada.BGC}),
    'gray': ((2, 12, 16, 1), (0.02, 0.1, 0.25, 0.5, 0.9), {'bgc': ada.BGC}),
    'geometric': ((1, 8, 12, 1), (0.3, 0.8), {op: {op: 1} for op in ada.GEOMETRIC}),
    'colour_rgb': ((1, 4, 4, 3), (0.3, 0.8), {op: {op: 1} for op in ada.COLOUR}),
    # (hue and saturation are RGB only: the reference leaves grayscale images alone)
    'colour_gray': ((1, 4, 4, 1), (0.3, 0.8), {op: {op: 1} for op in ada.COLOUR}),
}
# case name -> (group, case, q); the fixture's key is '<name>.out'.
DEBUG_CASES = {f'{group}.{case}.q{round(q * 100)}': (group, case, q)
               for group, (_, qs, cases) in DEBUG_GROUPS.items()
               for case in cases for q in qs}
# name -> (image shape, p): random mode, replaying the reference's draws.
RANDOM_CASES = {'random_rgb': ((4, 12, 16, 3), 0.6)}


@functools.cache
def reference():
  with np.load(FIXTURE, allow_pickle=False) as f:
    return dict(f)


def assert_matches(ours, ref, what):
  ours = np.asarray(ours, np.float64)
  assert ours.shape == ref.shape, (what, ours.shape, ref.shape)
  assert np.isfinite(ours).all(), what
  atol = ATOL * max(1.0, float(np.abs(ref).max()))
  np.testing.assert_allclose(ours, ref, rtol=0, atol=atol, err_msg=what)


# --- against the reference ------------------------------------------------------


@functools.cache
def _debug_fn(group):
  """x, q -> {case: our output}: all of a group's cases, jitted once, q traced."""
  _, _, cases = DEBUG_GROUPS[group]

  def run(x, q):
    return {case: ada.augment(x, jnp.float32(1), jax.random.key(0), debug_percentile=q,
                              multipliers=mult) for case, mult in cases.items()}

  return jax.jit(run)


@functools.cache
def _debug_outputs(group, q):
  shape = DEBUG_GROUPS[group][0]
  return _debug_fn(group)(jnp.asarray(formula_images(shape)), jnp.float32(q))


@pytest.mark.parametrize('name', list(DEBUG_CASES))
def test_debug_mode_matches_reference(name):
  group, case, q = DEBUG_CASES[name]
  out = _debug_outputs(group, q)[case]
  assert out.dtype == jnp.float32
  assert_matches(out, reference()[f'{name}.out'], name)


@pytest.mark.parametrize('name', list(RANDOM_CASES))
def test_random_mode_with_the_references_draws_matches_it(name, monkeypatch):
  shape, p = RANDOM_CASES[name]
  ref = reference()

  def replay(self, op, normal, size):
    del normal
    draws = ref[f'{name}.{op}']
    assert draws.shape == (self.n, size + 1), (op, draws.shape)
    return jnp.asarray(draws[:, :-1]), jnp.asarray(draws[:, -1:])

  monkeypatch.setattr(ada._Draws, '_raw', replay)
  run = jax.jit(lambda x: ada.augment(x, jnp.float32(p), jax.random.key(0)))
  out = run(jnp.asarray(formula_images(shape)))
  assert_matches(out, ref[f'{name}.out'], name)


# --- properties -----------------------------------------------------------------

AUGMENT = jax.jit(ada.augment)  # p and key traced: one compile per image shape


def test_p_is_traced_p0_is_identity_p1_changes_every_image():
  x = jnp.asarray(formula_images((4, 12, 16, 3)))
  key = jax.random.key(1)
  np.testing.assert_allclose(AUGMENT(x, jnp.float32(0), key), x, rtol=0, atol=1e-5)
  compiled = AUGMENT._cache_size()  # pylint: disable=protected-access
  changed = np.abs(np.asarray(AUGMENT(x, jnp.float32(1), key)) - np.asarray(x))
  assert (changed.mean(axis=(1, 2, 3)) > 0.1).all(), changed.mean(axis=(1, 2, 3))
  assert AUGMENT._cache_size() == compiled  # pylint: disable=protected-access


def test_gradients_are_the_transposed_map():
  """On [2, 5, 7, 3] at p = 1 (an affine map x -> J x + b, J built here from the
  forward map alone, on the unit basis):
  * the backward pass (a block scatter, written apart from the forward gathers) is
    J^T, its result finite, also under vmap;
  * the gradient of a function of that gradient, as R1 takes it through
    D(augment(x)), exists and is right: d/dv 0.5 ||J^T v||^2 = J J^T v."""
  shape = (2, 5, 7, 3)
  size = math.prod(shape)
  key = jax.random.key(3)

  def f(x):
    return ada.augment(x, jnp.float32(1), key)

  def grads(basis, v):
    jac = (jax.vmap(f)(basis) - f(jnp.zeros(shape))).reshape(size, size).T  # [out, in]
    _, vjp = jax.vjp(f, jnp.zeros(shape))
    vjps = jax.vmap(lambda e: vjp(e)[0])(basis).reshape(size, size)  # rows: J^T e_i
    second = jax.grad(lambda v: 0.5 * jnp.sum(vjp(v)[0] ** 2))(v)
    return jac, vjps, second

  basis = jnp.eye(size, dtype=jnp.float32).reshape((size,) + shape)
  v = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
  jac, vjps, second = (np.asarray(a, np.float64)
                       for a in jax.jit(grads)(basis, jnp.asarray(v)))
  assert np.isfinite(vjps).all() and np.abs(jac).max() > 0.5
  np.testing.assert_allclose(vjps, jac, rtol=0, atol=1e-5)  # row i of J^T = column i
  np.testing.assert_allclose(np.ravel(second), jac @ (jac.T @ v.ravel()), rtol=0,
                             atol=1e-4)


def test_six_channels_are_two_rgb_groups_with_one_transform():
  """pix2pix's (input, output) pairs: the same geometry and colour matrix for both."""
  x = jnp.asarray(formula_images((4, 12, 16, 6)))
  key = jax.random.key(2)
  out = AUGMENT(x, jnp.float32(1), key)
  for half in (slice(0, 3), slice(3, 6)):
    alone = AUGMENT(x[..., half], jnp.float32(1), key)
    np.testing.assert_allclose(out[..., half], alone, rtol=0, atol=1e-6)


def test_dtype_is_kept():
  x = jnp.asarray(formula_images((1, 4, 4, 3)), jnp.bfloat16)
  out = _debug_fn('colour_rgb')(x, jnp.float32(0.3))['brightness']
  assert out.dtype == jnp.bfloat16 and out.shape == x.shape


@pytest.mark.parametrize('kwargs,message', [
    ({'images': np.zeros((2, 8, 8))}, 'must be [N, H, W, C]'),
    ({'images': np.zeros((2, 8, 8, 2), np.float32)}, 'have 2 channels'),
    ({'images': np.zeros((2, 8, 8, 3), np.int32)}, 'floating point'),
    ({'p': np.zeros(2, np.float32)}, 'p must be a scalar'),
    ({'debug_percentile': 1.5}, 'debug_percentile must be'),
    ({'multipliers': {'xflip': 1, 'cutout': 1}}, "unknown ops ['cutout']"),
    ({'multipliers': {'xflip': -1}}, 'multipliers must be floats >= 0'),
])
def test_bad_inputs_fail_with_one_line(kwargs, message):
  args = {'images': np.zeros((2, 8, 8, 3), np.float32), 'p': 0.5,
          'key': jax.random.key(0)} | kwargs
  images, p, key = args.pop('images'), args.pop('p'), args.pop('key')
  with pytest.raises(JaxganError) as err:
    ada.augment(images, p, key, **args)
  assert message in str(err.value) and '\n' not in str(err.value)


# --- the reference's numbers ----------------------------------------------------
#
# REFERENCE: tests/fixtures/ada_reference.npz, written by
# tests/fixtures/make_ada_reference.py (its docstring has the command) from
# NVlabs/stylegan2-ada-pytorch, training/augment.py at commit
# d72cc7d041b42ec8e806021a205ed9349f87c6a4, torch 2.13 on CPU (the torch_utils ops'
# reference code paths: upfirdn2d._upfirdn2d_ref, torch's grid_sample), in float64
# (torch's default dtype set to float64 before building the pipe; the debug
# percentile stays float32, as the reference makes it), the outputs rounded to float32.
# AugmentPipe(**multipliers) with its default ranges; NCHW outputs transposed to NHWC.
# Keys: '<case>.out' for each case above; for the random cases also '<case>.<op>':
# the draws the reference made for that op (float32 values, given to it as float64),
# [N, value columns + 1], the gate's draw last. The float32 reference
# differed from the float64 one by at most 6e-6 on these cases, as ours does.
