"""The stability knobs act in every GAN task's compiled step: a separate D learning
rate, global-norm gradient clipping, annealed instance noise, one-sided label
smoothing, SGD with momentum. Run for every task of the registry, with the lazy
regularisers a task may have switched off (their correction of the rate and betas is
tested in tests/test_core.py) and no weight decay, so that the rates here are the
configured ones and the updates are the clipped gradients'.

All knobs are on in one config, so each task compiles one step (real label 0.9; the
step at 1.0 is only lowered, to see the label reach it) where separate cases compiled
three (Adam, the default, is what every other test runs).
"""

import jax
import numpy as np
import pytest

from jaxgan import config as config_lib, optim, tasks
from jaxgan.tasks import make_task

from conftest import init_state, random_batch

EXPERIMENTS = [f'{name}:smoke' for name in tasks.available()]
CLIP = 0.1
# Set where the task has the key: no lazy step, the reference's lr and betas.
NOT_LAZY = {'loss.gp': 'none', 'loss.pl_weight': 0.0, 'optimizer.lr': 2e-4,
            'optimizer.b1': 0.5, 'optimizer.weight_decay': 0.0}
MOMENTUM = 0.9
# Rates large enough that the first update (rate x CLIP in norm) stands well above the
# float32 rounding of the updated weights.
LR_GEN, LR_DISC = 0.01, 0.05
KNOBS = {'loss.gan_mode': 'vanilla', 'optimizer.name': 'sgd', 'optimizer.lr': LR_GEN,
         'optimizer.momentum': MOMENTUM, 'optimizer.groups.disc.lr': LR_DISC,
         'optimizer.clip_norm': CLIP, 'train.instance_noise': 0.2,
         'train.instance_noise_steps': 4}


def _norm(tree) -> float:
  """Global L2 norm, in NumPy (float64): `optax.global_norm` on host arrays dispatches
  ops leaf by leaf, compiling each new shape (~90 small compiles a task)."""
  return float(np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64)))
                           for x in jax.tree.leaves(tree))))


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
  task, c = _task(experiment, **KNOBS, **{'loss.real_label': 0.9})
  state = init_state(task)
  before = state.params
  step = jax.jit(task.train_step)
  stds, first = [], None
  for _ in range(3):
    state, m = step(state, random_batch(c))
    first = first or (state, m)
    stds.append(float(m['instance_noise']))
    assert all(np.isfinite(float(v)) for v in m.values())
  assert stds == pytest.approx([0.2, 0.15, 0.1])  # annealed over 4 steps
  # A group that keeps a lazy correction with its regulariser off (StyleGAN's G, as the
  # reference's G_reg_interval) runs at lr x c and momentum ^ c.
  corr = {g: optim.lazy_correction(k) for g, k in task.lazy_intervals().items()}
  lrs = {'gen': LR_GEN * corr.get('gen', 1.0), 'disc': LR_DISC * corr.get('disc', 1.0)}
  assert float(m['lr_gen']) == pytest.approx(lrs['gen'])
  assert float(m['lr_disc']) == pytest.approx(lrs['disc'])
  # The gradients (reported before clipping) exceed the bound (0.1: below every task's
  # smoke-run gradient norms; StyleGAN's D is at 0.47 where the others are >= 1).
  after_one, m1 = first
  for group, lr in lrs.items():
    assert float(m1[f'grad_norm_{group}']) > CLIP and float(m[f'grad_norm_{group}']) > CLIP
    # SGD's first update of a group is -lr x its clipped gradient (momentum's buffer
    # starts at it): its norm is lr x CLIP.
    moved = jax.tree.map(lambda a, b: np.asarray(b, np.float64) - np.asarray(a),
                         task.group(before, group), task.group(after_one.params, group))
    assert _norm(moved) == pytest.approx(lr * CLIP, rel=1e-3), group
    # After 3 steps the momentum buffer is g3 + m g2 + m^2 g1 with every |g_k| <= CLIP.
    trace = next(s for s in state.opt_state[group] if hasattr(s, 'trace')).trace
    momentum = MOMENTUM ** corr.get(group, 1.0)
    bound = CLIP * (1 + momentum + momentum ** 2)
    assert _norm(trace) <= bound * (1 + 1e-6), group
  # One-sided smoothing (whose formula tests/test_losses.py checks by hand) reaches
  # the compiled step: the same step with real label 1.0 lowers to another program.
  # (Lowered, not compiled and run: the second compile per task was a fifth of this
  # file's time.)
  task_1, _ = _task(experiment, **KNOBS, **{'loss.real_label': 1.0})
  state_0, batch = init_state(task), random_batch(c)
  lowered = [jax.jit(t.train_step).lower(state_0, batch).as_text() for t in (task, task_1)]
  assert lowered[0] != lowered[1]
