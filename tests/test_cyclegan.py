"""The CycleGAN task's step: losses go down, the gradient penalty acts, shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan.tasks import make_task

from conftest import init_state


def _smoke(**overrides):
  c = config_lib.get_experiment('cyclegan:smoke')
  for key, value in overrides.items():
    config_lib.apply_override(c, key, str(value))
  return c


def _batch(size=32, n=2):
  """Smooth images (a tiny net can fit them in a few steps); B is a colour map of A."""
  yy, xx = np.mgrid[0:size, 0:size] / (size - 1.0)
  a = np.stack([np.stack([np.sin(3 * xx + i), np.cos(2 * yy - i), xx * yy], -1)
                for i in range(n)]).astype(np.float32)
  return {'a': jnp.asarray(a), 'b': jnp.asarray(-a[..., ::-1])}


@pytest.mark.slow
def test_step_lowers_losses_on_a_fixed_batch():
  task = make_task(_smoke(**{'optimizer.lr': 1e-3}), steps_per_epoch=100)
  state = init_state(task)
  step = jax.jit(task.train_step)
  batch = _batch()
  history = []
  for _ in range(12):
    state, m = step(state, batch)
    history.append({k: float(v) for k, v in m.items()})
  first, last = history[0], history[-1]
  for key in ('loss_G_A', 'loss_G_B', 'loss_cycle_A', 'loss_cycle_B', 'loss_idt_A',
              'loss_idt_B', 'loss_D_A', 'loss_D_B', 'lr_gen', 'lr_disc', 'grad_norm_gen',
              'grad_norm_disc'):
    assert np.isfinite(last[key]), key
  recon = lambda h: h['loss_cycle_A'] + h['loss_cycle_B'] + h['loss_idt_A'] + h['loss_idt_B']
  assert recon(last) < 0.6 * recon(first), (recon(first), recon(last))
  assert int(state.step) == 12
  # Pools filled by 2 fakes per step, capped at pool_size 3.
  assert int(state.aux['pool_A'].count) == 3


@pytest.fixture(scope='module')
def first_step():
  """`first_step(**overrides)` -> (state, metrics) after one step of cyclegan:smoke
  with `loss.KEY=VALUE` overrides, from the initial state; each config's step compiled
  once for the module (the tests below share the config they both need)."""
  done = {}

  def run(**overrides):
    key = tuple(sorted(overrides.items()))
    if key not in done:
      task = make_task(_smoke(**{'loss.' + k: v for k, v in overrides.items()}), 10)
      done[key] = jax.jit(task.train_step)(init_state(task), _batch())
    return done[key]

  return run


# The two tests below run in wgangp mode without the identity terms: the config they
# share (lambda_gp 10, lambda_cycle 10) is one step compile.
_WGANGP = {'gan_mode': 'wgangp', 'lambda_identity': 0.0}


@pytest.mark.slow
def test_weights_of_the_objective(first_step):
  # lambda_identity = 0 zeroes the identity terms; lambda_cycle scales cycle terms.
  out = {}
  for lam in (10.0, 5.0):
    _, m = first_step(**_WGANGP, lambda_gp=10.0, lambda_cycle=lam)
    out[lam] = m
    assert float(m['loss_idt_A']) == 0.0 and float(m['loss_idt_B']) == 0.0
  np.testing.assert_allclose(float(out[10.0]['loss_cycle_A']),
                             2 * float(out[5.0]['loss_cycle_A']), rtol=1e-5)


@pytest.mark.slow
def test_wgangp_penalty_reaches_the_discriminators_only(first_step):
  params = {}
  for lam in (0.0, 10.0):
    state, m = first_step(**_WGANGP, lambda_gp=lam, lambda_cycle=10.0)
    assert float(m['loss_gp_A']) > 0 and float(m['loss_gp_B']) > 0
    params[lam] = state.params
  same = lambda x, y: bool(np.array_equal(x, y))
  # G and F are updated before D: the penalty cannot touch them in this step...
  assert all(jax.tree.leaves(jax.tree.map(same, params[0.0]['G'], params[10.0]['G'])))
  # ...but it changes the critics' update.
  assert not all(jax.tree.leaves(jax.tree.map(same, params[0.0]['D_A'], params[10.0]['D_A'])))


@pytest.mark.slow
def test_sample_columns_and_bfloat16():
  task = make_task(_smoke(dtype='bfloat16'), 10)
  state = init_state(task)
  leaves = jax.tree.leaves(state.params)
  assert all(x.dtype == jnp.float32 for x in leaves)
  state, m = jax.jit(task.train_step)(state, _batch())
  assert all(np.isfinite(float(v)) for v in m.values())
  cols = jax.jit(task.sample)(state, _batch())
  assert len(cols) == 6  # real A | G(A) | F(G(A)) | real B | F(B) | G(F(B))
  for col in cols:
    assert col.shape == (2, 32, 32, 3) and col.dtype == jnp.float32
