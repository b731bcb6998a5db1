"""stylegan2-ada-pytorch snapshots imported without torch and without running the
pickled source (`jaxgan.interop.stylegan`), against the reference's own outputs in
../shared/interop (a 32x32 1-channel snapshot: G_ema's ws at psi 1, its images with
noise_mode='const' at psi 1 and 0.7, w_avg). Also: a malicious pickle is refused with
one line and nothing run; conv_clamp clamps as the reference's bias_act does."""

import functools
import math
import os
import pickle
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import SHARED, experiment_config, init_state, random_batch, require
from jaxgan import models
from jaxgan.errors import JaxganError
from jaxgan.interop import stylegan as sg_import
from jaxgan.models import stylegan

STEM = SHARED / 'interop' / 'sga_32px_1ch_cb512_cm64_z64'
TOL = 1e-4
G_KW = dict(img_resolution=32, img_channels=1, z_dim=64, w_dim=64, channel_base=512,
            channel_max=64, map_layers=2)


@functools.cache
def _imported():
  pkl = require(STEM.with_suffix('.pkl'), 'the reference stylegan2-ada snapshot')
  io = dict(np.load(require(STEM.parent / (STEM.name + '_io.npz'), 'its outputs')))
  snap = sg_import.Snapshot(pkl)
  g = models.make('stylegan_generator', **G_KW)
  d = models.make('stylegan_discriminator', img_resolution=32, img_channels=1,
                  channel_base=512, channel_max=64, mbstd_group_size=4)
  key = jax.random.PRNGKey(0)
  abstract = {'G': jax.eval_shape(lambda: g.init(key, jnp.zeros((1, 64))))['params'],
              'D': jax.eval_shape(lambda: d.init(key, jnp.zeros((4, 32, 32, 1))))['params']}
  buffers = jax.eval_shape(lambda: stylegan.default_buffers(32))
  return g, sg_import.load(snap, abstract, buffers, 64), snap, io


@functools.cache
def _forward(g):
  @jax.jit
  def forward(params, z, w_avg, buffers, psi):
    ws = g.apply({'params': params}, z, w_avg=w_avg, psi=psi, method='mapping')
    return ws, g.apply({'params': params}, ws, method='synthesize', noise_mode='const',
                       buffers=buffers)
  return forward


def _outputs(params=None, buffers=None, psi=1.0):
  g, loaded, _, io = _imported()
  ws, img = _forward(g)(loaded['G_ema'] if params is None else params, io['z'],
                        loaded['w_avg'], loaded['buffers'] if buffers is None else buffers,
                        jnp.float32(psi))
  return np.asarray(ws), np.asarray(img).transpose(0, 3, 1, 2)


def test_snapshot_config_is_read_from_the_pickle():
  _, _, snap, _ = _imported()
  config = sg_import.snapshot_config(snap)
  assert config == {
      'data.image_size': 32, 'data.load_size': 32, 'data.channels': 1,
      'model.synthesis': 'modulated', 'model.z_dim': 64, 'model.w_dim': 64,
      'model.map_layers': 2, 'model.channel_base': 512, 'model.channel_max': 64,
      'model.architecture': 'resnet', 'model.mbstd_group_size': 4,
      'model.w_avg_beta': 0.995, 'model.conv_clamp': 0.0, 'model.buffers': 'stored'}


def test_parameter_counts_are_the_reference_s():
  _, loaded, _, _ = _imported()
  count = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
  assert count(loaded['G']) == count(loaded['G_ema']) == 188251  # the README's
  assert count(loaded['D']) == 218417


def test_mapping_and_w_avg_match_reference():
  _, loaded, _, io = _imported()
  np.testing.assert_array_equal(loaded['w_avg'], io['w_avg'])
  ws, _ = _outputs()
  ref = io['ws_psi1'] if io['ws_psi1'].ndim == 3 else io['ws_psi1'][:, None]
  np.testing.assert_allclose(ws, np.broadcast_to(ref, ws.shape), rtol=0, atol=TOL)


@pytest.mark.parametrize('psi,name', [(1.0, 'img_psi1_const_nchw'),
                                      (0.7, 'img_psi07_const_nchw')])
def test_g_ema_const_noise_images_match_reference(psi, name):
  _, _, _, io = _imported()
  _, img = _outputs(psi=psi)
  np.testing.assert_allclose(img, io[name], rtol=0, atol=TOL)


