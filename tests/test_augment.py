"""Augmentation of the discriminator's inputs: DiffAugment's ops against hand-computed
results, the distributions of their draws, the D input transform of a step (every D
input augmented, R1 through the augmentation), ADA's statistics and p update by hand,
and the config's errors.

`jaxgan.ada` (stylegan2-ada's pipeline) is replaced here by stand-ins whose effect is
known, so these tests check the plumbing, not that pipeline.
"""

import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgan
from jaxgan import augment, config as config_lib
from jaxgan.errors import JaxganError
from jaxgan.state import GANState
from jaxgan.tasks import make_task
from jaxgan.tasks.base import DInputTransform

from conftest import init_state, random_batch

KEY = jax.random.PRNGKey(0)


def _diffaugment(x, ops):
  """DiffAugment's `ops` on x with KEY, compiled as one program (op by op, each
  primitive would compile on its own)."""
  return jax.jit(augment.diffaugment, static_argnums=2)(x, KEY, ops)


def _config(experiment='dcgan:smoke', **overrides):
  c = config_lib.get_experiment(experiment)
  for key, value in overrides.items():
    config_lib.apply_override(c, key, str(value))
  return c


@pytest.fixture
def stand_in_ada(monkeypatch):
  """install(fn) makes `jaxgan.ada.augment` fn(images, p, key), recording each call's
  (shape, p) in the list it returns."""
  def install(fn):
    calls = []

    def stand_in(images, p, key, *, debug_percentile=None):
      calls.append((images.shape, p))
      return fn(images, p, key)

    module = types.ModuleType('jaxgan.ada')
    module.augment = stand_in
    monkeypatch.setitem(sys.modules, 'jaxgan.ada', module)
    monkeypatch.setattr(jaxgan, 'ada', module, raising=False)
    return calls
  return install


# -- DiffAugment's operations, by hand --------------------------------------------------


def test_translate_by_hand():
  x = np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1).repeat(2, axis=0)
  out = np.asarray(augment.translate(jnp.asarray(x), jnp.array([1, -2]),
                                     jnp.array([-1, 0])))
  # out[i, j] = x[i + dy, j + dx], zero outside: (dy, dx) = (1, -1), then (-2, 0).
  np.testing.assert_array_equal(out[0, ..., 0], [[0, 5, 6, 7],
                                                 [0, 9, 10, 11],
                                                 [0, 13, 14, 15],
                                                 [0, 0, 0, 0]])
  np.testing.assert_array_equal(out[1, ..., 0], [[0, 0, 0, 0],
                                                 [0, 0, 0, 0],
                                                 [1, 2, 3, 4],
                                                 [5, 6, 7, 8]])


def test_cutout_by_hand():
  out = np.asarray(augment.cutout(jnp.ones((2, 4, 4, 2)), jnp.array([-1, 1]),
                                  jnp.array([2, 1]), (2, 2)))
  expected = np.ones((2, 4, 4))
  expected[0, 0, 2:] = 0  # rows -1..0 (0 inside), columns 2..3
  expected[1, 1:3, 1:3] = 0
  np.testing.assert_array_equal(out, np.repeat(expected[..., None], 2, axis=-1))


