"""Torch-free reading of PyTorch checkpoints (`jaxgan.torchfile`).

No torch: the torch files are fixtures written by tests/fixtures/make_torch_fixtures.py
(which needs torch and is not run here), each with the arrays torch itself read.
"""

import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jaxgan import torchfile
from jaxgan.errors import JaxganError

FIXTURES = Path(__file__).resolve().parent / 'fixtures'


@pytest.mark.parametrize('name', ['state_zip.pt', 'state_legacy.pth', 'scripted.pt'])
def test_readers_match_torch(name):
  stem = name.rsplit('.', 1)[0]
  with np.load(FIXTURES / f'{stem}_expected.npz') as z:
    expected = {k: z[k] for k in z.files}
  got = torchfile.read_torch_file(FIXTURES / name)
  assert sorted(got) == sorted(expected)
  for k in expected:
    assert got[k].dtype == expected[k].dtype, k
    assert got[k].shape == expected[k].shape, k
    np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
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


def test_sniff():
  assert torchfile.sniff((FIXTURES / 'state_zip.pt').read_bytes()[:4]) == 'zip'
  assert torchfile.sniff((FIXTURES / 'state_legacy.pth').read_bytes()[:4]) == 'legacy'
  assert torchfile.sniff(b'\x93NUMPY') is None and torchfile.sniff(b'') is None


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
    torchfile.read_torch_file(path)
  assert not marker.exists()


def test_forbidden_global_refused_legacy_and_load(tmp_path):
  marker = tmp_path / 'pwned'
  path = tmp_path / 'evil.pth'
  header = b''.join(pickle.dumps(x, protocol=2) for x in (
      torchfile._TORCH_MAGIC, 1001, {'protocol_version': 1001, 'little_endian': True}))
  path.write_bytes(header + _malicious_pickle(marker))
  with pytest.raises(JaxganError, match='refusing to unpickle'):
    torchfile.read_torch_file(path)
  # The FID weights loader reads torch files through this reader too.
  from jaxgan.metrics import weights
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
    torchfile.read_torch_file(path)


def test_malformed_torch_files(tmp_path):
  truncated = tmp_path / 'trunc.pth'
  truncated.write_bytes((FIXTURES / 'state_legacy.pth').read_bytes()[:-10])
  with pytest.raises(JaxganError, match='trunc.pth: truncated'):
    torchfile.read_torch_file(truncated)
  nostorage = tmp_path / 'nostorage.pt'
  with zipfile.ZipFile(FIXTURES / 'state_zip.pt') as src, zipfile.ZipFile(nostorage, 'w') as dst:
    for item in src.infolist():
      if not item.filename.endswith('/data/0'):
        dst.writestr(item, src.read(item))
  with pytest.raises(JaxganError, match='missing from the archive'):
    torchfile.read_torch_file(nostorage)
  text = tmp_path / 'notes.txt'
  text.write_text('neither a zip\nnor a pickle\n')
  with pytest.raises(JaxganError, match=r'notes\.txt: not a PyTorch checkpoint') as e:
    torchfile.read_torch_file(text)
  assert '\n' not in str(e.value)