def test_perturbed_weight_or_buffer_fails_the_tolerance():
  """A small change of one mapped parameter (1e-2 on a toRGB bias, 0.1 on one tap of
  a unit-normal conv weight) or of one stored buffer (1e-2 on a noise_const value, a
  filter tap) moves the images beyond the tolerance."""
  _, loaded, _, io = _imported()
  ref = io['img_psi1_const_nchw']

  def bumped(tree, path, by=1e-2):
    tree = jax.tree.map(np.array, tree)
    node = tree
    for key in path[:-1]:
      node = node[key]
    node[path[-1]].reshape(-1)[0] += by
    return tree

  for path, by in ((('synthesis', 'b32', 'torgb', 'bias'), 1e-2),
                   (('synthesis', 'b16', 'conv0', 'kernel'), 0.1)):
    params = bumped(loaded['G_ema'], path, by)
    assert np.abs(_outputs(params=params)[1] - ref).max() > 2 * TOL, path
  for path in (('b32', 'conv1', 'noise_const'), ('b16', 'resample_filter')):
    buffers = bumped(loaded['buffers'], path)
    assert np.abs(_outputs(buffers=buffers)[1] - ref).max() > 2 * TOL, path


def _reconstruct_persistent_obj(meta):
  raise AssertionError('never called: pickles are only written with it here')


_reconstruct_persistent_obj.__module__ = 'torch_utils.persistence'


class _Evil:
  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


def test_malicious_pickle_is_refused_without_running_anything(tmp_path):
  marker = tmp_path / 'pwned'
  path = tmp_path / 'network-snapshot-000000.pkl'
  path.write_bytes(pickle.dumps({'G': _Evil(marker), 'D': None, 'G_ema': None}))
  with pytest.raises(JaxganError) as e:
    sg_import.Snapshot(path)
  assert 'refusing to unpickle the global' in str(e.value) and 'system' in str(e.value)
  assert '\n' not in str(e.value)
  assert not marker.exists()


def test_persistent_source_code_is_never_run(tmp_path, monkeypatch):
  """A persistence object whose module_src would create a file: the stand-in keeps
  its class name and state, the source is never executed."""
  marker = tmp_path / 'ran'
  source = f'open({str(marker)!r}, "w").write("x")\n'
  package = types.ModuleType('torch_utils')
  persistence = types.ModuleType('torch_utils.persistence')
  persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
  monkeypatch.setitem(sys.modules, 'torch_utils', package)
  monkeypatch.setitem(sys.modules, 'torch_utils.persistence', persistence)

  class Net:
    def __reduce__(self):
      return (_reconstruct_persistent_obj, (dict(
          type='class', version=6, module_src=source, class_name='Generator',
          state={'_modules': {}, 'c_dim': 0}),))
  path = tmp_path / 'snap.pkl'
  path.write_bytes(pickle.dumps({'G': Net(), 'D': Net(), 'G_ema': Net()}))
  with pytest.raises(JaxganError, match='is a Generator; expected the reference\'s '
                     'Discriminator'):
    sg_import.Snapshot(path)
  assert not marker.exists()


def test_not_a_snapshot_is_one_line(tmp_path):
  path = tmp_path / 'x.pkl'
  path.write_bytes(pickle.dumps({'a': 1}))
  with pytest.raises(JaxganError, match='not a stylegan2-ada-pytorch network snapshot'):
    sg_import.Snapshot(path)
  path.write_bytes(b'garbage')
  with pytest.raises(JaxganError, match='not a pickle'):
    sg_import.Snapshot(path)


@pytest.mark.parametrize('gain', [1.0, math.sqrt(0.5)])
def test_conv_clamp_clamps_as_the_reference(gain):
  """Conv2dLayer with conv_clamp c: the reference's bias_act clamps the activated,
  gained output to +-c * gain; without it the same layer is unclamped."""
  x = jnp.asarray(np.sin(np.arange(2 * 8 * 8 * 3)).reshape(2, 8, 8, 3) * 4, jnp.float32)
  clamped = stylegan.Conv2dLayer(4, 3, activation='lrelu', conv_clamp=0.5)
  free = stylegan.Conv2dLayer(4, 3, activation='lrelu')
  params = clamped.init(jax.random.PRNGKey(1), x)
  y = np.asarray(clamped.apply(params, x, gain=gain))
  y_free = np.asarray(free.apply(params, x, gain=gain))
  assert np.abs(y_free).max() > 0.5 * gain  # the clamp bites
  np.testing.assert_allclose(y, np.clip(y_free, -0.5 * gain, 0.5 * gain), rtol=0,
                             atol=1e-6)


