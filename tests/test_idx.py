"""Tests for jaxgan.data.idx: IDX files written byte by byte, and the real MNIST.

The hand-written files pin the format (big-endian header and data, gzip detected
by its magic bytes); the MNIST checks run only where ../shared/datasets/mnist
exists and compare against MNIST's published sizes and label counts.
"""

import gzip
import struct
import time

import numpy as np
import pytest

from conftest import require
from conftest import SHARED
from jaxgan.data import idx
from jaxgan.errors import JaxganError


def _idx_bytes(code, shape, payload):
  return (struct.pack('>BBBB', 0, 0, code, len(shape))
          + struct.pack(f'>{len(shape)}I', *shape) + payload)


def _write(path, data, gz=False):
  path.write_bytes(gzip.compress(data) if gz else data)
  return path


# --- read_idx ---------------------------------------------------------------


@pytest.mark.parametrize('gz', [False, True])
def test_uint8_3d_round_trip(tmp_path, gz):
  values = list(range(250, 256)) + list(range(18))  # 24 bytes, crosses 255 -> 0
  path = _write(tmp_path / 'x', _idx_bytes(0x08, (2, 3, 4), bytes(values)), gz)
  a = idx.read_idx(path)
  assert a.dtype == np.uint8 and a.shape == (2, 3, 4)
  np.testing.assert_array_equal(a, np.array(values, np.uint8).reshape(2, 3, 4))
  a[0, 0, 0] = 7  # a writable array, not a view of the file's bytes


def test_int16_big_endian(tmp_path):
  values = [-32768, -2, -1, 0, 1, 258, 32767]
  payload = struct.pack('>7h', *values)
  a = idx.read_idx(_write(tmp_path / 'x', _idx_bytes(0x0B, (7,), payload)))
  assert a.dtype == np.int16 and a.dtype.isnative
  assert a.tolist() == values
  # 258 is 01 02 on disk: read little-endian it would be 513.
  assert payload[10:12] == b'\x01\x02'


def test_float32_big_endian_gzipped(tmp_path):
  values = [0.0, -1.5, 3.25, 1e-30, float('inf'), -65504.0]
  payload = struct.pack('>6f', *values)
  a = idx.read_idx(_write(tmp_path / 'x.gz', _idx_bytes(0x0D, (2, 3), payload),
                          gz=True))
  assert a.dtype == np.float32 and a.dtype.isnative and a.shape == (2, 3)
  np.testing.assert_array_equal(a.ravel(), np.array(values, np.float32))


@pytest.mark.parametrize('code,fmt,dtype,values', [
    (0x09, 'b', np.int8, [-128, -1, 0, 127]),
    (0x0C, 'i', np.int32, [-2**31, -1, 66051, 2**31 - 1]),
    (0x0E, 'd', np.float64, [1 / 3, -2.0, 1e300, 0.0]),
])
def test_other_types(tmp_path, code, fmt, dtype, values):
  payload = struct.pack(f'>{len(values)}{fmt}', *values)
  a = idx.read_idx(_write(tmp_path / 'x', _idx_bytes(code, (2, 2), payload)))
  assert a.dtype == dtype and a.shape == (2, 2)
  assert a.ravel().tolist() == values


def test_gzip_detected_by_content_not_name(tmp_path):
  data = _idx_bytes(0x08, (3,), b'\x01\x02\x03')
  plain_named_gz = _write(tmp_path / 'plain.gz', data)
  gz_named_plain = _write(tmp_path / 'gzipped-ubyte', data, gz=True)
  assert idx.read_idx(plain_named_gz).tolist() == [1, 2, 3]
  assert idx.read_idx(gz_named_plain).tolist() == [1, 2, 3]
  assert idx.read_idx(str(gz_named_plain)).tolist() == [1, 2, 3]  # str paths too


def test_empty_dimension(tmp_path):
  a = idx.read_idx(_write(tmp_path / 'x', _idx_bytes(0x08, (0, 28, 28), b'')))
  assert a.shape == (0, 28, 28)


def _error(path):
  with pytest.raises(JaxganError) as e:
    idx.read_idx(path)
  message = str(e.value)
  assert '\n' not in message and str(path) in message
  return message


def test_missing_file(tmp_path):
  assert 'does not exist' in _error(tmp_path / 'nope-idx3-ubyte')


@pytest.mark.parametrize('gz', [False, True])
def test_not_idx(tmp_path, gz):
  assert 'not an IDX file' in _error(_write(tmp_path / 'x', b'\x89PNG\r\n', gz))
  assert 'not an IDX file' in _error(_write(tmp_path / 'y', b'\0', gz))
  assert 'not an IDX file' in _error(_write(tmp_path / 'z', b'', gz))
  bad_type = _idx_bytes(0x0A, (1,), b'\0')
  message = _error(_write(tmp_path / 'w', bad_type, gz))
  assert 'not an IDX file (unknown type code 0x0A' in message


@pytest.mark.parametrize('gz', [False, True])
def test_truncated(tmp_path, gz):
  data = _idx_bytes(0x0B, (2, 3), struct.pack('>6h', *range(6)))
  message = _error(_write(tmp_path / 'x', data[:-1], gz))
  assert 'truncated' in message and '(12 data bytes), the file has 11' in message
  # Cut inside the dimensions.
  message = _error(_write(tmp_path / 'y', data[:9], gz))
  assert 'truncated' in message and 'header needs 12 bytes' in message


