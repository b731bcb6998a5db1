"""Golden steps: each task's metrics after two steps at a fixed seed, and its parameters'
absolute sums, as written down from a run of the code *before* the task-contract
refactor (commit 75da7d0, `make_task(config, 10)`, `jax.jit(task.train_step)` twice on
the batches below, CPU, float32). The refactor must change no numerics: these are
the numbers of the old code, not of the code under test.

The tolerance (1e-5 relative) absorbs the reduction-order noise a different XLA
thread split could bring; any change to an objective, an initialisation, a key or an
optimizer moves these by far more. One metric is looser: CycleGAN's generator
gradient norm is discontinuous at float32 rounding level here (an element of an L1
term sits at its kink): scaling the output conv's values by (1 + 2e-7·noise) moves
it from 150.6666 to 150.6895 at step 0 (1.5e-4), and a computation of the same
convolution with other rounding (convgrad's 'narrow' formulation, equal to XLA's in
float64) lands on that other value. Adam's first update is ±lr per element
whatever the gradient's size, so every step-1 metric then moves (by up to 4e-3, and
the parameter sums by 7e-6). CycleGAN's step 0 stays at 1e-5 except that one norm.
"""

import jax
import numpy as np
import pytest

from jaxgan import config as config_lib
from jaxgan.tasks import make_task

from conftest import random_batch

GOLDEN = {
    'cyclegan:smoke': (
        [{'grad_norm_D': 19.92214, 'grad_norm_G': 150.6666, 'loss_D_A': 0.4629314,
          'loss_D_B': 0.3314077, 'loss_G': 17.69004, 'loss_G_A': 0.5668314,
          'loss_G_B': 0.9063628, 'loss_cycle_A': 5.441308, 'loss_cycle_B': 5.363726,
          'loss_idt_A': 2.702572, 'loss_idt_B': 2.709242},
         {'grad_norm_D': 20.80538, 'grad_norm_G': 151.1584, 'loss_D_A': 0.4481039,
          'loss_D_B': 0.4756455, 'loss_G': 17.66612, 'loss_G_A': 0.4878688,
          'loss_G_B': 0.9555221, 'loss_cycle_A': 5.459237, 'loss_cycle_B': 5.331812,
          'loss_idt_A': 2.685723, 'loss_idt_B': 2.745963}],
        {'D_A': 706.728589, 'D_B': 709.621824, 'F': 1984.9464, 'G': 1988.27706}),
    'pix2pix:smoke': (
        [{'grad_norm_D': 1.51982, 'grad_norm_G': 9.001144, 'loss_D': 0.7230188,
          'loss_G': 51.10197, 'loss_G_GAN': 0.5763571, 'loss_G_L1': 50.52561},
         {'grad_norm_D': 1.479815, 'grad_norm_G': 8.101321, 'loss_D': 0.7355539,
          'loss_G': 50.84813, 'loss_G_GAN': 0.5786933, 'loss_G_L1': 50.26944}],
        {'D': 827.841913, 'G': 7664.16789}),
    'dcgan:smoke': (
        [{'grad_norm_D': 4.694691, 'grad_norm_G': 1.149015, 'loss_D': 1.431,
          'loss_G': 0.6945996},
         {'grad_norm_D': 4.736726, 'grad_norm_G': 1.31859, 'loss_D': 1.4521,
          'loss_G': 0.7101259}],
        {'D': 53.8349423, 'G': 90.999838}),
}


# Relative tolerances where 1e-5 (metrics) / 1e-6 (parameter sums) are not it (see
# above): (experiment, step, metric) first, then (experiment, step).
TOLERANCE = {('cyclegan:smoke', 0, 'grad_norm_G'): 1e-3,
             ('cyclegan:smoke', 1): 1e-2,
             ('cyclegan:smoke', 'param_sums'): 1e-4}


@pytest.mark.slow
@pytest.mark.parametrize('experiment', sorted(GOLDEN))
def test_two_steps_match_the_pre_refactor_numbers(experiment):
  c = config_lib.get_experiment(experiment)
  task = make_task(c, steps_per_epoch=10)
  state = task.init_state(jax.random.PRNGKey(c.seed))
  step = jax.jit(task.train_step)
  history, param_sums = GOLDEN[experiment]
  for i, expected in enumerate(history):
    state, metrics = step(state, random_batch(c, 100 + i))
    for k, want in expected.items():
      rel = TOLERANCE.get((experiment, i, k), TOLERANCE.get((experiment, i), 1e-5))
      assert float(metrics[k]) == pytest.approx(want, rel=rel), (i, k, float(metrics[k]))
  sums = {name: float(sum(np.abs(np.asarray(leaf, np.float64)).sum()
                          for leaf in jax.tree.leaves(tree)))
          for name, tree in state.params.items()}
  assert sums == pytest.approx(param_sums,
                               rel=TOLERANCE.get((experiment, 'param_sums'), 1e-6))
