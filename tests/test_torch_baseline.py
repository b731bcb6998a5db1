"""Tests for experiments/torch_baseline.py, the PyTorch baseline of the A/B benchmark.

Parameter counts are pinned to the reference's numbers and compared with jaxgan's at
full size (building the torch networks is cheap; jaxgan's side is shape-only); the
iterations that run use small sizes and widths so the file stays fast on CPU.
Skipped where PyTorch is not installed (pip install -e '.[bench]').

The StyleGAN baseline runs NVlabs stylegan2-ada-pytorch's own code from a clone: its
config mapping and errors are tested here without it; the tests that build and run
it need JAXGAN_STYLEGAN_REFERENCE_DIR=PATH to a clone (skipped without).
"""

import importlib.util
import json
import os
import random
import re
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip(
    'torch', reason="PyTorch is optional (pip install -e '.[bench]')")

_PATH = Path(__file__).resolve().parents[1] / 'experiments' / 'torch_baseline.py'


def _load():
  spec = importlib.util.spec_from_file_location('torch_baseline', _PATH)
  module = importlib.util.module_from_spec(spec)
  sys.modules.setdefault('torch_baseline', module)
  spec.loader.exec_module(module)
  return module


tb = _load()


def _counts(**kwargs):
  return tb.build(tb.Settings(**kwargs)).counts()


# The reference's numbers (as pinned for jaxgan in tests/test_models.py,
# tests/test_dcgan_models.py and tests/test_pix2pix.py).
@pytest.mark.parametrize('net, expected', [
    (lambda: tb.ResnetGenerator(3, 3, 64, 'instance', False, 9), 11_378_179),
    (lambda: tb.ResnetGenerator(3, 3, 64, 'instance', False, 6), 7_837_699),
    (lambda: tb.UnetGenerator(3, 3, 8, 64, 'batch', True), 54_413_955),
    (lambda: tb.UnetGenerator(3, 3, 7, 64, 'batch', True), 41_828_995),
    (lambda: tb.NLayerDiscriminator(3, 64, 3, 'instance'), 2_764_737),
    (lambda: tb.NLayerDiscriminator(6, 64, 3, 'batch'), 2_768_705),
    (lambda: tb.DCGANGenerator(100, 64, 3, 64), 3_576_704),
    (lambda: tb.DCGANDiscriminator(64, 3, 64), 2_765_568),
    (lambda: tb.DCGANGenerator(100, 64, 1, 32), 1_066_880),
    (lambda: tb.DCGANDiscriminator(64, 1, 32), 661_248),
])
def test_param_counts_match_the_reference(net, expected):
  assert tb.count_params(net()) == expected


@pytest.mark.parametrize('kwargs, expected', [
    (dict(experiment='cyclegan', size=256),
     {'G': 11_378_179, 'F': 11_378_179, 'D_A': 2_764_737, 'D_B': 2_764_737}),
    (dict(experiment='pix2pix', size=256), {'G': 54_413_955, 'D': 2_768_705}),
    (dict(experiment='pix2pix', size=64), None),  # unet_64
    (dict(experiment='pix2pix', size=32), None),  # unet_32: the smallest U-Net
    (dict(experiment='dcgan', size=64), {'G': 3_576_704, 'D': 2_765_568}),
    (dict(experiment='dcgan', size=32, channels=1), {'G': 1_066_880, 'D': 661_248}),
])
def test_param_counts_equal_jaxgan(kwargs, expected):
  settings = tb.Settings(**kwargs)
  counts = tb.build(settings).counts()
  jax_counts = tb.jaxgan_counts(settings)
  assert counts == jax_counts
  if expected is not None:
    assert counts == expected
  tb.check_counts(counts, jax_counts)  # no error


def test_count_mismatch_is_a_one_line_error_naming_the_network():
  with pytest.raises(tb.BaselineError) as e:
    tb.check_counts({'G': 10, 'D': 2_764_737}, {'G': 10, 'D': 2_764_738})
  assert str(e.value) == 'parameter count of D: torch 2,764,737 != jaxgan 2,764,738'


