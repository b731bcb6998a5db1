"""The StyleGAN task: its objective's weights and schedules against the reference's
rules, truncation, the running average of w, style mixing, and `jaxgan.sample`."""

import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import runs, sharding, train
from jaxgan.errors import JaxganError
from jaxgan.state import InferenceState
from jaxgan.tasks import make_task

from conftest import (PYTHON, REPO, experiment_config, init_state, random_batch,
                      run_in_process, subprocess_env)


def _config(experiment='stylegan:smoke', **overrides):
  return experiment_config(experiment, **overrides)


_batch = random_batch


def test_reference_defaults_and_lazy_schedules():
  c = _config('stylegan', **{'data.source': 'synthetic'})
  task = make_task(c, steps_per_epoch=100)
  # R1 gamma by the reference's auto rule: 0.0002 * 64^2 / 32 = 0.0256, weight gamma/2.
  assert task.r1_gamma == pytest.approx(0.0256)
  assert task.penalty_weight == pytest.approx(0.0128)
  steps = task.step_functions()
  assert [(k, e) for k, (_, e) in steps.items()] == [('main', 1), ('d_reg', 16),
                                                    ('g_reg', 4), ('ema', 1)]
  assert task.lazy_intervals() == {'disc': 16, 'gen': 4}
  # Lazy correction: lr x k/(k+1) (Adam's first update is -lr c sign(g)).
  probe = {'x': jnp.ones(3)}
  for group, k in (('disc', 16), ('gen', 4)):
    opt = task.optimizers[group]
    upd, state = opt.update(probe, opt.init(probe), probe, step=0)
    np.testing.assert_allclose(upd['x'], -0.0025 * k / (k + 1), rtol=1e-5)
    np.testing.assert_allclose(state[0].nu['x'], 1 - 0.99 ** (k / (k + 1)), rtol=1e-5)
  assert float(task.schedules['gen'](10**6)) == pytest.approx(0.0025)  # constant
  assert (c.optimizer.b1, c.optimizer.b2, c.data.batch_size) == (0.0, 0.99, 32)
  assert (c.ema.half_life_images, c.ema.rampup) == (10000.0, 0.05)


