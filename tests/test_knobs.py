"""The stability knobs act in every GAN task's compiled step: a separate D learning
rate, global-norm gradient clipping, annealed instance noise, one-sided label
smoothing, SGD with momentum. Run for every task of the registry, with the lazy
regularisers a task may have switched off (their correction of the rate and betas is
tested in tests/test_core.py), so that the rates here are the configured ones."""

import jax
import numpy as np
import optax
import pytest

from jaxgan import config as config_lib, tasks
from jaxgan.tasks import make_task

from conftest import init_state, random_batch

EXPERIMENTS = [f'{name}:smoke' for name in tasks.available()]
CLIP = 0.1
# Set where the task has the key: no lazy step, the reference's lr and betas.
NOT_LAZY = {'loss.gp': 'none', 'loss.pl_weight': 0.0, 'optimizer.lr': 2e-4,
            'optimizer.b1': 0.5}


def _task(experiment, **overrides):
  c = config_lib.get_experiment(experiment)
  flat = config_lib.flatten(c)
  for key, value in {**{k: v for k, v in NOT_LAZY.items() if k in flat},
                     **overrides}.items():
    config_lib.apply_override(c, key, str(value))
  return make_task(c, steps_per_epoch=10), c


@pytest.mark.slow
@pytest.mark.parametrize('experiment', EXPERIMENTS)
def test_knobs_act_in_the_step(experiment):
  task, c = _task(experiment, **{
      'loss.gan_mode': 'vanilla', 'loss.real_label': 0.9, 'optimizer.groups.disc.lr': 1e-3,
      'optimizer.clip_norm': CLIP, 'train.instance_noise': 0.2,
      'train.instance_noise_steps': 4})
  state = init_state(task)
  before = state.params
  step = jax.jit(task.train_step)
  stds = []
  for _ in range(3):
    state, m = step(state, random_batch(c))
    stds.append(float(m['instance_noise']))
    assert all(np.isfinite(float(v)) for v in m.values())
  assert stds == pytest.approx([0.2, 0.15, 0.1])  # annealed over 4 steps
  assert float(m['lr_gen']) == pytest.approx(2e-4)
  assert float(m['lr_disc']) == pytest.approx(1e-3)
  # The gradients (reported before clipping) exceed the bound (0.1: below every task's
  # smoke-run gradient norms; StyleGAN's D is at 0.47 where the others are >= 1); Adam's first update is
  # ~lr per element whatever the scale, so check clipping through the optimizer
  # state: Adam's first moment after 3 steps is sum_k (1 - b1) b1^(3-k) g_k with
  # |g_k| <= CLIP, so its norm is at most CLIP * 0.5 * (1 + 0.5 + 0.25).
  assert float(m['grad_norm_gen']) > CLIP and float(m['grad_norm_disc']) > CLIP
  bound = CLIP * (1 - 0.5) * (1 + 0.5 + 0.5 ** 2)
  for group in ('gen', 'disc'):
    # The chain is (clip, [weight decay,] Adam's moments, rate, ...): Adam's state is
    # the one with moments.
    mu = next(s for s in state.opt_state[group] if hasattr(s, 'mu')).mu
    assert float(optax.global_norm(mu)) <= bound + 1e-6, group
  d = task.DISCRIMINATORS[0]
  assert not np.array_equal(jax.tree.leaves(before[d])[0], jax.tree.leaves(state.params[d])[0])


@pytest.mark.slow
@pytest.mark.parametrize('experiment', EXPERIMENTS)
def test_label_smoothing_and_sgd_change_the_step(experiment):
  # One-sided smoothing (whose formula tests/test_losses.py checks by hand) reaches
  # the compiled step's D loss; momentum SGD moves the parameters by -lr * g.
  out = {}
  for label in (1.0, 0.9):
    task, c = _task(experiment, **{'loss.gan_mode': 'vanilla', 'loss.real_label': label,
                                   'optimizer.name': 'sgd', 'optimizer.lr': 0.01})
    state = init_state(task)
    new, m = jax.jit(task.train_step)(state, random_batch(c))
    out[label] = (state, new, m)
  d_key = [k for k in out[1.0][2] if k.startswith('loss_D')][0]
  assert float(out[0.9][2][d_key]) != pytest.approx(float(out[1.0][2][d_key]), rel=1e-4)
  # SGD: the first update of any parameter is -lr * g (momentum's buffer starts at g).
  state, new, m = out[1.0]
  g_name = task.GENERATORS[0]
  moved = jax.tree.map(lambda a, b: np.asarray(b) - np.asarray(a),
                       state.params[g_name], new.params[g_name])
  step_norm = float(optax.global_norm(moved))
  grads_norm = float(m['grad_norm_gen'])
  if len(task.GENERATORS) == 1:  # the G group is this one network
    assert step_norm == pytest.approx(0.01 * grads_norm, rel=1e-3)
