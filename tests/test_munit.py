"""The MUNIT task and networks: parameter counts equal to NVlabs/MUNIT's, its two
normalisations and the discriminator's pooling against hand-computed values, the
style code's global pooling, initialisation, one compiled step (which groups move),
losses going down on a fixed batch, the predictors and the sample grid."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import config as config_lib, models, runs
from jaxgan.errors import JaxganError
from jaxgan.models import munit
from jaxgan.tasks import make_task

from conftest import init_state


def _config(experiment='munit:smoke', **overrides):
  c = config_lib.get_experiment(experiment)
  for key, value in overrides.items():
    config_lib.apply_override(c, key, str(value))
  return c


def _batch(size=16, n=2):
  """Smooth images (a tiny net can fit them in a few steps); B is a colour map of A."""
  yy, xx = np.mgrid[0:size, 0:size] / (size - 1.0)
  a = np.stack([np.stack([np.sin(3 * xx + i), np.cos(2 * yy - i), xx * yy], -1)
                for i in range(n)]).astype(np.float32)
  return {'a': jnp.asarray(a), 'b': jnp.asarray(-a[..., ::-1])}


# ------------------------------------------------------------------ parameter counts


@pytest.mark.parametrize('channels,gen,dis', [(3, 15_026_187, 8_271_171),
                                               (1, 15_007_369, 8_265_027)])
def test_parameter_counts_equal_the_reference(channels, gen, dis):
  # NVlabs/MUNIT edges2shoes_folder.yaml's AdaINGen and MsImageDis, counted in PyTorch
  # (sum of p.numel()); from shapes only, at the full 256² size.
  task = make_task(_config('munit', **{'data.channels': channels}))
  shapes = jax.eval_shape(task.init_inference, jax.random.PRNGKey(0)).params
  counts = {name: models.count_params(p) for name, p in shapes.items()}
  assert counts == {'G_A': gen, 'G_B': gen, 'D_A': dis, 'D_B': dis}
  if channels == 3:
    parts = {k: models.count_params(v) for k, v in shapes['G_A'].items()}
    assert parts == {'style_encoder': 2_764_936, 'content_encoder': 5_385_856,
                     'decoder': 5_754_627, 'mlp': 1_120_768}
    assert sorted(shapes['D_A']) == ['scale_0', 'scale_1', 'scale_2']


def test_reference_settings():
  c = config_lib.get_experiment('munit')
  m, l, o = c.model, c.loss, c.optimizer
  assert (m.dim, m.mlp_dim, m.style_dim, m.n_downsample, m.n_res) == (64, 256, 8, 2, 4)
  assert (m.dis_dim, m.dis_n_layer, m.dis_num_scales, m.dis_init) == (
      64, 4, 3, 'gaussian')
  assert (l.gan_mode, l.gan_w, l.recon_x_w, l.recon_s_w, l.recon_c_w,
          l.recon_x_cyc_w) == ('lsgan', 1.0, 10.0, 1.0, 1.0, 0.0)
  assert (o.lr, o.b1, o.b2, c.data.batch_size, c.data.image_size) == (
      1e-4, 0.5, 0.999, 1, 256)
  # Adam's weight_decay 1e-4 (coupled L2) and lr_policy step: x 0.5 every 100k.
  assert (o.weight_decay, o.schedule, o.decay_every, o.decay_factor) == (
      1e-4, 'step_decay', 100_000, 0.5)
  task = make_task(c, 10)
  assert [float(task.schedules['gen'](s)) for s in (0, 99_999, 100_000, 200_000)] == \
      pytest.approx([1e-4, 1e-4, 5e-5, 2.5e-5])


# ------------------------------------------------------------------ hand-computed norms


def test_adain_is_per_instance_per_channel_with_biased_variance():
  # Two samples, 2x2 pixels, two channels. Sample 0, channel 0 holds 1, 2, 3, 4:
  # mean 2.5, biased variance 1.25; channel 1 holds 0, 0, 0, 8: mean 2, variance 12.
  # Sample 1 is sample 0 times 10 (its own statistics: the same normalised values).
  x0 = np.array([[[1, 0], [2, 0]], [[3, 0], [4, 8]]], np.float32)  # [H, W, C]
  x = jnp.asarray(np.stack([x0, 10 * x0]))
  mean = jnp.array([[3.0, -1.0], [0.0, 0.0]])  # the MLP's means: bias
  std = jnp.array([[2.0, 0.5], [1.0, 1.0]])  # the MLP's stds: weight, no +1
  y = np.asarray(munit.adain(x, mean, std))
  s0 = math.sqrt(1.25 + 1e-5)
  assert y[0, :, :, 0].ravel() == pytest.approx(
      [3 + 2 * (v - 2.5) / s0 for v in (1, 2, 3, 4)], abs=1e-5)
  s1 = math.sqrt(12 + 1e-5)
  assert y[0, :, :, 1].ravel() == pytest.approx(
      [-1 + 0.5 * (v - 2) / s1 for v in (0, 0, 0, 8)], abs=1e-5)
  s0_10 = math.sqrt(125 + 1e-5)
  assert y[1, :, :, 0].ravel() == pytest.approx(
      [(v - 25) / s0_10 for v in (10, 20, 30, 40)], abs=1e-5)


def test_layer_norm_divides_by_the_unbiased_std_plus_eps():
  # One sample, 2x1 pixels, two channels: values 1, 2 (row 0) and 3, 6 (row 1).
  # Over all four: mean 3, unbiased variance (4 + 1 + 0 + 9) / 3 = 14/3 (torch's
  # Tensor.std); the biased one (14/4) would give other numbers.
  x = jnp.array([[[[1.0, 2.0]], [[3.0, 6.0]]]])  # [1, H=2, W=1, C=2]
  gamma, beta = jnp.array([2.0, 0.5]), jnp.array([0.0, 1.0])
  y = np.asarray(munit.layer_norm(x, gamma, beta))
  d = math.sqrt(14 / 3) + 1e-5
  expect = [[2 * (1 - 3) / d, 1 + 0.5 * (2 - 3) / d],
            [2 * (3 - 3) / d, 1 + 0.5 * (6 - 3) / d]]
  assert y[0, :, 0, :] == pytest.approx(np.array(expect), abs=1e-6)
  # A second sample is normalised by its own statistics.
  y2 = np.asarray(munit.layer_norm(jnp.concatenate([x, x + 100]), gamma, beta))
  assert y2[1] == pytest.approx(y[0], abs=1e-4)


def test_average_pool_excludes_the_padding():
  # AvgPool2d(3, 2, padding=1, count_include_pad=False) on 3x3 -> 2x2: windows
  # centred on pixels 0 and 2 of each axis, so each sees 2x2 real pixels and 5 of
  # padding, which count_include_pad=True would have averaged in (sum / 9).
  x = jnp.arange(1.0, 10.0).reshape(1, 3, 3, 1)  # rows 1 2 3 / 4 5 6 / 7 8 9
  y = np.asarray(munit.avg_pool_3x3_s2(x))[0, :, :, 0]
  assert y == pytest.approx(np.array([[(1 + 2 + 4 + 5) / 4, (2 + 3 + 5 + 6) / 4],
                                      [(4 + 5 + 7 + 8) / 4, (5 + 6 + 8 + 9) / 4]]))


def test_adain_params_order_mean_then_std_per_norm():
  # The reference's assign_adain_params: per AdaIN layer, the first num_features of
  # the MLP's output are the means, the next the stds. With the second norm's std 0
  # and mean m, a block outputs x + m whatever its convs do.
  d = 3
  block = munit.AdaINResBlock(d)
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 4, 4, d))
  m = jnp.array([[0.5, -1.0, 2.0]])
  params = jnp.concatenate([jnp.ones((1, 2 * d)), m, jnp.zeros((1, d))], axis=1)
  v = block.init(jax.random.PRNGKey(1), x, params)
  y = block.apply(v, x, params)
  assert np.asarray(y) == pytest.approx(np.asarray(x + m[:, None, None, :]), abs=1e-5)


# ------------------------------------------------------------------ style, init


def test_style_code_is_a_function_of_the_mean_over_positions():
  """The style code is the 1x1 conv of the *global average* of the last feature map,
  so permuting that map's positions cannot change it, while changing one position
  does. (The encoder as a whole is not shift-invariant: reflection padding and
  stride-2 windows see a shifted image differently, so the permutation is applied at
  the pooling's input, through a method interceptor.) It would fail for a flatten +
  dense head, a max pool or a pooled-after-projection that is not linear."""
  enc = munit.StyleEncoder(dim=4, style_dim=5)
  x = jax.random.uniform(jax.random.PRNGKey(0), (1, 32, 32, 3), minval=-1, maxval=1)
  v = enc.init(jax.random.PRNGKey(1), x)

  def with_last_map(edit):
    def interceptor(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if context.module.name == f'down_{munit.STYLE_DOWNSAMPLES - 1}':
        return edit(out)
      return out
    with nn.intercept_methods(interceptor):
      return np.asarray(enc.apply(v, x))

  plain = with_last_map(lambda h: h)
  assert plain.shape == (1, 5)
  # The last map is 2x2 (32 / 16): reverse its positions (rows and columns).
  permuted = with_last_map(lambda h: h[:, ::-1, ::-1, :])
  np.testing.assert_allclose(permuted, plain, atol=1e-6)
  changed = with_last_map(lambda h: h.at[:, 0, 0, :].add(1.0))
  assert np.abs(changed - plain).max() > 1e-3


def test_initialisation_kaiming_for_generators_gaussian_for_discriminators():
  g = models.make('munit_generator', channels=3, dim=16, style_dim=8, n_res=1,
                  mlp_dim=32)
  d = models.make('munit_discriminator', dim=16, n_layer=2, num_scales=1)
  dk = models.make('munit_discriminator', dim=16, n_layer=2, num_scales=1,
                   init='kaiming')
  x = jnp.zeros((1, 16, 16, 3))
  # The three initialisations as one program, compiled as the loop compiles its init
  # (called eagerly, op by op, they were ~130 small compiles).
  inits = lambda key: tuple(m.init(key, x)['params'] for m in (g, d, dk))
  pg, pd, pk = runs.jit_init(inits, jax.devices()[:1])(jax.random.PRNGKey(0))
  std = lambda leaf: float(np.std(np.asarray(leaf)))
  k = pg['content_encoder']['down_1']['kernel']  # 4x4, 32 -> 64: fan_in 512
  assert std(k) == pytest.approx(math.sqrt(2 / 512), rel=0.03)
  fc = pg['mlp']['fc_1']['kernel']  # 32 -> 32: fan_in 32
  assert std(fc) == pytest.approx(math.sqrt(2 / 32), rel=0.1)
  assert std(pd['scale_0']['conv_1']['kernel']) == pytest.approx(0.02, rel=0.05)
  # conv_1: 4x4, 16 -> 32: fan_in 256
  assert std(pk['scale_0']['conv_1']['kernel']) == pytest.approx(math.sqrt(2 / 256),
                                                                  rel=0.05)
  gamma = pg['decoder']['up_0_norm']['gamma']
  assert np.asarray(gamma).min() >= 0 and np.asarray(gamma).max() <= 1
  for tree in (pg, pd):
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
      if path[-1].key in ('bias', 'beta'):
        assert not np.any(np.asarray(leaf)), path


# ------------------------------------------------------------------ the step


def test_step_updates_each_group_from_its_own_loss():
  # gan_w = 0: D's loss is 0, so its gradients are 0 and Adam leaves it exactly as it
  # was (with the reference's weight decay off: it moves D towards 0 on its own),
  # while the generators move on their reconstruction terms alone; with
  # recon_x_cyc_w > 0 the cycle terms appear.
  task = make_task(_config(**{'loss.gan_w': 0.0, 'loss.recon_x_cyc_w': 2.0,
                              'optimizer.weight_decay': 0.0}), 10)
  state = init_state(task)
  copy = jax.jit(lambda s: jax.tree.map(jnp.copy, s))  # one compile, not one a shape
  new, m = jax.jit(task.train_step)(copy(state), _batch())
  assert all(np.isfinite(float(v)) for v in m.values())
  assert float(m['loss_D']) == 0.0 and float(m['loss_adv_A']) == 0.0
  assert float(m['loss_cyc_x_A']) > 0 and float(m['loss_cyc_x_B']) > 0
  terms = [k for k in m if k.startswith('loss_') and k not in ('loss_G', 'loss_D',
                                                                'loss_D_A', 'loss_D_B')]
  assert float(m['loss_G']) == pytest.approx(sum(float(m[k]) for k in terms), rel=1e-5)
  same = lambda a, b: all(np.array_equal(x, y) for x, y in
                          zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  assert same(new.params['D_A'], state.params['D_A'])
  assert same(new.params['D_B'], state.params['D_B'])
  assert not same(new.params['G_A'], state.params['G_A'])
  assert not same(new.params['G_B'], state.params['G_B'])
  assert same(new.aux, state.aux)  # the fixed sample styles
  assert int(new.step) == 1 and new.batch_stats == {'G_A': {}, 'G_B': {}, 'D_A': {},
                                                    'D_B': {}}


def test_losses_go_down_on_a_fixed_batch():
  task = make_task(_config(**{'optimizer.lr': 1e-3}), steps_per_epoch=100)
  state = init_state(task)
  step = jax.jit(task.train_step)
  batch = _batch()
  history = []
  for _ in range(10):
    before = state.params
    state, m = step(state, batch)
    history.append({k: float(v) for k, v in m.items()})
  for key in ('loss_D_A', 'loss_D_B', 'loss_G', 'lr_gen', 'lr_disc', 'grad_norm_gen',
              'grad_norm_disc'):
    assert all(np.isfinite(h[key]) for h in history), key
  recon = lambda h: h['loss_recon_x_A'] + h['loss_recon_x_B']
  assert recon(history[-1]) < 0.8 * recon(history[0]), (recon(history[0]),
                                                         recon(history[-1]))
  d_loss = lambda h: h['loss_D_A'] + h['loss_D_B']
  assert d_loss(history[-1]) < d_loss(history[0])
  for name in task.modules:  # every network moves under the default weights
    assert not np.array_equal(jax.tree.leaves(before[name])[0],
                              jax.tree.leaves(state.params[name])[0]), name


# ------------------------------------------------------------------ inference


def test_predictors_sample_grid_and_styles():
  task = make_task(_config(), 10)
  state = init_state(task)
  batch = _batch()
  x_a, x_b = batch['a'], batch['b']
  p = task.predictors()
  assert {k: (v.source, v.target, v.size_multiple) for k, v in p.items()} == {
      'AtoB': ('a', 'b', 4), 'BtoA': ('b', 'a', 4)}
  # Each call jitted, as the tools run them (op by op, ~150 small compiles).
  ab_fn = jax.jit(p['AtoB'].fn)
  ab = np.asarray(ab_fn(state, x_a))
  assert ab.shape == x_a.shape and np.abs(ab).max() <= 1
  # Deterministic, and each image's translation independent of its batch.
  np.testing.assert_array_equal(ab, np.asarray(ab_fn(state, x_a)))
  np.testing.assert_allclose(np.asarray(ab_fn(state, x_a[1:])), ab[1:], atol=1e-5)
  style = jax.jit(lambda s, y: task.encode_style(s, 'b', y))(state, x_b)
  assert style.shape == (2, task.style_dim)
  translate = jax.jit(task.translate, static_argnums=1)
  np.testing.assert_allclose(np.asarray(translate(state, 'BtoA', x_b,
                                                  task.default_style())),
                             np.asarray(jax.jit(p['BtoA'].fn)(state, x_b)), atol=1e-6)
  cols = jax.jit(task.sample)(state, batch)
  assert len(cols) == 5 and all(c.shape == x_a.shape for c in cols)
  np.testing.assert_array_equal(np.asarray(cols[0]), np.asarray(x_a))
  np.testing.assert_array_equal(np.asarray(cols[4]), np.asarray(x_b))
  assert np.abs(np.asarray(cols[1]) - np.asarray(cols[2])).max() > 1e-4  # two styles
  np.testing.assert_allclose(np.asarray(cols[3]),
                             np.asarray(translate(state, 'AtoB', x_a, style)), atol=1e-5)
  assert state.aux['sample_style_1'].shape == (task.grid, task.style_dim)
  with pytest.raises(JaxganError, match="unknown direction 'AB'"):
    task.translate(state, 'AB', x_a, style)
  with pytest.raises(JaxganError, match="unknown domain 'c'"):
    task.encode_style(state, 'c', x_a)


@pytest.mark.parametrize('overrides,pattern', [
    ({'data.image_size': 8, 'data.load_size': 8}, r'data.image_size=8 is below 16'),
    ({'data.image_size': 18, 'data.load_size': 18}, r'multiple of 4'),
    ({'loss.recon_s_w': -1}, r'loss.recon_s_w=-1.0 must be >= 0'),
    ({'model.n_res': 0}, r'model.n_res=0 must be an integer >= 1'),
    ({'model.dis_init': 'xavier'}, r"unknown model.dis_init 'xavier'; valid: gaussian, "),
])
def test_bad_settings_fail_in_one_line(overrides, pattern):
  with pytest.raises(JaxganError, match=pattern):
    make_task(_config(**overrides))


# ------------------------------------------------------------------ the tools


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A munit:smoke workdir (4 steps) and a few 16x16 input images."""
  from jaxgan import images, train
  root = tmp_path_factory.mktemp('munit')
  train.train_and_evaluate(_config(), root / 'w')
  rng = np.random.default_rng(0)
  (root / 'in').mkdir()
  for i in range(3):
    images.write_png(root / 'in' / f'{i}.png', rng.integers(0, 256, (16, 16, 3),
                                                            dtype=np.uint8))
  return root


@pytest.mark.slow
def test_translate_and_sample_with_styles(trained, tmp_path, capsys):
  from PIL import Image
  from conftest import run_in_process
  w, inputs = trained / 'w', trained / 'in'

  def translate(out, *flags):
    ran = run_in_process(capsys, 'jaxgan.translate', '--workdir', str(w), '--direction',
                         'AtoB', '--input', str(inputs), '--output', str(out), *flags)
    assert ran.returncode == 0, ran.stderr
    return {p.name: np.asarray(Image.open(p)) for p in sorted(out.glob('*.png'))}

  # --style-seed: deterministic; another seed, another output.
  first = translate(tmp_path / 's1', '--style-seed', '5')
  assert sorted(first) == ['0.png', '1.png', '2.png']
  again = translate(tmp_path / 's2', '--style-seed', '5')
  other = translate(tmp_path / 's3', '--style-seed', '6')
  assert all(np.array_equal(first[k], again[k]) for k in first)
  assert any(not np.array_equal(first[k], other[k]) for k in first)
  # --num-styles: one file per style; style j is the j-th draw of the seed's key.
  many = translate(tmp_path / 'n', '--num-styles', '3', '--style-seed', '5')
  assert sorted(many) == [f'{i}_style{j:02d}.png' for i in range(3) for j in range(3)]
  # --style-ref equals the style encoder of the target domain called directly.
  ref = inputs / '2.png'
  by_ref = translate(tmp_path / 'r', '--style-ref', str(ref))
  config, task, model, _ = runs.restore_inference(w)
  x = lambda path: jnp.asarray(np.asarray(Image.open(path), np.float32)[None] / 127.5 - 1)
  # Called directly, in one jitted program (op by op, ~60 small compiles).
  direct = jax.jit(lambda m, r, x0: task.translate(m, 'AtoB', x0,
                                                   task.encode_style(m, 'b', r)))
  direct = (np.asarray(direct(model, x(ref), x(inputs / '0.png')))[0] + 1) * 127.5
  assert np.abs(by_ref['0.png'].astype(np.float64) - direct).max() <= 1.0  # uint8 rounding
  # The style grid: rows = inputs, columns = input + styles; a column is one style.
  for flags in ([], ['--interpolate']):
    out = tmp_path / f'grid{len(flags)}.png'
    ran = run_in_process(capsys, 'jaxgan.sample', '--workdir', str(w), '--style-grid',
                         str(inputs), '--num-styles', '4', '--output', str(out), *flags)
    assert ran.returncode == 0, ran.stderr
    grid = np.asarray(Image.open(out))
    assert grid.shape == (3 * 18 + 2, 5 * 18 + 2, 3)