@pytest.mark.slow
def test_smoke_steps_move_what_they_should():
  c = _config()
  task = make_task(c, steps_per_epoch=10)
  trainer = runs.CompiledSteps(task, c, sharding.make_mesh(1))
  assert [trainer.due(s) for s in range(3)] == [['main', 'd_reg', 'g_reg', 'ema'],
                                                ['main', 'ema'],
                                                ['main', 'd_reg', 'g_reg', 'ema']]
  state = trainer.init()
  assert float(jnp.abs(state.aux['w_avg']).max()) == 0.0
  w_avg0, pl0 = np.asarray(state.aux['w_avg']), float(state.aux['pl_mean'])
  state, m = trainer.run(state, trainer.put(_batch(c)), 0)
  for key in ('loss_G', 'loss_D', 'reg_gp_D', 'reg_loss_D', 'reg_pl_penalty',
              'reg_pl_mean', 'reg_loss_G', 'ema_beta'):
    assert np.isfinite(float(m[key])), key
  assert int(state.step) == 1
  # w_avg moved towards the batch mean of w by (1 - 0.995); pl_mean by 0.01 of the
  # mean length from 0.
  moved = np.asarray(state.aux['w_avg']) - w_avg0
  assert 0 < np.abs(moved).max() < 1
  assert float(state.aux['pl_mean']) == pytest.approx(float(m['reg_pl_mean']))
  assert float(m['reg_pl_mean']) > pl0
  # The EMA starts as a copy of the params after every update of iteration 0 (beta 0
  # at step 0 with the ramp-up).
  assert float(m['ema_beta']) == 0.0
  for a, b in zip(jax.tree.leaves(state.ema_params['G']), jax.tree.leaves(state.params['G'])):
    np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_truncation_and_style_mixing():
  c = _config()
  task = make_task(c, steps_per_epoch=10)
  state = init_state(task)
  w_avg = jnp.linspace(-1, 1, c.model.w_dim)
  model = InferenceState(params=state.params, batch_stats=state.batch_stats,
                         ema_params=state.ema_params, aux={'w_avg': w_avg})
  z = jax.random.normal(jax.random.PRNGKey(1), (3, task.z_dim))
  ws0 = task.styles(model, z, 0.0)
  np.testing.assert_allclose(ws0, jnp.broadcast_to(w_avg, ws0.shape), atol=1e-6)
  ws1 = task.styles(model, z, 1.0)
  half = task.styles(model, z, 0.5, 2)
  np.testing.assert_allclose(half[:, :2], 0.5 * (ws1[:, :2] + w_avg), rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(half[:, 2:], ws1[:, 2:], rtol=1e-6)
  # Style mixing always on: some layers from the first z, the rest from the second.
  c.model.style_mixing = 1.0
  task = make_task(c, steps_per_epoch=10)
  from jaxgan.tasks.nets import Nets
  nets = Nets(task.modules, state.params, state.batch_stats, train=False)
  mixed, unmixed = task._mixed_styles(nets, z, jax.random.PRNGKey(5))
  same = np.all(np.isclose(mixed, unmixed), axis=(0, 2))
  k = int(np.argmin(same))
  assert 1 <= k < task.num_ws and same[:k].all() and not same[k:].any()


def test_bad_config_is_one_line():
  with pytest.raises(JaxganError, match='model.style_mixing=1.5 must be in'):
    make_task(_config(**{'model.style_mixing': 1.5}), 10)
  with pytest.raises(JaxganError, match="unknown model.noise_mode 'loud'"):
    make_task(_config(**{'model.noise_mode': 'loud'}), 10)
  with pytest.raises(JaxganError, match='data.image_size=24 must be a power of two'):
    make_task(_config(**{'data.image_size': 24, 'data.load_size': 24}), 10)
  with pytest.raises(JaxganError, match='must equal data.image_size'):
    make_task(_config(**{'data.load_size': 20}), 10)
  with pytest.raises(JaxganError, match='multiple of the minibatch-stddev group size'):
    make_task(_config(**{'data.batch_size': 3}), 10)


@pytest.fixture(scope='session')
def stylegan_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('stylegan')
  state = train.train_and_evaluate(_config(**{'train.sample_every': 4}), workdir)
  return workdir, state


@pytest.mark.slow
def test_sample_cli(stylegan_run, tmp_path, capsys):
  workdir, _ = stylegan_run
  assert (workdir / 'samples' / 'step_0000004.png').is_file()
  # The command line once; the other cases in-process.
  out = subprocess.run([PYTHON, '-m', 'jaxgan.sample', '--workdir', str(workdir),
                        '--seeds', '0-4', '--output', str(tmp_path / 'grid.png')],
                       cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  grid = np.asarray(Image.open(tmp_path / 'grid.png'))
  assert grid.shape == (2 * 18 + 2, 3 * 18 + 2, 3)  # 5 seeds: 2 rows of 3, 16x16 cells
  # One PNG per seed; a seed's image does not depend on the other seeds drawn.
  run = lambda *args: run_in_process(capsys, 'jaxgan.sample', '--workdir', str(workdir),
                                     *args)
  assert run('--seeds', '2-3', '--output', str(tmp_path / 'a') + '/').returncode == 0
  assert run('--seeds', '3,9', '--output', str(tmp_path / 'b') + '/').returncode == 0
  a3 = np.asarray(Image.open(tmp_path / 'a' / 'seed0003.png'))
  np.testing.assert_array_equal(a3, np.asarray(Image.open(tmp_path / 'b' / 'seed0003.png')))
  assert not np.array_equal(a3, np.asarray(Image.open(tmp_path / 'a' / 'seed0002.png')))
  # Truncation to psi = 0: every seed gives the same image (w_avg everywhere).
  assert run('--seeds', '0-1', '--psi', '0', '--output',
             str(tmp_path / 'p') + '/').returncode == 0
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / 'p' / 'seed0000.png')),
                                np.asarray(Image.open(tmp_path / 'p' / 'seed0001.png')))
  # The style-mixing figure: (1 + 2) rows x (1 + 3) columns of 16x16 cells.
  out = run('--style-mix', '0,1', '5-7', '--output', str(tmp_path / 'mix.png'))
  assert out.returncode == 0, out.stderr
  assert np.asarray(Image.open(tmp_path / 'mix.png')).shape == (3 * 18 + 2, 4 * 18 + 2, 3)
  for args, pattern in [(('--seeds', 'x'), "bad seeds 'x'"),
                        (('--truncation-cutoff', '99'), '--truncation-cutoff=99 must be'),
                        (('--style-mix', '0', '1', '--mix-layer', '0'), '--mix-layer=0')]:
    out = run(*args, '--output', str(tmp_path / 'e.png'))
    assert out.returncode == 1 and pattern in out.stderr, out.stderr


@pytest.mark.slow
def test_sample_cli_on_dcgan_and_translation_tasks(tmp_path, capsys):
  train.train_and_evaluate(_config('dcgan:smoke', **{'train.num_steps': 2,
                                                     'train.sample_every': 0}),
                           tmp_path / 'dcgan')
  run = lambda *args: run_in_process(capsys, 'jaxgan.sample', '--workdir',
                                     str(tmp_path / 'dcgan'), *args)
  assert run('--seeds', '0-3', '--output', str(tmp_path / 'd.png')).returncode == 0
  assert np.asarray(Image.open(tmp_path / 'd.png')).shape == (2 * 18 + 2, 2 * 18 + 2, 3)
  out = run('--psi', '0.5', '--output', str(tmp_path / 'e.png'))
  assert out.returncode == 1 and 'need a style-based generator' in out.stderr