@pytest.mark.parametrize('gz', [False, True])
def test_trailing_data(tmp_path, gz):
  data = _idx_bytes(0x08, (2, 2), b'\1\2\3\4') + b'\0\0'
  assert '2 bytes of trailing data' in _error(_write(tmp_path / 'x', data, gz))


def test_corrupt_gzip(tmp_path):
  good = gzip.compress(_idx_bytes(0x08, (64,), bytes(range(64))))
  # Cut short: the stream ends before its end-of-stream marker.
  assert 'corrupt gzip stream' in _error(_write(tmp_path / 'a.gz', good[:-12]))
  # A flipped byte in the CRC trailer.
  bad_crc = good[:-8] + bytes([good[-8] ^ 0xFF]) + good[-7:]
  assert 'corrupt gzip stream' in _error(_write(tmp_path / 'b.gz', bad_crc))
  # Garbage after the gzip magic bytes.
  assert 'corrupt gzip stream' in _error(
      _write(tmp_path / 'c.gz', b'\x1f\x8b' + b'\xff' * 30))


# --- load_mnist -------------------------------------------------------------


def _fake_mnist(root, n_images=3, n_labels=3, gz=False, h=28, w=28):
  root.mkdir(exist_ok=True)
  rng = np.random.default_rng(0)
  pixels = rng.integers(0, 256, (n_images, h, w), dtype=np.uint8)
  labels = rng.integers(0, 10, n_labels, dtype=np.uint8)
  suffix = '.gz' if gz else ''
  for prefix in ('train', 't10k'):
    _write(root / f'{prefix}-images-idx3-ubyte{suffix}',
           _idx_bytes(0x08, pixels.shape, pixels.tobytes()), gz)
    _write(root / f'{prefix}-labels-idx1-ubyte{suffix}',
           _idx_bytes(0x08, labels.shape, labels.tobytes()), gz)
  return pixels, labels


@pytest.mark.parametrize('gz', [False, True])
@pytest.mark.parametrize('split', ['train', 'test'])
def test_load_mnist(tmp_path, gz, split):
  pixels, labels = _fake_mnist(tmp_path / 'mnist', gz=gz, h=5, w=7)
  images, got_labels = idx.load_mnist(tmp_path / 'mnist', split)
  assert images.dtype == np.uint8 and images.shape == (3, 5, 7)
  np.testing.assert_array_equal(images, pixels)
  np.testing.assert_array_equal(got_labels, labels)
  assert got_labels.dtype == np.uint8


def test_load_mnist_plain_and_gz_mixed(tmp_path):
  root = tmp_path / 'mnist'
  _, labels = _fake_mnist(root)
  plain = root / 'train-labels-idx1-ubyte'
  _write(root / 'train-labels-idx1-ubyte.gz', plain.read_bytes(), gz=True)
  plain.unlink()
  np.testing.assert_array_equal(idx.load_mnist(str(root), 'train')[1], labels)


def _load_error(root, split='train'):
  with pytest.raises(JaxganError) as e:
    idx.load_mnist(root, split)
  assert '\n' not in str(e.value)
  return str(e.value)


def test_load_mnist_errors(tmp_path):
  assert _load_error(tmp_path / 'absent') == (
      f'MNIST folder {tmp_path / "absent"} does not exist')
  root = tmp_path / 'mnist'
  _fake_mnist(root)
  assert "unknown MNIST split 'val'; valid: train, test" in _load_error(root, 'val')

  (root / 't10k-labels-idx1-ubyte').unlink()
  assert _load_error(root, 'test') == (
      f'MNIST folder {root} has none of: t10k-labels-idx1-ubyte, '
      't10k-labels-idx1-ubyte.gz')

  images = root / 'train-images-idx3-ubyte'
  labels = root / 'train-labels-idx1-ubyte'
  images.write_bytes(_idx_bytes(0x08, (3, 784), bytes(3 * 784)))
  assert 'images must be 3-D [N, H, W], got shape (3, 784)' in _load_error(root)

  _fake_mnist(root)
  labels.write_bytes(_idx_bytes(0x08, (3, 1), bytes(3)))
  assert 'labels must be 1-D [N], got shape (3, 1)' in _load_error(root)

  _fake_mnist(root, n_images=3, n_labels=4)
  assert f'MNIST train in {root}: 3 images but 4 labels' in _load_error(root)

  _fake_mnist(root)
  labels.write_bytes(_idx_bytes(0x0C, (3,), bytes(12)))
  assert 'must be uint8 (type code 0x08), got int32' in _load_error(root)

  _fake_mnist(root)
  images.write_bytes(b'garbage')
  assert f'{images} is not an IDX file' in _load_error(root)


# --- the real MNIST ---------------------------------------------------------

TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_real_mnist():
  root = require(SHARED / 'datasets' / 'mnist', 'MNIST')
  start = time.perf_counter()
  images, labels = idx.load_mnist(root, 'train')
  seconds = time.perf_counter() - start
  print(f'\nMNIST train (60000 images + labels) loaded in {seconds:.2f} s')
  assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
  assert labels.shape == (60000,) and labels.dtype == np.uint8
  assert np.bincount(labels, minlength=10).tolist() == TRAIN_LABEL_COUNTS
  assert images.max() == 255 and images.min() == 0

  images, labels = idx.load_mnist(root, 'test')
  assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
  assert labels.max() == 9
