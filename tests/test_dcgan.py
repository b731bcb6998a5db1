"""The DCGAN task: reference settings and networks, the update order and losses, the
fixed-noise sample grid, unconditional samples."""

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
  c = config_lib.get_experiment('dcgan:smoke')
  for key, value in overrides.items():
    config_lib.apply_override(c, key, str(value))
  return c


def test_reference_settings_and_networks():
  c = config_lib.get_experiment('dcgan')
  assert (c.model.latent_dim, c.loss.gan_mode, c.optimizer.name, c.optimizer.lr,
          c.optimizer.b1) == (100, 'vanilla', 'adam', 2e-4, 0.5)
  assert (c.data.image_size, c.data.channels, c.data.flip) == (32, 1, False)
  task = make_task(c, steps_per_epoch=1)
  state = jax.eval_shape(task.init_state, jax.random.PRNGKey(0))
  # By hand, ngf = ndf = 64, 1 channel, no biases; batch norm has scale and bias.
  # G: 100*256*16 + 2*256 + 256*128*16 + 2*128 + 128*64*16 + 2*64 + 64*1*16
  assert models.count_params(state.params['G']) == 1_066_880
  # D: 1*64*16 + 64*128*16 + 2*128 + 128*256*16 + 2*256 + 256*1*16
  assert models.count_params(state.params['D']) == 661_248
  assert state.aux['sample_z'].shape == (64, 100)  # the 8x8 fixed-noise grid


def _step_inputs(task, state, batch_size):
  """The z the step draws (the step's key derivation, repeated here)."""
  k_z = jax.random.split(jax.random.fold_in(state.rng, state.step), 3)[0]
  return jax.random.normal(k_z, (batch_size, task.latent_dim))


@pytest.mark.slow
def test_update_order_and_losses():
  task = make_task(_smoke(), steps_per_epoch=10)
  state = init_state(task)
  real = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 1)),
                     jnp.float32)
  z = _step_inputs(task, state, 4)
  # The step and the hand-written losses each one program (LLVM O0 in tests: conftest),
  # not one compile per op.
  new, m = jax.jit(task.train_step)(state, {'a': real})

  @jax.jit
  def expected_losses(state, new, real, z):
    # G's forward pass in train mode (batch statistics), with the old parameters.
    nets = Nets(task.modules, state.params, state.batch_stats, train=True)
    fake = nets('G', z)
    # D: BCE on real (target 1) plus on fake (target 0), not halved, before its update.
    d_old = Nets(task.modules, state.params, state.batch_stats, train=True)
    expected_d = (jnp.mean(jax.nn.softplus(-d_old('D', real))) +
                  jnp.mean(jax.nn.softplus(d_old('D', fake))))
    # G: the non-saturating -log sigmoid(D(G(z))), judged by the updated D.
    d_new = Nets(task.modules, new.params, d_old.stats, train=True)
    expected_g = jnp.mean(jax.nn.softplus(-d_new('D', fake)))
    return expected_d, expected_g

  expected_d, expected_g = expected_losses(state, new, real, z)
  assert float(m['loss_D']) == pytest.approx(float(expected_d), rel=1e-4)
  assert float(m['loss_G']) == pytest.approx(float(expected_g), rel=1e-4)
  assert float(losses.generator_loss('vanilla', jnp.zeros(3))) == pytest.approx(np.log(2))
  changed = [not np.array_equal(x, y) for x, y in
             zip(jax.tree.leaves(state.batch_stats), jax.tree.leaves(new.batch_stats))]
  assert all(changed)


def test_fixed_noise_grid_and_samples():
  task = make_task(_smoke(), steps_per_epoch=10)
  state = init_state(task)
  # One program each, not one compile per op.
  grid = jax.jit(lambda state: task.sample(state, batch=None))
  samples = jax.jit(task.generate_samples, static_argnums=2)
  cols = grid(state)
  assert len(cols) == 2  # smoke: a 2x2 grid
  assert all(col.shape == (2, 16, 16, 1) for col in cols)
  step = jax.jit(task.train_step)
  batch = {'a': jnp.zeros((4, 16, 16, 1))}
  new = state
  for _ in range(2):
    new, _ = step(new, batch)
  # The same z all run long; the images move as G learns.
  np.testing.assert_array_equal(new.aux['sample_z'], state.aux['sample_z'])
  assert not np.allclose(grid(new)[0], cols[0])
  a = samples(new, jax.random.PRNGKey(3), 5)
  b = samples(new, jax.random.PRNGKey(3), 5)
  assert a.shape == (5, 16, 16, 1) and float(jnp.max(jnp.abs(a))) <= 1.0
  np.testing.assert_array_equal(a, b)


def test_bad_config():
  with pytest.raises(JaxganError, match='model.latent_dim=0 must be >= 1'):
    make_task(_smoke(**{'model.latent_dim': 0}), 10)
  with pytest.raises(JaxganError, match='data.channels=2 must be 1 or 3'):
    make_task(_smoke(**{'data.channels': 2}), 10)
