"""The pix2pix task: reference networks, the order of the updates, the objective's
weights, the direction, batch norm and dropout at test time, PixelGAN."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib, losses, models
from jaxgan.errors import JaxganError
from jaxgan.tasks import make_task
from jaxgan.tasks.nets import Nets

from conftest import init_state


def _smoke(**overrides):
  c = config_lib.get_experiment('pix2pix:smoke')
  for key, value in overrides.items():
    config_lib.apply_override(c, key, str(value))
  return c


def _batch(size=64, n=2):
  yy, xx = np.mgrid[0:size, 0:size] / (size - 1.0)
  a = np.stack([np.stack([np.sin(3 * xx + i), np.cos(2 * yy - i), xx * yy], -1)
                for i in range(n)]).astype(np.float32)
  return {'a': jnp.asarray(a), 'b': jnp.asarray(-a[..., ::-1])}


def test_reference_networks():
  # The reference pix2pix prints 54.414 M (G) and 2.769 M (D) parameters: unet_256
  # with batch norm, and the basic PatchGAN on 6 channels (input and output).
  c = config_lib.get_experiment('pix2pix')
  task = make_task(c, steps_per_epoch=1)
  state = jax.eval_shape(task.init_state, jax.random.PRNGKey(0))
  assert models.count_params(state.params['G']) == 54_413_955
  assert models.count_params(state.params['D']) == 2_768_705
  assert state.params['D']['conv_0']['kernel'].shape[2] == 6
  assert set(state.batch_stats['G']) and set(state.batch_stats['D'])
  assert (c.loss.gan_mode, c.loss.lambda_l1, c.model.use_dropout) == ('vanilla', 100.0, True)
  assert (c.data.load_size, c.data.image_size, c.data.batch_size) == (286, 256, 1)


def _deterministic(**overrides):
  # Instance norm and no dropout: train-mode and inference-mode G agree, so the
  # step's first forward pass can be recomputed outside it.
  return _smoke(**{'model.norm': 'instance', 'model.use_dropout': False,
                   'model.test_batch_stats': False, **overrides})


@pytest.mark.slow
@pytest.mark.parametrize('direction', ['AtoB', 'BtoA'])
def test_objective_direction_and_update_order(direction):
  task = make_task(_deterministic(**{'data.direction': direction}), steps_per_epoch=10)
  state = init_state(task)
  batch = _batch()
  x, y = (batch['a'], batch['b']) if direction == 'AtoB' else (batch['b'], batch['a'])
  fake = jax.jit(lambda s: task.generate(s, 'G', x))(state)  # one compile, not ~100
  old_d = state.params['D']
  new, m = jax.jit(task.train_step)(state, batch)
  # L1 term: lambda_l1 * mean |G(x) - y| of the step's input and target.
  np.testing.assert_allclose(float(m['loss_G_L1']),
                             100.0 * float(jnp.mean(jnp.abs(fake - y))), rtol=1e-5)

  def d(d_params, out):
    nets = Nets(task.modules, {**state.params, 'D': d_params}, state.batch_stats,
                train=False)
    return nets('D', jnp.concatenate([x, out], -1))  # conditional: sees the input

  gan_loss = lambda d_params: float(losses.generator_loss('vanilla', d(d_params, fake)))
  # G is judged by the D of this step's update (the reference updates D first).
  assert float(m['loss_G_GAN']) == pytest.approx(gan_loss(new.params['D']), rel=1e-5)
  assert abs(gan_loss(new.params['D']) - gan_loss(old_d)) > 1e-4
  # D's loss: half the BCE on (x, y) as real plus on (x, G(x)) as fake, before its update.
  expected = 0.5 * float(losses.discriminator_loss('vanilla', d(old_d, y), d(old_d, fake)))
  assert float(m['loss_D']) == pytest.approx(expected, rel=1e-5)


@pytest.fixture(scope='module')
def default_task():
  """(task, initial state, jitted step) of pix2pix:smoke at lr 1e-3: one step program
  for the tests of the default networks (batch norm, dropout, a conditional D)."""
  task = make_task(_smoke(**{'optimizer.lr': 1e-3}), steps_per_epoch=100)
  return task, init_state(task), jax.jit(task.train_step)


@pytest.mark.slow
def test_default_task_learns_a_fixed_pair(default_task):
  # Batch norm, dropout, a conditional D: G fits a fixed pair within a few steps.
  batch = _batch()
  task, state, step = default_task
  history = []
  for _ in range(10):
    state, m = step(state, batch)
    history.append(float(m['loss_G_L1']))
    assert all(np.isfinite(float(v)) for v in m.values())
  assert history[-1] < 0.8 * history[0], history


@pytest.mark.slow
def test_batch_norm_state_and_test_time_modes(default_task):
  task, state, step = default_task
  batch = _batch(n=2)
  new, _ = step(state, batch)
  changed = lambda a, b: not all(np.array_equal(x, y) for x, y in
                                 zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert changed(state.batch_stats['G'], new.batch_stats['G'])
  assert changed(state.batch_stats['D'], new.batch_stats['D'])
  # Reference test mode: each image is normalised by its own statistics, so an
  # image's output does not depend on the others in the batch...
  # (Jitted as the tools run them: op by op, a U-Net is ~100 small compiles.)
  x = batch['a']
  generate = jax.jit(lambda s, images: task.generate(s, 'G', images))
  together = np.asarray(generate(new, x))
  alone = np.asarray(generate(new, x[1:]))
  np.testing.assert_allclose(together[1], alone[0], atol=1e-5)
  # ...and differs from the running-average mode.
  running_task = make_task(_smoke(**{'model.test_batch_stats': False}), 10)
  running = np.asarray(jax.jit(lambda s: running_task.generate(s, 'G', x))(new))
  assert np.max(np.abs(running - together)) > 1e-3
  cols = jax.jit(task.sample)(new, batch)
  # real A | G(A) | real B (the task's sample_columns names, which nothing read, are
  # gone: the columns are checked by value instead).
  assert len(cols) == 3
  np.testing.assert_array_equal(cols[0], batch['a'])
  np.testing.assert_allclose(cols[1], together, atol=1e-5)
  np.testing.assert_array_equal(cols[2], batch['b'])


@pytest.mark.slow
def test_pixelgan_and_bad_config():
  task = make_task(_smoke(**{'model.discriminator': 'pixel'}), steps_per_epoch=10)
  state = init_state(task)
  # The output's shape from the trace alone (applied op by op: ~15 compiles).
  out = jax.eval_shape(lambda v: task.modules['D'].apply(v, jnp.zeros((1, 64, 64, 6)),
                                                         train=False),
                       {'params': state.params['D'], 'batch_stats': state.batch_stats['D']})
  assert out.shape == (1, 64, 64, 1)  # one logit per pixel
  _, m = jax.jit(task.train_step)(state, _batch())
  assert np.isfinite(float(m['loss_D']))
  with pytest.raises(JaxganError, match="data.direction='CtoD' must be AtoB or BtoA"):
    make_task(_smoke(**{'data.direction': 'CtoD'}), 10)
  with pytest.raises(JaxganError, match='data.image_size=48 must be a multiple of 64'):
    make_task(_smoke(**{'data.image_size': 48, 'data.load_size': 48}), 10)
