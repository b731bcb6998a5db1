"""The task contract's shared machinery, checked against hand-computed values:
optimizer groups (per-group settings, schedules, lr multipliers, the lazy correction),
EMA, gradient penalties (R1/R2, lazy steps on their schedule), named RNG streams and
keyword inputs in `Nets`, the network registry, and inference without training state.
"""

import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib, losses, models, optim, runs, sharding, train
from jaxgan.errors import JaxganError
from jaxgan.state import InferenceState
from jaxgan.tasks import make_task
from jaxgan.tasks.base import Sampler, Translator
from jaxgan.tasks.nets import Nets

from conftest import experiment_config, init_state, random_batch
from jit_helpers import apply, init


def _config(experiment='dcgan:smoke', **overrides):
  return experiment_config(experiment, **overrides)


_batch = random_batch


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(_leaves(a), _leaves(b)):
    np.testing.assert_array_equal(x, y)


# -- optimizer groups -------------------------------------------------------------


def _settings(**kw):
  s = dict(name='adam', lr=0.1, b1=0.5, b2=0.999, eps=1e-8, momentum=0.0, clip_norm=0.0,
           weight_decay=0.0, schedule='constant', decay_every=0, decay_factor=0.5,
           lr_mult=())
  s.update(kw)
  return s


def test_groups_inherit_and_override_one_key():
  c = _config(**{'optimizer.lr': 3e-4, 'optimizer.groups.disc.lr': 1e-3,
                 'optimizer.groups.disc.b1': 0.0, 'optimizer.groups.gen.schedule': 'cosine'})
  groups = optim.resolve_groups(c.optimizer, ('gen', 'disc'))
  assert groups['gen']['lr'] == 3e-4 and groups['gen']['b1'] == 0.5
  assert groups['gen']['schedule'] == 'cosine' and groups['disc']['schedule'] == 'linear_decay'
  assert groups['disc']['lr'] == 1e-3 and groups['disc']['b1'] == 0.0
  assert groups['disc']['b2'] == 0.999
  with pytest.raises(JaxganError, match=r"unknown optimizer group\(s\) mapping; this "
                     r"task's groups: gen, disc"):
    optim.resolve_groups(_with_group(c, 'mapping').optimizer, ('gen', 'disc'))
  with pytest.raises(JaxganError, match=r"unknown optimizer.groups.disc.schedule 'step'"):
    make_task(_config(**{'optimizer.groups.disc.schedule': 'step'}), 10)
  with pytest.raises(JaxganError, match=r'optimizer.groups.gen.b2=1.0 must be in \[0, 1\)'):
    make_task(_config(**{'optimizer.groups.gen.b2': 1.0}), 10)


def _with_group(c, name):
  from jaxgan.configs import common
  c = config_lib.from_json(config_lib.to_json(c))
  common.optimizer_groups(c, name)
  return c


def test_schedules_by_hand():
  kw = dict(epochs=2, epochs_decay=2, steps_per_epoch=10, total_steps=40)
  const = optim.make_schedule('constant', 0.5, **kw)
  assert float(const(0)) == float(const(39)) == 0.5
  cos = optim.make_schedule('cosine', 0.5, **kw)
  for t in (0, 10, 20, 40):
    assert float(cos(t)) == pytest.approx(0.25 * (1 + math.cos(math.pi * t / 40)), abs=1e-7)
  lin = optim.make_schedule('linear_decay', 0.5, **kw)
  # Epochs 0, 1 at 1; epoch 2: 1 - 1/3; epoch 3: 1 - 2/3 (the reference's rule).
  assert [float(lin(s)) for s in (0, 19, 20, 30)] == pytest.approx(
      [0.5, 0.5, 0.5 * 2 / 3, 0.5 / 3])
  with pytest.raises(JaxganError, match="unknown optimizer schedule 'step'"):
    optim.make_schedule('step', 0.5, **kw)
  # torch's StepLR: x 0.5 every 3 steps.
  steps = optim.make_schedule('step_decay', 0.5, decay_every=3, decay_factor=0.5, **kw)
  assert [float(steps(s)) for s in (0, 2, 3, 5, 6, 9)] == pytest.approx(
      [0.5, 0.5, 0.25, 0.25, 0.125, 0.0625])
  with pytest.raises(JaxganError, match=r'optimizer.decay_every=0 must be >= 1 for the '
                     'step_decay schedule'):
    make_task(_config(**{'optimizer.schedule': 'step_decay'}), 10)