@pytest.mark.slow
def test_conv_clamp_reaches_every_layer_of_g_and_d():
  """With a small conv_clamp, G's toRGB outputs and D's logits change (the clamp is
  wired through the networks), and a clamp too large to bite changes nothing."""
  z = jnp.asarray(np.cos(np.arange(2 * 8)).reshape(2, 8), jnp.float32)
  kw = dict(img_resolution=8, z_dim=8, w_dim=8, channel_base=64, channel_max=16)
  g = models.make('stylegan_generator', **kw)
  params = g.init(jax.random.PRNGKey(0), z)
  out = lambda clamp: np.asarray(jax.jit(functools.partial(
      models.make('stylegan_generator', conv_clamp=clamp, **kw).apply,
      noise_mode='none'))(params, z))
  assert np.abs(out(1e-3) - out(None)).max() > 1e-2
  np.testing.assert_array_equal(out(1e6), out(None))
  with pytest.raises(JaxganError, match='conv_clamp'):
    models.make('stylegan_generator', conv_clamp=-1.0, **kw)


def test_easydict_kwargs_of_real_snapshots_are_read_as_dicts(tmp_path, monkeypatch):
  """Snapshots written by the reference's train.py hold dnnlib.util.EasyDict objects
  (training_set_kwargs; mapping_kwargs and the like among the init kwargs): read as
  plain dicts, the class in the file never used."""
  package = types.ModuleType('torch_utils')
  persistence = types.ModuleType('torch_utils.persistence')
  persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
  dnnlib, util = types.ModuleType('dnnlib'), types.ModuleType('dnnlib.util')

  class EasyDict(dict):
    def __getattr__(self, name):
      return self[name]
  EasyDict.__module__, EasyDict.__qualname__ = 'dnnlib.util', 'EasyDict'
  util.EasyDict = EasyDict
  for name, module in (('torch_utils', package), ('torch_utils.persistence', persistence),
                       ('dnnlib', dnnlib), ('dnnlib.util', util)):
    monkeypatch.setitem(sys.modules, name, module)

  class Net:
    def __init__(self, kind):
      self.kind = kind

    def __reduce__(self):
      return (_reconstruct_persistent_obj, (dict(
          type='class', version=6, module_src='', class_name=self.kind,
          state={'_modules': {}, '_init_kwargs': EasyDict(
              mapping_kwargs=EasyDict(num_layers=2))}),))
  path = tmp_path / 'snap.pkl'
  path.write_bytes(pickle.dumps({'G': Net('Generator'), 'D': Net('Discriminator'),
                                 'G_ema': Net('Generator'),
                                 'training_set_kwargs': EasyDict(resolution=32)}))
  snap = sg_import.Snapshot(path)
  assert snap.training_set_kwargs == {'resolution': 32}
  assert snap.G_ema.kwargs == {'mapping_kwargs': {'num_layers': 2}}


@pytest.mark.slow
def test_training_uses_the_stored_synthesis_buffers():
  """Fine-tuning an imported snapshot trains the G it samples with: with
  model.buffers='stored' the train step synthesizes with the state's buffers (here G's
  resampling filters changed), not the default ones."""
  from jaxgan.tasks import make_task
  c = experiment_config('stylegan:smoke', **{'model.buffers': 'stored'})
  task = make_task(c, steps_per_epoch=10)
  state = init_state(task)
  step = jax.jit(task.train_step)
  _, default = step(state, random_batch(c))
  sharp = jax.tree_util.tree_map_with_path(
      lambda path, x: x * jnp.asarray([[1.0, -1.0, 1.0, -1.0]]).T * 1.5
      if 'resample_filter' in jax.tree_util.keystr(path) else x, state.aux['buffers'])
  _, changed = step(state.replace(aux={**state.aux, 'buffers': sharp}), random_batch(c))
  assert float(changed['loss_G']) != pytest.approx(float(default['loss_G']), rel=1e-4)
  assert float(changed['loss_D']) != pytest.approx(float(default['loss_D']), rel=1e-4)