def test_color_ops_by_hand():
  pixels = jnp.array([[0.2, 0.4, 0.9], [0.0, 0.0, 0.3]]).reshape(1, 1, 2, 3)
  # Saturation: around each pixel's channel mean (0.5, 0.1), x 2.
  np.testing.assert_allclose(augment.saturation(pixels, jnp.array([2.0]))[0, 0],
                             [[-0.1, 0.3, 1.3], [-0.1, -0.1, 0.5]], atol=1e-6)
  np.testing.assert_allclose(augment.brightness(pixels, jnp.array([-0.25]))[0, 0],
                             [[-0.05, 0.15, 0.65], [-0.25, -0.25, 0.05]], atol=1e-6)
  # Contrast: around the image's mean 0.5 (over pixels and channels), x 0.5.
  image = jnp.array([0.0, 1.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
  np.testing.assert_allclose(augment.contrast(image, jnp.array([0.5])).ravel(),
                             [0.25, 0.75, 0.25, 0.75], atol=1e-6)


# -- DiffAugment's draws -------------------------------------------------------------


def test_translation_draws_every_shift_up_to_an_eighth():
  # 12 / 8 = 1.5 rounds half up to shifts of up to 2 (as the authors' int(x + 0.5)).
  n, centre = 400, 6
  x = jnp.zeros((n, 12, 12, 1)).at[:, centre, centre].set(1.0)
  out = np.asarray(_diffaugment(x, ('translation',)))[..., 0]
  assert np.all(out.reshape(n, -1).sum(axis=1) == 1)  # moved, not changed
  rows, cols = np.nonzero(out)[1:]
  shifts = set(zip((centre - rows).tolist(), (centre - cols).tolist()))
  assert shifts == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}


def test_cutout_draws_half_squares_anywhere():
  # 8 x 8, a 4 x 4 square whose top row is uniform in -2..6: 2, 3, 4, 4, 4, 4, 4, 3, 2
  # of its rows inside (2 and 3 with probability 2/9 each, 4 with 5/9), and so for the
  # columns, independently.
  n = 2000
  cut = np.asarray(_diffaugment(jnp.ones((n, 8, 8, 1)), ('cutout',)))[..., 0] == 0
  rows, cols = cut.any(axis=2).sum(axis=1), cut.any(axis=1).sum(axis=1)
  assert np.array_equal(cut.sum(axis=(1, 2)), rows * cols)  # one rectangle each
  for extent in (rows, cols):
    share = [np.mean(extent == k) for k in (2, 3, 4)]
    assert share == pytest.approx([2 / 9, 2 / 9, 5 / 9], abs=0.04)


def test_color_draws_offset_grey_images_by_brightness_alone():
  # On a constant grey image saturation and contrast are no-ops: what is left is the
  # brightness offset, one per image, uniform in [-0.5, 0.5).
  x = jnp.full((256, 4, 4, 3), 0.25)
  offset = np.asarray(_diffaugment(x, ('color',))) - 0.25
  per_image = offset[:, :1, :1, :1]
  np.testing.assert_allclose(offset, np.broadcast_to(per_image, offset.shape), atol=1e-6)
  assert -0.5 <= per_image.min() < -0.45 and 0.45 < per_image.max() < 0.5


def test_pair_halves_get_one_transform_and_inputs_their_own():
  images = jax.random.uniform(KEY, (8, 8, 8, 3), minval=-1, maxval=1)
  to_d = DInputTransform(lambda x, p, key: augment.diffaugment(x, key), {}, 3,
                         jax.random.PRNGKey(1), 0.0, False)
  out, same, other = map(np.asarray, jax.jit(lambda v: (
      to_d('D', jnp.concatenate([v, v], axis=-1), 0), to_d('D', v, 0), to_d('D', v, 1)
  ))(images))
  np.testing.assert_array_equal(out[..., :3], out[..., 3:])
  assert not np.allclose(out[..., :3], images)
  # Another draw of the same step: another augmentation; the same draw: the same one.
  np.testing.assert_array_equal(same, out[..., :3])
  assert not np.allclose(other, out[..., :3])


def test_gradients_flow_through_diffaugment():
  x = jnp.ones((4, 8, 8, 3))
  fn = lambda v: augment.diffaugment(v, KEY, ('translation', 'cutout'))
  grad, out = jax.jit(lambda v: (jax.grad(lambda u: jnp.sum(fn(u)))(v), fn(v)))(x)
  # Each input pixel reaches at most one output pixel: gradient 1 where it survives.
  assert set(np.unique(grad)) <= {0.0, 1.0}
  assert np.sum(grad) == np.count_nonzero(out)


# -- the D input transform in a step ---------------------------------------------------


def test_every_d_input_of_a_step_is_transformed(stand_in_ada):
  # Every D input replaced by one constant image: with the WGAN loss, D's loss is
  # mean D(c) - mean D(c) = 0 exactly, and G gets no gradient through D, only if the
  # reals, the D phase's fakes and the G phase's fakes all pass the transform.
  calls = stand_in_ada(lambda images, p, key: jnp.zeros_like(images) + p)
  c = _config(**{'augment.policy': 'ada', 'augment.ada_target': 0.0,
                 'augment.p_init': 0.25, 'loss.gan_mode': 'wgangp', 'loss.gp': 'r1',
                 'loss.gp_every': 2})
  task = make_task(c, steps_per_epoch=10)
  assert list(task.step_functions()) == ['ada', 'main', 'd_reg']
  state = init_state(task)
  _, m = jax.jit(task.train_step)(state, random_batch(c))
  assert len(calls) == 3  # the G phase's fake, the D phase's real and fake
  assert float(m['loss_D']) == 0.0
  assert float(m['grad_norm_gen']) == 0.0
  assert float(m['ada_p']) == 0.25
  # The lazy R1 step differentiates D at augmented reals (traced, not run).
  calls.clear()
  jax.eval_shape(task.penalty_step, state, random_batch(c))
  assert [shape for shape, _ in calls] == [(c.data.batch_size, 16, 16, 1)]


class _LinearD:
  """D(x) = sum of w * x over each image: its gradient w.r.t. x is w everywhere."""

  def __init__(self, w):
    self.w = w

  def __call__(self, name, x):
    return jnp.sum(x * self.w, axis=(1, 2, 3))

  without_stat_updates = __call__


def test_r1_is_taken_through_the_augmentation():
  # Augmentation 3x + p: D(view(x)) = 3 w.x + p sum(w), whose gradient w.r.t. the
  # un-augmented x is 3w, so R1 = |3w|^2 (w.r.t. the augmented image it would be |w|^2).
  c = _config(**{'loss.gp': 'r1', 'loss.gp_every': 1, 'loss.lambda_gp': 10.0})
  task = make_task(c)
  w = np.array([[[0.5], [-1.0]], [[2.0], [0.25]]], np.float32)
  real = np.array([[[[1.0], [2.0]], [[0.0], [-1.0]]],
                   [[[0.5], [0.5]], [[1.0], [1.0]]]], np.float32)
  fake = -real
  to_d = DInputTransform(lambda x, p, key: 3 * x + p, {'D': 0.5}, 1, KEY, 0.0, False)
  loss, gp, real_out = jax.jit(lambda r, f: task.discriminator_loss(
      _LinearD(jnp.asarray(w)), 'D', r, f, KEY, to_d.views('D', 0, 1)))(real, fake)
  r1 = 9 * np.sum(w ** 2)
  assert float(gp) == pytest.approx(r1, rel=1e-6)
  d_real = 3 * np.sum(real * w, axis=(1, 2, 3)) + 0.5 * w.sum()
  d_fake = 3 * np.sum(fake * w, axis=(1, 2, 3)) + 0.5 * w.sum()
  np.testing.assert_allclose(real_out, d_real, rtol=1e-6)
  softplus = lambda v: np.log1p(np.exp(v))
  expected = np.mean(softplus(-d_real)) + np.mean(softplus(d_fake)) + 10.0 / 2 * r1
  assert float(loss) == pytest.approx(expected, rel=1e-6)


# -- ADA's p --------------------------------------------------------------------------


def test_p_update_rule_by_hand():
  # batch 4, interval 2, kimg 0.04: each adjustment moves p by 4 x 2 / 40 = 0.2.
  rule = dict(target=0.6, batch_size=4, interval=2, kimg=0.04)
  p = augment.adjusted_p(jnp.float32(0.5), jnp.int32(4), jnp.int32(8), **rule)
  assert float(p) == pytest.approx(0.3)  # r_t = 0.5 < 0.6: less augmentation
  p = augment.adjusted_p(p, jnp.int32(6), jnp.int32(8), **rule)
  assert float(p) == pytest.approx(0.5)  # r_t = 0.75 > 0.6: more
  assert float(augment.adjusted_p(jnp.float32(0.9), jnp.int32(8), jnp.int32(8),
                                  **rule)) == 1.0
  assert float(augment.adjusted_p(jnp.float32(0.1), jnp.int32(-8), jnp.int32(8),
                                  **rule)) == 0.0
  assert float(augment.adjusted_p(jnp.float32(0.5), jnp.int32(0), jnp.int32(0),
                                  **rule)) == 0.5  # nothing gathered yet


def test_ada_statistics_and_adjustments_over_two_intervals(stand_in_ada):
  stand_in_ada(lambda images, p, key: images)
  c = _config(**{'augment.policy': 'ada', 'augment.ada_interval': 2,
                 'augment.ada_kimg': 0.04, 'augment.p_init': 0.5})
  task = make_task(c)
  state = GANState(step=0, rng=KEY, params={}, batch_stats={}, ema_params={},
                   opt_state={}, aux=task._ada_init())
  p = []
  for steps in (([2.0, 1.0, -1.0, 3.0], [0.5, 0.1, 0.2, -4.0]),  # signs 2 + 2 of 8
                ([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, -1.0, 1.0])):  # 4 + 2 of 8
    aux = state.aux
    for out in steps:
      aux = task.count_real_signs(aux, {'D': jnp.asarray(out)})
    state, _ = task.ada_step(state.replace(aux=aux), None)
    ada = state.aux['ada']['D']
    assert int(ada['signs']) == int(ada['count']) == 0  # restarted
    p.append(float(ada['p']))
  assert p == pytest.approx([0.3, 0.5])
  # The least-squares loss judges at half the real label; a multi-scale D's outputs
  # count element by element.
  signs, count = augment.sign_counts([jnp.array([0.6, 0.4]), jnp.array([[0.7, 0.5]])],
                                     augment.sign_threshold('lsgan', 1.0))
  assert (int(signs), int(count)) == (1, 4)


# -- config ---------------------------------------------------------------------------


@pytest.mark.parametrize('overrides,message', [
    ({'augment.policy': 'mixup'},
     r"unknown augment.policy 'mixup'; valid: none, ada, diffaugment$"),
    ({'augment.diffaugment': 'color,rotation'},
     r"unknown augment.diffaugment op 'rotation'; valid: color, translation, cutout$"),
    ({'augment.policy': 'diffaugment', 'augment.diffaugment': ''},
     r'augment.diffaugment is empty'),
    ({'augment.ada_target': -0.1}, r'augment.ada_target=-0.1 must be in \[0, 1\]'),
    ({'augment.ada_interval': 0}, r'augment.ada_interval=0 must be >= 1'),
    ({'augment.ada_kimg': -5}, r'augment.ada_kimg=-5.0 must be > 0'),
    ({'augment.p_init': -0.5}, r'augment.p_init=-0.5 must be in \[0, 1\]'),
    ({'augment.policy': 'ada', 'loss.gan_mode': 'wgangp'}, r'augment.ada_target=0'),
])
def test_config_errors(overrides, message):
  with pytest.raises(JaxganError, match=message) as e:
    make_task(_config(**overrides))
  assert '\n' not in str(e.value)