def test_weight_decay_is_torchs_coupled_l2():
  # SGD, lr 1: the update is -(g + wd p); Adam: its first update is -lr sign(g + wd p),
  # here with g + wd p of the other sign than g for the second weight.
  p = {'w': jnp.array([1.0, 10.0])}
  g = {'w': jnp.array([0.5, -0.5])}
  sgd = optim.make_optimizer(_settings(name='sgd', lr=1.0, weight_decay=0.1),
                             lambda step: 1.0)
  updates, _ = sgd.update(g, sgd.init(p), p, step=0)
  np.testing.assert_allclose(updates['w'], [-0.6, -0.5], rtol=1e-6)
  adam = optim.make_optimizer(_settings(weight_decay=0.1), lambda step: 0.1)
  updates, _ = adam.update(g, adam.init(p), p, step=0)
  np.testing.assert_allclose(updates['w'], [-0.1, -0.1], rtol=1e-5)
  with pytest.raises(JaxganError, match=r'optimizer.weight_decay=-1.0 must be >= 0'):
    make_task(_config(**{'optimizer.weight_decay': -1.0}), 10)


def test_lr_multipliers_scale_matching_parameters_only():
  params = {'G': {'mapping': {'w': jnp.ones(3)}, 'synthesis': {'w': jnp.ones(2)}}}
  grads = jax.tree.map(lambda x: 2.0 * x, params)
  opt = optim.make_optimizer(_settings(name='sgd', lr=0.1, lr_mult=('G/mapping/.*=0.01',)),
                             lambda step: 0.1)
  updates, _ = opt.update(grads, opt.init(params), params, step=0)
  np.testing.assert_allclose(updates['G']['mapping']['w'], -0.1 * 0.01 * 2.0, rtol=1e-6)
  np.testing.assert_allclose(updates['G']['synthesis']['w'], -0.1 * 2.0, rtol=1e-6)
  bad = optim.make_optimizer(_settings(lr_mult=('G/mapp/.*=0.01',)), lambda step: 0.1)
  with pytest.raises(JaxganError, match="pattern 'G/mapp/.\\*' matches no parameter"):
    bad.init(params)
  with pytest.raises(JaxganError, match="bad optimizer.lr_mult entry 'G/mapping'"):
    optim.resolve_groups(_config(**{'optimizer.lr_mult': 'G/mapping'}).optimizer,
                         ('gen', 'disc'))


@pytest.mark.slow
def test_lr_mult_reaches_the_step():
  # DCGAN's G under SGD: parameters of a multiplier-0 layer do not move, the rest do.
  c = _config(**{'optimizer.name': 'sgd', 'optimizer.lr': 0.01,
                 'optimizer.groups.gen.lr_mult': 'G/conv_0/.*=0.0'})
  task = make_task(c, 10)
  state = init_state(task)
  new, _ = jax.jit(task.train_step)(state, _batch(c))
  frozen = ['conv_0']
  assert frozen, list(state.params['G'])
  for k in state.params['G']:
    same = all(np.array_equal(a, b) for a, b in zip(_leaves(state.params['G'][k]),
                                                    _leaves(new.params['G'][k])))
    assert same == (k in frozen), k


def test_lazy_correction_of_a_regularised_group():
  # k = 16: c = 16/17; Adam's first moment after one update is (1 - b1^c) g, and its
  # first update is -lr c sign(g) (bias-corrected m / sqrt(v) = sign(g)).
  c = 16 / 17
  opt = optim.make_optimizer(_settings(lr=0.1, b1=0.5), lambda step: 0.1, lazy_interval=16)
  g = {'w': jnp.array([0.3, -2.0])}
  state = opt.init(g)
  updates, state = opt.update(g, state, g, step=0)
  np.testing.assert_allclose(state[0].mu['w'], (1 - 0.5 ** c) * g['w'], rtol=1e-6)
  np.testing.assert_allclose(state[0].nu['w'], (1 - 0.999 ** c) * g['w'] ** 2, rtol=1e-5)
  np.testing.assert_allclose(updates['w'], -0.1 * c * np.sign(g['w']), rtol=1e-5)
  # The task applies it to the group its lazy penalty updates (disc), not to gen.
  task = make_task(_config(**{'loss.gp': 'r1', 'loss.gp_every': 4}), 10)
  lrs = {g: float(task.schedules[g](0)) for g in ('gen', 'disc')}
  probe = {'D': {'w': jnp.ones(2)}}
  upd, _ = task.optimizers['disc'].update(probe, task.optimizers['disc'].init(probe), probe,
                                         step=0)
  np.testing.assert_allclose(upd['D']['w'], -lrs['disc'] * 4 / 5, rtol=1e-5)
  upd, _ = task.optimizers['gen'].update(probe, task.optimizers['gen'].init(probe), probe,
                                        step=0)
  np.testing.assert_allclose(upd['D']['w'], -lrs['gen'], rtol=1e-5)


