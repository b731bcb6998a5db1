"""Data sources and the tf.data pipeline: layouts, bad files, determinism, resume."""

import logging
import time

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgan import data, sharding
from jaxgan.data import synthetic
from jaxgan.errors import JaxganError

from conftest import MAPS, require


def _img(path, color, size=(16, 16)):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new('RGB', size, color).save(path)


@pytest.fixture
def folder(tmp_path):
  for split, n in (('train', 5), ('test', 2)):
    for d, color in (('A', (255, 0, 0)), ('B', (0, 0, 255))):
      for i in range(n):
        _img(tmp_path / f'{split}{d}' / f'{i}.png', tuple(c // (i + 1) for c in color))
  # Recursive and sorted: a file in a subfolder counts too.
  _img(tmp_path / 'trainA' / 'sub' / 'x.jpg', (10, 10, 10))
  return tmp_path


def test_spec_forms_and_errors(folder, tmp_path):
  src = data.load_source(f'folder:{folder}', seed=0, image_size=16)
  assert not src.paired and src.has_split('train') and src.has_split('test')
  d = src.domains('train')
  assert (len(d.a), len(d.b)) == (6, 5)
  with pytest.raises(JaxganError, match="unknown data source 'magic'"):
    data.load_source('magic', seed=0, image_size=16)
  with pytest.raises(JaxganError, match='does not exist'):
    data.load_source(f'folder:{tmp_path}/missing', seed=0, image_size=16)
  with pytest.raises(JaxganError, match='none of trainA/'):
    data.load_source(f'folder:{folder / "trainA"}', seed=0, image_size=16)


def test_corrupt_files_skipped_and_counted(folder, caplog):
  (folder / 'trainA' / 'bad.jpg').write_bytes(b'\xff\xd8\xff garbage')
  (folder / 'trainB' / 'empty.png').write_bytes(b'')
  with caplog.at_level(logging.WARNING):
    src = data.load_source(f'folder:{folder}', seed=0, image_size=16)
  assert len(src.domains('train').a) == 6
  assert 'skipped 2 unreadable image file(s)' in caplog.text
  assert 'bad.jpg' in caplog.text


def test_folder_without_readable_images_is_an_error(tmp_path):
  (tmp_path / 'trainA').mkdir()
  (tmp_path / 'trainA' / 'x.jpg').write_bytes(b'nope')
  _img(tmp_path / 'trainB' / '0.png', (0, 0, 0))
  with pytest.raises(JaxganError, match=f'no readable image in {tmp_path / "trainA"}'):
    data.load_source(f'folder:{tmp_path}', seed=0, image_size=16)


def test_aligned_halves(tmp_path):
  for i in range(3):
    img = np.zeros((8, 16, 3), np.uint8)
    img[:, :8] = (255, 0, 0)
    img[:, 8:] = (0, 0, 255)
    (tmp_path / 'train').mkdir(exist_ok=True)
    Image.fromarray(img).save(tmp_path / 'train' / f'{i}.png')
  src = data.load_source(f'aligned:{tmp_path}', seed=0, image_size=8)
  d = src.domains('train')
  assert src.paired and d.paired and not src.has_split('test')
  assert d.a.numpy(0).shape == (8, 8, 3)
  assert (d.a.numpy(0) == (255, 0, 0)).all() and (d.b.numpy(1) == (0, 0, 255)).all()
  batch = next(iter(data.train_batches(d, global_batch=2, load_size=8, image_size=8,
                                       flip=True, paired=True, seed=0)))
  np.testing.assert_allclose(batch['a'][..., 0], 1.0, atol=1e-6)
  np.testing.assert_allclose(batch['b'][..., 2], 1.0, atol=1e-6)


def test_synthetic_is_deterministic_with_exact_ground_truth():
  a, b = synthetic.synthetic_pairs(3, 4, 24)
  a2, _ = synthetic.synthetic_pairs(3, 6, 24)
  other, _ = synthetic.synthetic_pairs(4, 4, 24)
  assert a.shape == (4, 24, 24, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(b, 255 - a)  # the documented map: the negative
  np.testing.assert_array_equal(a, a2[:4])  # image i does not depend on n
  assert not np.array_equal(a, other)
  test_a, _ = synthetic.synthetic_pairs(3, 4, 24, 'test')
  assert not np.array_equal(a, test_a)
  src = data.load_source('synthetic', seed=3, image_size=24, synthetic_size=4)
  np.testing.assert_array_equal(src.domains('train').a.numpy(2), a[2])
  assert len(src.domains('test').a) == 8


def _stream(domains, **kw):
  args = dict(global_batch=2, load_size=28, image_size=24, flip=True, paired=False, seed=5)
  args.update(kw)
  return data.train_batches(domains, **args)


def _take(stream, n):
  out = []
  for i, b in enumerate(stream):
    if i == n:
      break
    out.append(b)
  return out


def test_pipeline_shapes_and_resume_across_epochs():
  d = data.load_source('synthetic', seed=0, image_size=28, synthetic_size=6).domains('train')
  s = _stream(d)
  assert s.steps_per_epoch == 3
  straight = _take(s, 7)
  for b in straight:
    for k in 'ab':
      assert b[k].shape == (2, 24, 24, 3) and b[k].dtype == np.float32
      assert b[k].min() >= -1 and b[k].max() <= 1
  for k in (2, 4):  # resume inside epoch 0 and exactly at an epoch boundary
    resumed = _take(_stream(d, start_step=k), 7 - k)
    for j, b in enumerate(resumed):
      for key in 'ab':
        np.testing.assert_array_equal(b[key], straight[k + j][key])
  # Another seed gives another order.
  assert not np.array_equal(_take(_stream(d, seed=6), 1)[0]['a'], straight[0]['a'])


def test_paired_shares_crop_and_flip_unpaired_does_not():
  d = data.load_source('synthetic', seed=0, image_size=32, synthetic_size=8).domains('train')
  for b in _take(_stream(d, paired=True, load_size=32, image_size=20), 4):
    np.testing.assert_allclose(b['b'], -b['a'], atol=1e-5)  # B is A's negative
  unpaired = _take(_stream(d, paired=False, load_size=32, image_size=20), 4)
  assert any(not np.allclose(b['b'], -b['a'], atol=1e-3) for b in unpaired)
  # The unpaired orders differ between the domains.
  s = _stream(d)
  assert not np.array_equal(*s.orders(0))


def test_epoch_len_for_unequal_domains(folder):
  d = data.load_source(f'folder:{folder}', seed=0, image_size=16).domains('train')
  s = _stream(d, load_size=16, image_size=16)
  order_a, order_b = s.orders(0)
  assert len(order_a) == len(order_b) == 6 and s.steps_per_epoch == 3
  assert sorted(order_a) == list(range(6)) and set(order_b) == set(range(5))


def test_sharded_placement_and_bad_batch():
  mesh = sharding.make_mesh()
  d = data.load_source('synthetic', seed=0, image_size=24, synthetic_size=4).domains('train')
  batch = next(iter(_stream(d, sharding=sharding.batch_sharded(mesh))))
  assert isinstance(batch['a'], jax.Array) and batch['a'].shape == (2, 24, 24, 3)
  with pytest.raises(JaxganError, match='larger than an epoch'):
    _stream(d, global_batch=5)


def test_fixed_batch_is_deterministic_center_crop():
  d = data.load_source('synthetic', seed=0, image_size=32, synthetic_size=4).domains('test')
  f = data.fixed_batch(d, 3, load_size=32, image_size=24)
  assert f['a'].shape == (3, 24, 24, 3)
  expected = d.a.numpy(1)[4:28, 4:28] / 127.5 - 1.0
  np.testing.assert_allclose(f['a'][1], expected, atol=1e-5)


def test_tfds_offline_is_one_fast_line(tmp_path):
  t0 = time.monotonic()
  with pytest.raises(JaxganError) as info:
    data.load_source('tfds:cycle_gan/horse2zebra', seed=0, image_size=32,
                     tfds_data_dir=str(tmp_path))
  assert time.monotonic() - t0 < 60
  message = str(info.value)
  assert '\n' not in message and 'not available offline' in message
  assert 'folder:PATH' in message


def test_real_maps_batches():
  maps = require(MAPS, 'the maps dataset')
  src = data.load_source(f'aligned:{maps}', seed=0, image_size=286)
  d = src.domains('train')
  assert len(d.a) == 1096 and src.has_split('test') and len(src.domains('test').a) == 1098
  b = next(iter(data.train_batches(d, global_batch=2, load_size=286, image_size=256,
                                   flip=True, paired=False, seed=0)))
  assert b['a'].shape == (2, 256, 256, 3) and -1 <= b['a'].min() and b['a'].max() <= 1