def test_generator_by_size_mirrors_jaxgan():
  assert [tb.default_generator('pix2pix', s) for s in (32, 64, 96, 128, 256, 512)] == [
      'unet_32', 'unet_64', 'unet_32', 'unet_128', 'unet_256', 'unet_256']
  assert tb.default_generator('cyclegan', 64) == 'resnet_9blocks'
  with pytest.raises(tb.BaselineError, match='multiple of 32'):
    tb.Settings(experiment='pix2pix', size=48)
  with pytest.raises(tb.BaselineError, match='power of two'):
    tb.Settings(experiment='dcgan', size=48)


def test_output_shapes_match_jaxgan():
  import jax
  import jax.numpy as jnp
  from jaxgan import models

  def jax_shape(module, shape):
    x = jnp.zeros(shape)
    return jax.eval_shape(lambda: module.init_with_output(
        jax.random.PRNGKey(0), x, train=False))[0].shape

  for size in (32, 256):
    d = tb.NLayerDiscriminator(3, 64, 3, 'instance')
    out = d(torch.zeros(1, 3, size, size)).shape
    expected = jax_shape(models.make_discriminator('basic'), (1, size, size, 3))
    assert (out[0], out[2], out[3], out[1]) == expected  # NCHW vs NHWC
  with torch.no_grad():
    g = tb.ResnetGenerator(3, 3, 8, 'instance', False, 9)
    assert g(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    u = tb.UnetGenerator(3, 3, 5, 8, 'batch', True).eval()
    assert u(torch.zeros(1, 3, 32, 32)).shape == (1, 3, 32, 32)
    dg = tb.DCGANGenerator(100, 8, 3, 64).eval()
    assert dg(torch.zeros(2, 100, 1, 1)).shape == (2, 3, 64, 64)
    assert tb.DCGANDiscriminator(8, 3, 64).eval()(torch.zeros(2, 3, 64, 64)).shape == (2,)


def _snapshot(model):
  return {name: [p.detach().clone() for p in net.parameters()]
          for name, net in model.networks.items()}


@pytest.mark.parametrize('kwargs', [
    dict(experiment='cyclegan', size=32, ngf=8, ndf=8),
    dict(experiment='pix2pix', size=32, ngf=8, ndf=8),
    dict(experiment='dcgan', size=64, batch=2),
])
def test_one_iteration_updates_every_network(kwargs):
  model = tb.build(tb.Settings(**kwargs))
  before = _snapshot(model)
  times = tb.time_steps(model, steps=1, warmup=0)
  assert len(times) == 1 and times[0] > 0
  losses = model.losses()
  assert losses and all(torch.isfinite(torch.tensor(v)) for v in losses.values())
  for name, params in _snapshot(model).items():
    assert any(not torch.equal(a, b) for a, b in zip(before[name], params)), name
  # set_requires_grad as in the references: pix2pix's step ends with D frozen (it
  # is unfrozen at the start of the next), CycleGAN's with D_A and D_B trainable.
  frozen = {'D'} if kwargs['experiment'] == 'pix2pix' else set()
  for name, net in model.networks.items():
    assert all(p.requires_grad != (name in frozen) for p in net.parameters()), name
  if kwargs['experiment'] == 'cyclegan':
    assert set(losses) == {'D_A', 'D_B', 'G_A', 'G_B', 'cycle_A', 'cycle_B', 'idt_A',
                           'idt_B', 'G'}
    # The pools keep this step's fakes, without their graph.
    assert model.fake_A_pool.num_imgs == model.fake_B_pool.num_imgs == 1
    assert not model.fake_A_pool.images[0].requires_grad


def test_image_pool_semantics():
  size = 50
  pool = tb.ImagePool(size, rng=random.Random(0))
  images = torch.arange(200, dtype=torch.float32).view(200, 1, 1, 1)
  # Filling: the first 50 images come back as they are, and are stored in order.
  for start in range(0, size, 10):
    out = pool.query(images[start:start + 10])
    assert torch.equal(out, images[start:start + 10])
  assert [int(x) for x in pool.images] == list(range(size))
  # Full: each image is returned (pool unchanged) or swapped for a stored one.
  returned = swapped = 0
  for i in range(size, 200):
    stored = [int(x) for x in pool.images]
    out = int(pool.query(images[i:i + 1]))
    now = [int(x) for x in pool.images]
    if out == i:
      returned += 1
      assert now == stored
    else:
      swapped += 1
      slot = stored.index(out)
      assert now == stored[:slot] + [i] + stored[slot + 1:]
  assert returned > 50 and swapped > 50  # ~1/2 each of 150
  # Reproducible with the same seed; pool_size 0 is a pass-through.
  again = tb.ImagePool(size, rng=random.Random(0))
  first = [int(again.query(images[i:i + 1])) for i in range(200)]
  third = tb.ImagePool(size, rng=random.Random(0))
  assert first == [int(third.query(images[i:i + 1])) for i in range(200)]
  assert tb.ImagePool(0).query(images) is images


def test_cli_json_and_errors(capsys):
  threads = torch.get_num_threads()
  try:
    tb.main(['--experiment', 'dcgan', '--size', '8', '--batch', '2', '--steps', '2',
             '--warmup', '0', '--threads', '1', '--json'])
  finally:
    torch.set_num_threads(threads)  # a process-wide setting
  r = json.loads(capsys.readouterr().out)
  assert r['experiment'] == 'dcgan' and r['steps'] == 2 and r['threads'] == 1
  assert r['min_s'] <= r['step_s'] <= r['max_s'] and r['finite'] and r['count_checked']
  assert r['img_s'] == pytest.approx(2 / r['step_s'])
  with pytest.raises(SystemExit, match='^torch_baseline: error: pix2pix needs --size'):
    tb.main(['--experiment', 'pix2pix', '--size', '48'])


def _load_bench_compare():
  path = _PATH.parent / 'bench_compare.py'
  spec = importlib.util.spec_from_file_location('bench_compare', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_bench_compare_commands_runs_and_table():
  bc = _load_bench_compare()
  args = bc.parse_args(['--experiment', 'pix2pix', '--sizes', '64', '--channels', '1'])
  jax_cmd, torch_cmd = bc.commands(args, 64, 2, 'bfloat16', threads=2, first_round=False)
  assert '--json' in jax_cmd and '--json' in torch_cmd
  assert '--config.model.generator=unet_64' in jax_cmd
  assert '--config.data.channels=1' in jax_cmd
  assert torch_cmd[torch_cmd.index('--generator') + 1] == 'unet_64'
  assert torch_cmd[torch_cmd.index('--threads') + 1] == '2'
  assert '--skip-count-check' in torch_cmd
  # A run: its JSON line, its own CPU time apart from the others'.
  code = 'import json; sum(range(10**6)); print("noise"); print(json.dumps({"step_s": 0.5}))'
  run = bc.run_one([sys.executable, '-c', code], None, bc.cpu_set(), timeout=60)
  assert run['result'] == {'step_s': 0.5} and run['error'] == '' and run['rc'] == 0
  assert run['child_cpu_s'] > 0 and 0 <= run['others_pct']
  failed = bc.run_one([sys.executable, '-c', 'raise SystemExit("x: error: bad")'], None,
                      bc.cpu_set(), timeout=60)
  assert failed['error'] == 'exit status 1: x: error: bad'
  rows = [dict(row='cyclegan 64 b1 float32', jaxgan='1.0000 (0.9000-1.1000)',
               baseline='2.0000 (2.0000-2.0000)', ratio='2.00x')]
  assert bc.table(rows, markdown=True).splitlines() == [
      '| row | jaxgan s/iteration | baseline s/iteration | baseline/jaxgan |',
      '|---|---|---|---|',
      '| cyclegan 64 b1 float32 | 1.0000 (0.9000-1.1000) | 2.0000 (2.0000-2.0000) | 2.00x |']


# -- StyleGAN: the reference's own code -----------------------------------------------

REFERENCE_DIR = os.environ.get('JAXGAN_STYLEGAN_REFERENCE_DIR', '')
needs_reference = pytest.mark.skipif(
    not REFERENCE_DIR, reason='JAXGAN_STYLEGAN_REFERENCE_DIR (a clone of '
    'github.com/NVlabs/stylegan2-ada-pytorch) is not set')

# stylegan:demo in the reference's terms, written out by hand from
# jaxgan/configs/stylegan.py (base + _demo) and train.py's `auto` rules.
DEMO_KWARGS = dict(
    G_kwargs=dict(z_dim=64, c_dim=0, w_dim=64, img_resolution=32, img_channels=1,
                  mapping_kwargs=dict(num_layers=2, w_avg_beta=0.995),
                  synthesis_kwargs=dict(channel_base=512, channel_max=64, num_fp16_res=0,
                                        conv_clamp=None)),
    D_kwargs=dict(c_dim=0, img_resolution=32, img_channels=1, architecture='orig',
                  channel_base=512, channel_max=64, num_fp16_res=0, conv_clamp=None,
                  epilogue_kwargs=dict(mbstd_group_size=32, mbstd_num_channels=1)),
    loss_kwargs=dict(style_mixing_prob=0.0, r1_gamma=1.0, pl_batch_shrink=2,
                     pl_decay=0.01, pl_weight=0.0),
    G_opt_kwargs=dict(lr=0.0025, betas=[0.0, 0.99], eps=1e-8),
    D_opt_kwargs=dict(lr=0.005, betas=[0.0, 0.99], eps=1e-8),
    G_reg_interval=4, D_reg_interval=16, batch_size=32, ema_kimg=500.0, ema_rampup=0.05)


def _reference_kwargs(overrides=(), **kwargs):
  """stylegan:demo with `overrides` in the reference's terms, its augmentation off
  (the baseline has none)."""
  overrides = [('augment.policy', 'none'), *overrides]
  return tb.stylegan_reference_kwargs(tb.stylegan_config('stylegan:demo', overrides,
                                                         **kwargs))


def test_stylegan_demo_config_in_the_reference_kwargs():
  kw = _reference_kwargs()
  assert kw == DEMO_KWARGS
  # Without loss.lambda_gp, R1's auto gamma 0.0002 res^2 / batch: 0.0002 * 1024 / 32.
  kw = _reference_kwargs([('loss.lambda_gp', '0')])
  assert kw['loss_kwargs']['r1_gamma'] == pytest.approx(0.0064, rel=1e-12)
  # The training loop's phases; each lazily regularised network's one Adam with lr x r
  # and betas ^ r, r = k / (k + 1): G 4/5, D 16/17.
  assert tb.reference_phases(kw) == [('Gmain', 'G', 1), ('Greg', 'G', 4),
                                     ('Dmain', 'D', 1), ('Dreg', 'D', 16)]
  g, d = tb.reference_adam_kwargs(kw, 'G'), tb.reference_adam_kwargs(kw, 'D')
  assert g['lr'] == pytest.approx(0.002) and d['lr'] == pytest.approx(0.00470588235)
  assert g['betas'] == [0.0, pytest.approx(0.99199197)]  # 0.99 ** 0.8
  assert d['betas'] == [0.0, pytest.approx(0.99058546)]  # 0.99 ** (16 / 17)
  assert g['eps'] == d['eps'] == 1e-8
  assert kw['G_opt_kwargs']['lr'] == 0.0025  # the correction is the loop's, not here


def test_stylegan_overrides_reach_the_reference_kwargs():
  kw = _reference_kwargs([('loss.lambda_gp', '0')], batch=64, size=64)
  assert kw['loss_kwargs']['r1_gamma'] == pytest.approx(0.0128)  # 0.0002 * 4096 / 64
  assert kw['G_kwargs']['img_resolution'] == kw['D_kwargs']['img_resolution'] == 64
  assert kw['batch_size'] == 64
  kw = _reference_kwargs([('loss.lambda_gp', '1.5'), ('loss.pl_every', '1'),
                          ('loss.gp_every', '8'), ('model.conv_clamp', '256'),
                          ('model.architecture', 'orig'), ('ema.rampup', '0'),
                          ('optimizer.groups.disc.lr', '0.001')], channels=3)
  assert kw['loss_kwargs']['r1_gamma'] == 1.5
  assert kw['G_reg_interval'] is None and kw['D_reg_interval'] == 8
  assert kw['G_kwargs']['synthesis_kwargs']['conv_clamp'] == 256
  assert kw['D_kwargs']['conv_clamp'] == 256 and kw['D_kwargs']['architecture'] == 'orig'
  assert kw['G_kwargs']['img_channels'] == kw['D_kwargs']['img_channels'] == 3
  assert kw['ema_rampup'] is None
  assert kw['D_opt_kwargs']['lr'] == 0.001 and kw['G_opt_kwargs']['lr'] == 0.0025
  # pl_every 1: the reference's un-lazy Gboth phase, without the correction.
  assert tb.reference_phases(kw)[0] == ('Gboth', 'G', 1)
  assert tb.reference_adam_kwargs(kw, 'G') == dict(lr=0.0025, betas=[0.0, 0.99],
                                                   eps=1e-8)
  assert tb.reference_adam_kwargs(kw, 'D')['lr'] == pytest.approx(0.001 * 8 / 9)


@pytest.mark.parametrize('key, value, named', [
    ('model.synthesis', 'adain', 'model.synthesis'),
    ('loss.gan_mode', 'lsgan', 'loss.gan_mode'),
    ('loss.gp', 'r2', 'loss.gp'),
    ('optimizer.schedule', 'linear_decay', 'schedule'),
    ('ema.half_life_images', '0', 'ema.half_life_images'),
    ('model.mbstd_group_size', '3', 'data.batch_size'),  # jaxgan's own check
    ('augment.policy', 'ada', 'augment.policy'),
])
def test_stylegan_settings_without_a_reference_equivalent(key, value, named):
  with pytest.raises(tb.BaselineError, match=re.escape(named)) as e:
    _reference_kwargs([(key, value)])
  assert '\n' not in str(e.value)


def test_stylegan_reference_dir_errors_are_one_line(tmp_path, capsys):
  base = ['--experiment', 'stylegan:demo', '--json']
  with pytest.raises(SystemExit, match=r'^torch_baseline: error: stylegan needs '
                     r'--reference-dir PATH, a clone of github\.com/NVlabs/'
                     r'stylegan2-ada-pytorch'):
    tb.main(base)
  with pytest.raises(SystemExit, match='^torch_baseline: error: --reference-dir .*/nope: '
                     'no such directory'):
    tb.main(base + ['--reference-dir', str(tmp_path / 'nope')])
  (tmp_path / 'training').mkdir()
  (tmp_path / 'training' / 'networks.py').write_text('raise SystemExit("run!")\n')
  with pytest.raises(SystemExit) as e:
    tb.main(base + ['--reference-dir', str(tmp_path)])
  message = str(e.value)
  assert message.startswith(f'torch_baseline: error: --reference-dir {tmp_path} is not a '
                            'clone of github.com/NVlabs/stylegan2-ada-pytorch: missing '
                            'training/loss.py, torch_utils/misc.py')
  assert 'networks.py' not in message and '\n' not in message
  assert capsys.readouterr().out == ''
  assert tb.reference_commit(str(tmp_path)) is None  # not a git checkout
  with pytest.raises(SystemExit, match='^torch_baseline: error: the stylegan baseline '
                     'runs the reference on the CPU in float32'):
    tb.main(base + ['--dtype', 'bfloat16', '--reference-dir', str(tmp_path)])
  with pytest.raises(tb.BaselineError, match="^unknown config key 'model.nope'"):
    tb.stylegan_config('stylegan:demo', tb.parse_config_args(['--config.model.nope=1']))


def test_bench_compare_stylegan_commands():
  bc = _load_bench_compare()
  args = bc.parse_args(['--experiment', 'stylegan:demo', '--sizes', '32',
                        '--batches', '16,32', '--reference-dir', '/ref',
                        '--config.model.style_mixing=0.5'])
  jax_cmd, torch_cmd = bc.commands(args, 32, 16, 'float32', threads=2, first_round=True)
  for cmd in (jax_cmd, torch_cmd):
    assert cmd[cmd.index('--experiment') + 1] == 'stylegan:demo'
    assert '--config.model.style_mixing=0.5' in cmd
    assert not any('channels' in arg for arg in cmd)  # the config's, on both sides
  assert torch_cmd[-2:] == ['--reference-dir', '/ref'] and '--generator' not in torch_cmd
  args = bc.parse_args(['--experiment', 'stylegan', '--channels', '3'])
  jax_cmd, torch_cmd = bc.commands(args, 32, 16, 'float32', threads=2, first_round=False)
  assert '--config.data.channels=3' in jax_cmd
  assert torch_cmd[torch_cmd.index('--channels') + 1] == '3'
  for argv in (['--experiment', 'stylegan:demo', '--dtypes', 'bfloat16'],
               ['--experiment', 'dcgan', '--config.model.z_dim=8'],
               ['--experiment', 'dcgan:demo']):
    with pytest.raises(SystemExit):
      bc.parse_args(argv)


@pytest.fixture
def reference_imports():
  """Restores sys.path and forgets the reference's modules after the test."""
  path = list(sys.path)
  yield
  sys.path[:] = path
  for name in [n for n in sys.modules if n.split('.')[0] in ('training', 'torch_utils',
                                                              'dnnlib')]:
    del sys.modules[name]


@needs_reference
def test_stylegan_reference_demo_param_counts(reference_imports):
  ref = tb.load_reference(REFERENCE_DIR)
  model = tb.StyleGANReference(ref, _reference_kwargs())
  # = python -m jaxgan.params --experiment stylegan:demo
  assert model.counts() == {'G': 188_251, 'D': 211_761}


@needs_reference
def test_stylegan_reference_runs_the_loop(reference_imports, capsys):
  kw = _reference_kwargs(batch=4, size=8, overrides=[
      ('model.mbstd_group_size', '2'), ('loss.pl_every', '2'), ('loss.gp_every', '2'),
      ('loss.pl_weight', '2'), ('model.channel_base', '32'), ('model.channel_max', '8')])
  model = tb.StyleGANReference(tb.load_reference(REFERENCE_DIR), kw)
  assert model.optimizers['G'].param_groups[0]['lr'] == pytest.approx(0.0025 * 2 / 3)
  before = {n: [p.detach().clone() for p in net.parameters()]
            for n, net in model.networks.items()}
  model.iteration(0)
  for name, net in model.networks.items():
    assert all(not torch.equal(a, b) for a, b in zip(before[name], net.parameters())), name
    assert not any(p.requires_grad for p in net.parameters())  # frozen between phases
  # No images seen yet: the ramp-up caps the half-life at 0, beta = 0, G_ema = G.
  for p_ema, p in zip(model.G_ema.parameters(), model.G.parameters()):
    assert torch.equal(p_ema, p)
  assert {'Loss/G/loss', 'Loss/G/reg', 'Loss/D/loss', 'Loss/D/reg'} <= set(model.losses())
  model.check_no_plugins()
  # The CLI: counts checked against jaxgan's, the amortized iteration, provenance.
  threads = torch.get_num_threads()
  try:
    tb.main(['--experiment', 'stylegan:smoke', '--reference-dir', REFERENCE_DIR,
             '--size', '8', '--steps', '1', '--warmup', '0', '--threads', '1', '--json'])
  finally:
    torch.set_num_threads(threads)
  r = json.loads(capsys.readouterr().out)
  assert r['count_checked'] and r['finite'] and r['warnings'] == []
  assert {k: t['every'] for k, t in r['phases'].items()} == {
      'main': 1, 'g_reg': 2, 'd_reg': 2, 'ema': 1}
  assert r['step_s'] == pytest.approx(sum(t['step_s'] / t['every']
                                          for t in r['phases'].values()))
  assert r['reference_commit'] is None or re.fullmatch(r'[0-9a-f]{40}(-dirty)?',
                                                       r['reference_commit'])
