"""Same global batch on 1, 2, 4 and 8 fake CPU devices -> same training.

XLA partitions one program over the `data` axis; only the order of reductions
changes, so results agree to rounding, not bitwise. Rounding differences do grow
during GAN training: ReLU kinks and near-zero gradients turn them into O(lr) changes,
and Adam's sign-like first updates make any gradient that is pure rounding noise (the
biases before instance norm have a true gradient of exactly zero) move by +-lr. So the
test uses SGD (linear in the gradient) with a small learning rate and checks, for
CycleGAN with instance norm and with batch norm (whose statistics must span the global
batch), pix2pix (batch norm, dropout) and DCGAN (batch norm, z drawn in the step):
  * every loss of step 1 agrees to 1e-5 relative, of steps 2-3 to 1e-4 (a wrong batch
    slice or per-device batch statistics moves the step-1 losses by far more);
  * all parameters and batch statistics after 3 steps agree to 5e-5.
"""

import subprocess

import pytest

from conftest import PYTHON, REPO, subprocess_env

SCRIPT = r'''
import sys
import jax, numpy as np
from jaxgan import config as config_lib, runs, sharding
from jaxgan.tasks import make_task
experiment, norm, counts, extra = sys.argv[1:]
counts = [int(n) for n in counts.split(',')]
assert jax.device_count() == 8, jax.devices()
c = config_lib.get_experiment(experiment)
for override in filter(None, extra.split(';')):
  config_lib.apply_override(c, *override.split('=', 1))
c.data.batch_size = 8
if norm != 'default':
  c.model.norm = norm
c.optimizer.name = 'sgd'
c.optimizer.lr = 1e-4
size = c.data.image_size
rng = np.random.default_rng(0)
keys = 'a' if c.task in ('dcgan', 'stylegan') else 'ab'
batches = [{k: rng.uniform(-1, 1, (8, size, size, c.data.channels)).astype(np.float32)
            for k in keys} for _ in range(3)]
results = {}
for n in counts:
  # The loop's own wiring: runs.CompiledSteps jits every step function of the task.
  trainer = runs.CompiledSteps(make_task(c, steps_per_epoch=10), c, sharding.make_mesh(n))
  state = trainer.init()
  losses = []
  for i, b in enumerate(batches):
    batch = trainer.put(b)
    assert len(batch['a'].sharding.device_set) == n
    state, metrics = trainer.run(state, batch, i)
    losses.append({k: float(v) for k, v in jax.device_get(metrics).items()
                   if k.startswith(('loss_', 'reg_'))})
  results[n] = (losses, jax.device_get((state.params, state.batch_stats,
                                        state.ema_params)))
ref_losses, ref_vars = results[1]
for n in counts[1:]:
  losses, variables = results[n]
  for s, (l1, ln) in enumerate(zip(ref_losses, losses)):
    rtol = 1e-5 if s == 0 else 1e-4  # later steps carry amplified rounding
    for k in l1:
      assert abs(l1[k] - ln[k]) <= rtol * max(1.0, abs(l1[k])), (n, s, k, l1[k], ln[k])
  worst = max(float(np.max(np.abs(x - y))) for x, y in
              zip(jax.tree.leaves(ref_vars), jax.tree.leaves(variables)))
  print(n, 'devices: worst parameter/statistic difference', worst)
  assert worst < 5e-5, (n, worst)
print('OK')
'''


# One case splits the batch 8 ways, the others 2 ways (1 device is the reference;
# each device count is another compile, the bulk of these tests' time).
@pytest.mark.parametrize('experiment,norm,counts,extra', [
    ('cyclegan:smoke', 'instance', '1,8', ''),
    ('cyclegan:smoke', 'batch', '1,2', ''),
    ('pix2pix:smoke', 'default', '1,2', ''),  # batch norm, dropout, conditional D
    # batch norm, z drawn inside the step; an EMA and a lazy R1 step (steps 0 and 2)
    ('dcgan:smoke', 'default', '1,2', 'ema.decay=0.9;loss.gp=r1;loss.gp_every=2'),
    # minibatch stddev across the split batch, style mixing, lazy R1 and path length
    ('stylegan:smoke', 'default', '1,2', ''),
])
def test_same_training_on_several_devices(experiment, norm, counts, extra):
  env = subprocess_env(XLA_FLAGS='--xla_force_host_platform_device_count=8')
  out = subprocess.run([PYTHON, '-c', SCRIPT, experiment, norm, counts, extra], cwd=REPO,
                       env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0 and 'OK' in out.stdout, out.stdout + out.stderr[-3000:]