# -- EMA --------------------------------------------------------------------------


def test_ema_beta_by_hand():
  # Half-life 10k images at batch 32: beta = 0.5 ** (32 / 10000).
  beta = optim.ema_beta(10**6, batch_size=32, decay=0.0, half_life_images=10000.0,
                        rampup=0.05)
  assert float(beta) == pytest.approx(0.5 ** (32 / 10000), rel=1e-6)
  # Ramp-up: after 100 steps of 32 images the half-life is capped at 0.05 * 3200 = 160.
  beta = optim.ema_beta(100, batch_size=32, decay=0.0, half_life_images=10000.0,
                        rampup=0.05)
  assert float(beta) == pytest.approx(0.5 ** (32 / 160), rel=1e-6)
  assert float(optim.ema_beta(0, batch_size=32, decay=0.0, half_life_images=10000.0,
                              rampup=0.05)) == 0.0  # the EMA starts as a copy
  assert float(optim.ema_beta(5, batch_size=32, decay=0.99, half_life_images=0.0,
                              rampup=0.0)) == pytest.approx(0.99)


@pytest.mark.slow
def test_ema_follows_its_formula_and_serves_inference():
  c = _config(**{'ema.decay': 0.9})
  task = make_task(c, 10)
  assert task.ema_networks == ('G',)
  state = init_state(task)
  assert set(state.ema_params) == {'G'}
  steps = task.step_functions()
  assert list(steps) == ['main', 'ema']  # the EMA last in the iteration
  p0 = state.params['G']
  new, _ = jax.jit(steps['main'][0])(state, _batch(c))
  new, metrics = jax.jit(steps['ema'][0])(new, None)
  assert float(metrics['ema_beta']) == pytest.approx(0.9)
  expected = jax.tree.map(lambda p1, e0: p1 + 0.9 * (e0 - p1), new.params['G'], p0)
  for got, want in zip(_leaves(new.ema_params['G']), _leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
  # Samples come from the EMA weights; with ema.for_inference off, from the live ones.
  # Each generator call jitted: one compile, not one per op.
  z = jax.random.PRNGKey(3)
  ema_g = jax.jit(lambda new, z: Nets(
      task.modules, {**new.params, 'G': new.ema_params['G']}, new.batch_stats,
      train=False)('G', jax.random.normal(z, (2, task.latent_dim))))(new, z)
  samples = jax.jit(task.generate_samples, static_argnums=2)
  np.testing.assert_allclose(samples(new, z, 2), ema_g, rtol=1e-6)
  c.ema.for_inference = False
  live = jax.jit(make_task(c, 10).generate_samples, static_argnums=2)(new, z, 2)
  assert not np.allclose(live, ema_g)
  with pytest.raises(JaxganError, match=r'ema.networks: unknown network\(s\) H'):
    init_state(make_task(_config(**{'ema.decay': 0.9, 'ema.networks': 'H'}), 10))


# -- gradient penalties and lazy steps --------------------------------------------


def test_r1_is_the_squared_input_gradient_norm():
  # D(x) = sum(w * x^2) per sample: grad = 2 w x, |grad|^2 = 4 sum(w^2 x^2).
  w = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 1)), jnp.float32)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 3, 3, 1)), jnp.float32)
  d = lambda v: jnp.sum(w * v ** 2, axis=(1, 2, 3))
  expected = np.mean([4 * np.sum(np.square(w * x[i])) for i in range(2)])
  assert float(losses.squared_gradient_norm(d, x)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('kind', ['r1', 'r2'])
def test_penalty_every_step_adds_gamma_over_two(kind):
  out = {}
  for gamma in (0.0, 4.0):
    c = _config(**{'loss.gp': kind, 'loss.lambda_gp': gamma})
    task = make_task(c, 10)
    _, m = jax.jit(task.train_step)(init_state(task), _batch(c))
    out[gamma] = m
  assert float(out[4.0]['loss_gp']) > 0
  assert float(out[4.0]['loss_D'] - out[0.0]['loss_D']) == pytest.approx(
      2.0 * float(out[4.0]['loss_gp']), rel=1e-4)
  assert 'loss_gp' not in _step_keys(_config())  # none by default


def _step_keys(c):
  task = make_task(c, 10)
  return set(jax.eval_shape(task.train_step, jax.eval_shape(
      task.init_state, jax.random.PRNGKey(0)), _batch(c))[1])


@pytest.mark.slow
def test_lazy_penalty_runs_on_its_schedule_and_only_moves_d():
  c = _config(**{'loss.gp': 'r1', 'loss.gp_every': 3, 'loss.lambda_gp': 2.0})
  task = make_task(c, 10)
  steps = task.step_functions()
  assert list(steps) == ['main', 'd_reg'] and steps['d_reg'][1] == 3
  trainer = runs.CompiledSteps(task, c, sharding.make_mesh(1))
  assert [trainer.due(s) for s in range(4)] == [['main', 'd_reg'], ['main'], ['main'],
                                                ['main', 'd_reg']]
  state = trainer.init()
  before = jax.device_get(state)
  # The loop's own compiled d_reg step (it donates `state`), reused by trainer.run below.
  reg_state, m = trainer.steps['d_reg'][0](state, trainer.put(_batch(c)))
  assert int(reg_state.step) == 0  # only 'main' advances the step
  _assert_equal(reg_state.params['G'], before.params['G'])
  assert not np.array_equal(_leaves(reg_state.params['D'])[0], _leaves(before.params['D'])[0])
  # The reg loss is gamma/2 x k x R1 of D at the reals.
  assert float(m['reg_loss_D']) == pytest.approx(1.0 * 3 * float(m['reg_gp_D']), rel=1e-5)
  # The main step no longer adds the penalty.
  assert 'loss_gp' not in _step_keys(c)
  # Through the loop's wiring the metrics of iteration 0 hold both.
  _, metrics = trainer.run(trainer.init(), trainer.put(_batch(c)), 0)
  assert {'loss_D', 'reg_gp_D'} <= set(metrics)


def test_lazy_step_does_not_advance_its_groups_schedule():
  """Regression (issue 18): a lazy regulariser's update of a group must not move that
  group's learning-rate schedule. After s iterations the rate applied to D (plain SGD,
  so an update of ones moves each weight by exactly -rate) is c x schedule(s), c the
  lazy correction k / (k + 1), and the logged rate is the applied one. Before the fix
  the schedule ran on optax's update count, which the lazy steps advance too: at s = 6
  with k = 2 it read the cosine at 9 of 8 steps, i.e. 0."""
  k, s = 2, 6
  c = _config(**{'loss.gp': 'r1', 'loss.gp_every': k, 'loss.lambda_gp': 1.0,
                 'optimizer.name': 'sgd', 'optimizer.momentum': 0.0,
                 'optimizer.lr': 0.1, 'optimizer.schedule': 'cosine',
                 'train.num_steps': 8})
  task = make_task(c, 10)
  trainer = runs.CompiledSteps(task, c, sharding.make_mesh(1))
  state, batch = trainer.init(), trainer.put(_batch(c))
  for step in range(s):
    state, _ = trainer.run(state, batch, step)
  assert int(state.step) == s
  expected = k / (k + 1) * 0.05 * (1 + math.cos(math.pi * s / 8))
  params = task.group(jax.device_get(state.params), 'disc')
  moved = jax.jit(lambda grads, state: task.apply_gradients('disc', grads, state).params)(
      jax.tree.map(np.ones_like, params), state)
  applied = np.asarray(jax.tree.leaves(params)[0]) - np.asarray(jax.tree.leaves(moved)[0])
  np.testing.assert_allclose(applied, expected, rtol=1e-5)
  _, metrics = trainer.run(state, batch, s)
  assert float(metrics['lr_disc']) == pytest.approx(expected, rel=1e-5)


def test_penalty_config_errors():
  with pytest.raises(JaxganError, match="unknown loss.gp 'r3'; valid: auto, none"):
    make_task(_config(**{'loss.gp': 'r3'}), 10)
  with pytest.raises(JaxganError, match='loss.gp_every=0 must be >= 1'):
    make_task(_config(**{'loss.gp_every': 0}), 10)


# -- Nets and the registry --------------------------------------------------------


class _Noisy(nn.Module):
  @nn.compact
  def __call__(self, x, *, scale=1.0, train=False):
    del train
    noise = jax.random.normal(self.make_rng('noise'), x.shape)
    keep = jax.random.bernoulli(self.make_rng('dropout'), 0.5, x.shape)
    return scale * x + noise, keep


def test_nets_named_streams_and_keyword_inputs():
  def fresh():
    return Nets({'N': _Noisy()}, {'N': {}}, {}, train=True, rng=jax.random.PRNGKey(0),
                streams=('dropout', 'noise'))

  x = jnp.ones((4,))
  a, keep = fresh()('N', x, scale=0.0)
  b, _ = fresh()('N', x, scale=2.0)
  np.testing.assert_allclose(b - a, 2.0 * x, rtol=1e-6)  # the keyword input arrived
  nets = fresh()
  y1, _ = nets('N', x)
  y2, _ = nets('N', x)
  assert not np.allclose(y1, y2)  # each call draws its own noise
  # Call 1's dropout key is fold_in(rng, 1), as before there were other streams; the
  # noise stream's key differs from it.
  call_key = jax.random.fold_in(jax.random.PRNGKey(0), 1)
  np.testing.assert_array_equal(keep, jax.random.bernoulli(call_key, 0.5, (4,)))
  assert not np.allclose(a, jax.random.normal(call_key, (4,)))


class _ContentAndStyle(nn.Module):
  """A network of two inputs (an image and a style vector), as a style translator's
  decoder is: initialisation must be able to give it both."""

  @nn.compact
  def __call__(self, x, style, *, train=False):
    del train
    scale = nn.Dense(x.shape[-1], name='affine')(style)
    return nn.Conv(4, (3, 3), name='conv')(x) * scale[:, None, None, :1]


def test_networks_with_several_inputs_initialise_from_example_inputs():
  from jaxgan.tasks.nets import init_variables
  inputs = (jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32), jnp.ones((1, 5)))
  params, stats = jax.jit(lambda rng: init_variables(_ContentAndStyle(), rng, inputs))(
      jax.random.PRNGKey(0))  # one compile (as the loop initialises), not one per op
  assert params['affine']['kernel'].shape == (5, 3)
  assert params['conv']['kernel'].shape == (3, 3, 3, 4) and stats == {}
  # Every task gives its networks' inputs as such tuples, and init follows them.
  for name in ('cyclegan', 'pix2pix', 'dcgan', 'stylegan'):
    task = make_task(_config(f'{name}:smoke'))
    inputs = task.init_inputs()
    assert set(inputs) == set(task.modules)
    assert all(isinstance(args, tuple) for args in inputs.values())


