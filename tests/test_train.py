"""The loop: exact resume, NaN stop, SIGTERM, real maps data."""

import logging
import re
import signal
import subprocess
import time

import jax
import numpy as np
import pytest

from jaxgan import checkpointing, config as config_lib, tasks, train
from jaxgan.errors import JaxganError
from jaxgan.tasks import cyclegan

from conftest import MAPS, PYTHON, REPO, require, run_in_process, subprocess_env


def _smoke(experiment='cyclegan:smoke', **overrides):
  c = config_lib.get_experiment(experiment)
  for key, value in overrides.items():
    config_lib.apply_override(c, key, str(value))
  return c


def _equal_trees(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


# An EMA (ramped half-life), a lazy R1 step every 2 iterations (run at 0, 2, 4: the
# restart at 3 must neither skip nor repeat the one at 4) and ADA, its p adjusted every
# 2 steps by 4 images / 0.032 kimg = 0.125 from 0.5 (its p and sign sums in the state).
LAZY_EMA_ADA = {'ema.half_life_images': 40.0, 'ema.rampup': 0.5, 'loss.gp': 'r1',
                'loss.gp_every': 2, 'augment.policy': 'ada', 'augment.p_init': 0.5,
                'augment.ada_interval': 2, 'augment.ada_kimg': 0.032}


# Every task's smoke run (found in the registry: a new task is covered without an edit
# here; stylegan:smoke has its EMA and lazy R1 and path-length steps), and DCGAN with
# an EMA, a lazy R1 and ADA added.
@pytest.mark.slow
@pytest.mark.parametrize('experiment,extra', [
    *((f'{name}:smoke', {}) for name in tasks.available()), ('dcgan:smoke', LAZY_EMA_ADA)],
    ids=[*tasks.available(), 'dcgan-ema-lazy-r1-ada'])
def test_resume_is_bit_exact(tmp_path, experiment, extra):
  # 6 steps over epochs of 4 steps (8 images / batch 2; DCGAN: 2 steps of batch 4):
  # the restart at step 3 falls inside an epoch and the run crosses an epoch boundary
  # after it. Batch norm and dropout (pix2pix), the pools (CycleGAN), the fixed
  # sample noise (DCGAN) and the EMA are all in the state.
  common = {'train.checkpoint_every': 3, 'train.sample_every': 0, **extra}
  straight = train.train_and_evaluate(
      _smoke(experiment, **{'train.num_steps': 6}, **common), tmp_path / 'straight')
  first = train.train_and_evaluate(
      _smoke(experiment, **{'train.num_steps': 3}, **common), tmp_path / 'resumed')
  assert int(first.step) == 3
  resumed = train.train_and_evaluate(
      _smoke(experiment, **{'train.num_steps': 6}, **common), tmp_path / 'resumed')
  assert int(resumed.step) == int(straight.step) == 6
  assert _equal_trees(straight.params, resumed.params)
  assert _equal_trees(straight.opt_state, resumed.opt_state)
  assert _equal_trees(straight.aux, resumed.aux)
  assert _equal_trees(straight.batch_stats, resumed.batch_stats)
  assert _equal_trees(straight.ema_params, resumed.ema_params)
  e = _smoke(experiment, **extra).ema
  assert bool(straight.ema_params) == (e.half_life_images > 0 or e.decay > 0)
  ckpt = checkpointing.Checkpoints(tmp_path / 'resumed' / 'checkpoints', read_only=True)
  assert ckpt.all_steps() == [3, 6]
  if extra.get('augment.policy') == 'ada':  # p moved in steps of 0.125: it was adapted
    p = float(straight.aux['ada']['D']['p'])
    assert p != 0.5 and abs(p - round(p * 8) / 8) < 1e-6, p


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
  real_step = cyclegan.CycleGAN.train_step

  def poisoned(self, state, batch):
    state, metrics = real_step(self, state, batch)
    bad = jax.numpy.where(state.step >= 3, jax.numpy.nan, 0.0)
    return state, {**metrics, 'loss_D_A': metrics['loss_D_A'] + bad}

  monkeypatch.setattr(cyclegan.CycleGAN, 'train_step', poisoned)
  config = _smoke(**{'train.num_steps': 8, 'train.checkpoint_every': 2,
                     'train.sample_every': 0})
  with pytest.raises(JaxganError, match=r'non-finite loss_D_A = nan at step 3; .*'
                     r'last good checkpoint: step 2'):
    train.train_and_evaluate(config, tmp_path)
  ckpt = checkpointing.Checkpoints(tmp_path / 'checkpoints', read_only=True)
  assert ckpt.all_steps() == [2]


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_zero(tmp_path, capsys, caplog):
  cmd = [PYTHON, '-m', 'jaxgan.main', '--experiment', 'cyclegan:smoke', '--workdir',
         str(tmp_path), '--config.train.num_steps=100000',
         '--config.train.checkpoint_every=100000', '--config.train.sample_every=0']
  proc = subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stderr=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, text=True)
  log = []
  deadline = time.monotonic() + 240
  for line in proc.stderr:
    log.append(line)
    m = re.search(r'\[(\d+)\] .*train/loss_G', line)
    if m and int(m.group(1)) >= 3:
      proc.send_signal(signal.SIGTERM)
      break
    assert time.monotonic() < deadline, ''.join(log[-20:])
  rest = proc.stderr.read()
  assert proc.wait(timeout=120) == 0, ''.join(log[-20:]) + rest
  assert 'SIGTERM' in rest
  steps = checkpointing.Checkpoints(tmp_path / 'checkpoints', read_only=True).all_steps()
  assert len(steps) == 1 and 3 <= steps[0] < 100000
  # Re-running resumes from it (the same arguments, run in this process as the entry
  # point runs them: the signal needed a process of its own, the resume does not).
  caplog.set_level(logging.INFO)
  out = run_in_process(capsys, *cmd[2:-3], f'--config.train.num_steps={steps[0] + 1}')
  assert out.returncode == 0, out.stderr[-2000:]
  assert f'Resuming from checkpoint at step {steps[0]}' in caplog.text


@pytest.mark.slow
def test_a_few_steps_on_real_maps(tmp_path):
  maps = require(MAPS, 'the maps dataset')
  config = _smoke(**{'data.source': f'aligned:{maps}', 'data.image_size': 32,
                     'data.load_size': 36, 'train.num_steps': 3,
                     'train.checkpoint_every': 3, 'train.sample_every': 3})
  state = train.train_and_evaluate(config, tmp_path)
  assert int(state.step) == 3
  assert (tmp_path / 'samples' / 'step_0000003.png').is_file()