@pytest.mark.slow
def test_registry_builds_any_signature_and_names_the_valid_ones():
  g = models.make('dcgan_generator', image_size=16, channels=1, ngf=4)
  variables = init(g, jax.random.PRNGKey(0), jnp.zeros((1, 8)), train=False)
  assert apply(g, variables, jnp.zeros((2, 8)), train=False).shape == (2, 16, 16, 1)
  with pytest.raises(JaxganError, match=r"unknown network 'style'; valid: resnet_2blocks"):
    models.make('style')


# -- inference without training state ---------------------------------------------


@pytest.mark.slow
def test_inference_restore_needs_no_optimizer_and_no_data(tmp_path):
  c = _config(**{'train.num_steps': 2, 'train.sample_every': 0, 'ema.decay': 0.5})
  state = train.train_and_evaluate(c, tmp_path)
  config_path = tmp_path / 'config.json'
  saved = json.loads(config_path.read_text())
  saved['data']['source'] = 'folder:/nonexistent/data'  # data gone: still restores
  config_path.write_text(json.dumps(saved))
  config, task, model, step = runs.restore_inference(tmp_path)
  assert step == 2 and isinstance(model, InferenceState)
  assert not task.optimizers  # built for inference: no optimizer
  for name in ('params', 'batch_stats', 'ema_params'):
    _assert_equal(getattr(model, name), getattr(state, name))
  sampler = task.predictors()['samples']
  assert isinstance(sampler, Sampler)
  fn = jax.jit(sampler.fn, static_argnums=2)  # one compile per state type, not per op
  np.testing.assert_allclose(fn(model, jax.random.PRNGKey(1), 3),
                             fn(state, jax.random.PRNGKey(1), 3), rtol=1e-6)


def test_translators_name_their_domains():
  c = _config('cyclegan:smoke')
  preds = make_task(c).predictors()
  assert {n: (p.source, p.target) for n, p in preds.items()} == {
      'AtoB': ('a', 'b'), 'BtoA': ('b', 'a')}
  assert all(isinstance(p, Translator) and p.size_multiple == 4 for p in preds.values())
  c = _config('pix2pix:smoke', **{'data.direction': 'BtoA'})
  (name, p), = make_task(c).predictors().items()
  assert (name, p.source, p.target) == ('BtoA', 'b', 'a')
  with pytest.raises(JaxganError, match='built for inference'):
    init_state(make_task(c))
