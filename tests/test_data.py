"""Data sources and the tf.data pipeline: layouts, bad files, determinism, resume."""

import logging
from pathlib import Path
import subprocess
import time

import jax
import numpy as np
import pytest
from PIL import Image

from jaxgan import data, sharding
from jaxgan.data import synthetic
from jaxgan.errors import JaxganError

from conftest import MAPS, PYTHON, REPO, require, subprocess_env


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
  # Sorted recursive walk: the subfolder's file sorts after the top-level ones.
  assert [p.relative_to(folder / 'trainA').as_posix() for p in map(Path, d.a.files)] == [
      '0.png', '1.png', '2.png', '3.png', '4.png', 'sub/x.jpg']
  for bad in ('magic', 'folder:', 'tfds', 'synthetic:3'):
    with pytest.raises(JaxganError, match='expected folder:PATH, aligned:PATH, '
                       'tfds:NAME, mnist:PATH, colour_mnist:PATH or synthetic') as info:
      data.load_source(bad, seed=0, image_size=16)
    assert '\n' not in str(info.value)
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
  stream = data.train_batches(d, global_batch=2, load_size=286, image_size=256,
                              flip=True, paired=False, seed=0)
  assert stream.steps_per_epoch == 548
  for b in _take(stream, 3):
    for k in 'ab':
      assert b[k].shape == (2, 256, 256, 3) and b[k].dtype == np.float32
      assert -1 <= b[k].min() and b[k].max() <= 1 and b[k].std() > 0.01
  # A is the aerial photo (left half), B the map (right half) of the same file.
  photo, tile = d.a.numpy(0), d.b.numpy(0)
  assert photo.shape == tile.shape == (256, 256, 3)
  assert tile.mean() > photo.mean() + 50  # Maps are mostly light grey, photos dark.


def test_missing_split_names_the_folder(tmp_path):
  _img(tmp_path / 'trainA' / '0.png', (1, 2, 3))
  _img(tmp_path / 'trainB' / '0.png', (1, 2, 3))
  src = data.load_source(f'folder:{tmp_path}', seed=0, image_size=16)
  assert src.has_split('train') and not src.has_split('test')
  with pytest.raises(JaxganError, match=f'missing folder {tmp_path / "testA"}'):
    src.domains('test')
  with pytest.raises(JaxganError, match='unknown split'):
    src.domains('validation')


def _noise_set(tmp_path, n, size=(32, 32)):
  """An aligned source whose two halves are identical noise: B == A exactly."""
  rng = np.random.default_rng(0)
  for i in range(n):
    half = rng.integers(0, 256, (size[1], size[0], 3), np.uint8)
    (tmp_path / 'train').mkdir(exist_ok=True)
    Image.fromarray(np.concatenate([half, half], axis=1)).save(
        tmp_path / 'train' / f'{i}.png')
  return data.load_source(f'aligned:{tmp_path}', seed=0, image_size=32).domains('train')


def test_paired_same_augmentation_unpaired_independent(tmp_path):
  d = _noise_set(tmp_path, 3)
  np.testing.assert_array_equal(d.a.numpy(1), d.b.numpy(1))
  for b in _take(_stream(d, paired=True, load_size=40, image_size=32), 3):
    np.testing.assert_array_equal(b['a'], b['b'])
  # One image in each domain: the orders agree, so only the crops/flips can differ.
  one = data.Domains(data.ArrayImageSet('a', d.a.numpy(0)[None]),
                     data.ArrayImageSet('b', d.b.numpy(0)[None]), paired=False)
  unpaired = _take(_stream(one, global_batch=1, load_size=40, image_size=32), 4)
  assert any(not np.array_equal(b['a'], b['b']) for b in unpaired)
  with pytest.raises(JaxganError, match='paired batches need paired domains'):
    _stream(one, global_batch=1, paired=True)


def test_file_pipeline_resume_and_pil_fallback(tmp_path):
  """Every decoder the pipeline picks (TF's JPEG/PNG/BMP ones, PIL for the rest) gives
  read_rgb's exact pixels, and a resumed stream matches the straight one bitwise."""
  rng = np.random.default_rng(1)
  for d, names in (('A', ['0.png', '1.tif', '2.jpg']), ('B', ['0.bmp', '1.png'])):
    for name in names:
      arr = rng.integers(0, 256, (20, 24, 3), np.uint8)
      img = Image.fromarray(arr)
      if name == '1.png':  # Transparent: composited on white, so PIL decodes it.
        img = Image.fromarray(np.dstack([arr, np.full((20, 24), 200, np.uint8)]), 'RGBA')
      path = tmp_path / f'train{d}' / name
      path.parent.mkdir(exist_ok=True)
      img.save(path, **({'quality': 90} if name.endswith('.jpg') else {}))
  d = data.load_source(f'folder:{tmp_path}', seed=0, image_size=24).domains('train')
  assert d.a.native.tolist() == [True, False, True]  # TIFF goes through PIL.
  assert d.b.native.tolist() == [True, False]  # RGBA PNG too.
  for image_set in (d.a, d.b):
    for i in range(len(image_set)):
      np.testing.assert_array_equal(
          np.rint(image_set.tf_load(i).numpy() * 255).astype(np.uint8),
          image_set.numpy(i))
  # 3 A, 2 B, batch 1: epochs of 3 steps; compare across two epoch boundaries.
  s = _stream(d, global_batch=1, load_size=24, image_size=16)
  assert s.steps_per_epoch == 3
  straight = _take(s, 8)
  resumed = _take(_stream(d, global_batch=1, load_size=24, image_size=16,
                          start_step=2), 6)
  for j, b in enumerate(resumed):
    for k in 'ab':
      np.testing.assert_array_equal(b[k], straight[2 + j][k])


def test_eval_batches_in_order_with_partial_last():
  d = data.load_source('synthetic', seed=0, image_size=16, synthetic_size=5).domains('train')
  batches = list(data.eval_batches(d.a, 2, size=16))
  assert [b.shape[0] for b in batches] == [2, 2, 1]
  got = np.concatenate(batches)
  assert got.dtype == np.float32
  np.testing.assert_allclose(got, d.a.array / 255.0 * 2 - 1, atol=1e-6)
  small = next(data.eval_batches(d.a, 8, size=8))
  assert small.shape == (5, 8, 8, 3) and -1 <= small.min() and small.max() <= 1


def test_sharded_values_match_unsharded():
  mesh = sharding.make_mesh()
  d = data.load_source('synthetic', seed=0, image_size=24, synthetic_size=4).domains('train')
  plain = _take(_stream(d), 3)
  placed = _take(_stream(d, sharding=sharding.batch_sharded(mesh)), 3)
  for p, q in zip(plain, placed):
    for k in 'ab':
      assert q[k].sharding == sharding.batch_sharded(mesh)
      np.testing.assert_array_equal(np.asarray(q[k]), p[k])


MULTI_DEVICE = r'''
import jax, numpy as np
from jaxgan import data, sharding
from jaxgan.errors import JaxganError
assert jax.device_count() == 4, jax.devices()
d = data.load_source('synthetic', seed=0, image_size=16, synthetic_size=8).domains('train')
kw = dict(load_size=16, image_size=12, flip=True, paired=False, seed=1)
bs = sharding.batch_sharded(sharding.make_mesh())
plain = next(iter(data.train_batches(d, global_batch=4, **kw)))
placed = next(iter(data.train_batches(d, global_batch=4, sharding=bs, **kw)))
for k in 'ab':
  shards = placed[k].addressable_shards
  assert len(shards) == 4 and all(s.data.shape == (1, 12, 12, 3) for s in shards)
  np.testing.assert_array_equal(np.asarray(placed[k]), plain[k])
try:
  data.train_batches(d, global_batch=6, sharding=bs, **kw)
  raise SystemExit('no error')
except JaxganError as e:
  assert '6' in str(e) and '4' in str(e), e
print('OK')
'''


@pytest.mark.slow
def test_sharded_placement_on_4_devices():
  env = subprocess_env(XLA_FLAGS='--xla_force_host_platform_device_count=4')
  out = subprocess.run([PYTHON, '-c', MULTI_DEVICE], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0 and 'OK' in out.stdout, out.stdout + out.stderr[-3000:]


def _tiny_tfds_builder():
  """A registered tfds builder with trainA/trainB/testA, prepared without network."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class JaxganTinyAb(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
          {'image': tfds.features.Image(shape=(None, None, 3))}))

    def _split_generators(self, dl_manager):
      return {s: self._generate_examples(k)
              for k, s in enumerate(['trainA', 'trainB', 'testA'])}

    def _generate_examples(self, k):
      for i in range(3):
        yield i, {'image': np.full((10 + i, 12, 3), 40 * k + i, np.uint8)}

  return JaxganTinyAb


_TINY_TFDS = []


def test_tfds_prepared_dataset_is_materialised(tmp_path):
  if not _TINY_TFDS:  # tfds registers builder classes by name: define it once.
    _TINY_TFDS.append(_tiny_tfds_builder())
  _TINY_TFDS[0](data_dir=str(tmp_path)).download_and_prepare()
  src = data.load_source('tfds:jaxgan_tiny_ab', seed=0, image_size=8,
                         tfds_data_dir=str(tmp_path))
  assert not src.paired and src.has_split('train') and not src.has_split('test')
  d = src.domains('train')
  assert d.a.array.shape == (3, 8, 8, 3) and d.a.array.dtype == np.uint8
  assert sorted(d.a.array[:, 0, 0, 0]) == [0, 1, 2]  # Flat images stay flat.
  assert sorted(d.b.array[:, 0, 0, 0]) == [40, 41, 42]
  with pytest.raises(JaxganError, match='missing split testB'):
    src.domains('test')
  with pytest.raises(JaxganError, match='unknown tensorflow-datasets dataset') as info:
    data.load_source('tfds:no_such_dataset_xyz', seed=0, image_size=8,
                     tfds_data_dir=str(tmp_path))
  assert '\n' not in str(info.value)


# --- one-domain sources (unconditional GANs) and grayscale ----------------------


def _tiny_gray_tfds_builder():
  """A one-domain tfds builder like mnist: splits train/test, 1-channel images."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class JaxganTinyGray(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
          {'image': tfds.features.Image(shape=(6, 6, 1)), 'label': tfds.features.ClassLabel(num_classes=2)}))

    def _split_generators(self, dl_manager):
      return {'train': self._generate_examples(4), 'test': self._generate_examples(2)}

    def _generate_examples(self, n):
      for i in range(n):
        yield i, {'image': np.full((6, 6, 1), 50 * i, np.uint8), 'label': i % 2}

  return JaxganTinyGray


def test_tfds_one_domain_dataset(tmp_path):
  if len(_TINY_TFDS) < 2:
    if not _TINY_TFDS:
      _TINY_TFDS.append(_tiny_tfds_builder())
    _TINY_TFDS.append(_tiny_gray_tfds_builder())
  _TINY_TFDS[1](data_dir=str(tmp_path)).download_and_prepare()
  src = data.load_source('tfds:jaxgan_tiny_gray', seed=0, image_size=6,
                         tfds_data_dir=str(tmp_path))
  assert src.has_split('train') and src.has_split('test')
  d = src.domains('train')
  assert d.b is None and d.a.channels == 1 and d.a.array.shape == (4, 6, 6, 1)
  assert sorted(d.a.array[:, 0, 0, 0]) == [0, 50, 100, 150]
  with pytest.raises(JaxganError, match='has one domain of images, but this task'):
    src.task_domains('train', 'unpaired')


def test_single_domain_stream_and_channel_conversion():
  red = data.ArrayImageSet('red', np.tile(np.array([255, 0, 0], np.uint8), (3, 8, 8, 1)))
  gray = data.ArrayImageSet('gray', np.full((3, 8, 8, 1), 102, np.uint8))
  # RGB -> gray with ITU-R 601 luma (0.299 R + 0.587 G + 0.114 B), as PIL's 'L'.
  (batch,) = _take(_stream(data.Domains(red, None, False), load_size=8, image_size=8,
                           channels=1), 1)
  assert set(batch) == {'a'} and batch['a'].shape == (2, 8, 8, 1)
  np.testing.assert_allclose(batch['a'], 0.2989 * 2 - 1, atol=2e-3)
  # Gray -> RGB replicates the level.
  (batch,) = _take(_stream(data.Domains(gray, None, False), load_size=8, image_size=8,
                           channels=3), 1)
  assert batch['a'].shape == (2, 8, 8, 3)
  np.testing.assert_allclose(batch['a'], 102 / 255 * 2 - 1, atol=1e-6)
  fixed = data.fixed_batch(data.Domains(gray, None, False), 2, load_size=8, image_size=8,
                           channels=1)
  assert set(fixed) == {'a'} and fixed['a'].shape == (2, 8, 8, 1)
  with pytest.raises(JaxganError, match='paired batches need two domains'):
    _stream(data.Domains(gray, None, False), paired=True)


def test_task_domains_checks_what_the_task_needs(folder):
  src = data.load_source(f'folder:{folder}', seed=0, image_size=16)
  single = src.task_domains('train', 'single')
  assert single.b is None and single.a is src.domains('train').a
  with pytest.raises(JaxganError, match='is unpaired, but this task needs aligned pairs'):
    src.task_domains('train', 'paired')
  with pytest.raises(JaxganError, match='data.source is not set'):
    data.load_source('', seed=0, image_size=16)


def test_mnist_source():
  root = require(REPO.parent / 'shared' / 'datasets' / 'mnist', 'MNIST')
  src = data.load_source(f'mnist:{root}', seed=0, image_size=32)
  train, test = src.domains('train'), src.domains('test')
  assert train.b is None and len(train.a) == 60000 and len(test.a) == 10000
  assert train.a.channels == 1 and train.a.numpy(0).shape == (28, 28, 1)
  (batch,) = _take(_stream(train, global_batch=4, load_size=32, image_size=32,
                           flip=False, channels=1), 1)
  assert batch['a'].shape == (4, 32, 32, 1)
  assert batch['a'].min() >= -1 and batch['a'].max() <= 1 and batch['a'].max() > 0.9


def test_mnist_missing_folder_is_one_line(tmp_path):
  with pytest.raises(JaxganError, match='does not exist'):
    data.load_source(f'mnist:{tmp_path}/nope', seed=0, image_size=32)


def _tiny_mnist(root, n_train=10, n_test=4):
  """MNIST's four IDX files with random digits (28x28 uint8), written by hand."""
  import struct
  rng = np.random.default_rng(0)
  root.mkdir(parents=True, exist_ok=True)
  for prefix, n in (('train', n_train), ('t10k', n_test)):
    pixels = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    (root / f'{prefix}-images-idx3-ubyte').write_bytes(
        struct.pack('>BBBBIII', 0, 0, 8, 3, n, 28, 28) + pixels.tobytes())
    (root / f'{prefix}-labels-idx1-ubyte').write_bytes(
        struct.pack('>BBBBI', 0, 0, 8, 1, n) + bytes(n))
  return root


def test_colour_mnist_source_by_hand(tmp_path):
  from jaxgan.data import colour_mnist, idx
  root = _tiny_mnist(tmp_path / 'mnist')
  src = data.load_source(f'colour_mnist:{root}', seed=3, image_size=32)
  digits, _ = idx.load_mnist(root, 'train')
  train = src.domains('train')
  assert not train.paired and (len(train.a), len(train.b)) == (5, 5)
  idx_a, idx_b = colour_mnist.halves(3, 10)
  assert set(idx_a).isdisjoint(idx_b) and sorted([*idx_a, *idx_b]) == list(range(10))
  # A: the gray digit in all three channels.
  for i, k in enumerate(idx_a):
    a = train.a.numpy(i)
    assert a.shape == (28, 28, 3) and (a == digits[k][..., None]).all()
  # B: bg (1 - x) + fg x per pixel, by hand, with palettes of contrast >= 0.5.
  fg, bg = colour_mnist.palettes(3, 'train', 5)
  assert (np.linalg.norm(fg - bg, axis=1) >= 0.5).all()
  for i, k in enumerate(idx_b):
    x = digits[k].astype(np.float64)[..., None] / 255.0
    want = np.clip(np.rint((bg[i] * (1 - x) + fg[i] * x) * 255), 0, 255)
    np.testing.assert_array_equal(train.b.numpy(i), want.astype(np.uint8))
  # Seeded: the same seed gives the same images, another seed other palettes.
  again = data.load_source(f'colour_mnist:{root}', seed=3, image_size=32)
  np.testing.assert_array_equal(again.domains('train').b.numpy(0), train.b.numpy(0))
  other = data.load_source(f'colour_mnist:{root}', seed=4, image_size=32)
  assert not np.array_equal(other.domains('test').b.numpy(0), src.domains('test').b.numpy(0))
  test = src.domains('test')
  assert (len(test.a), len(test.b)) == (4, 4)
  (batch,) = _take(_stream(train, global_batch=2, load_size=32, image_size=32,
                           flip=False, channels=3), 1)
  assert batch['a'].shape == batch['b'].shape == (2, 32, 32, 3)


def test_palette_fit_recovers_the_palette_by_least_squares():
  from jaxgan.data import colour_mnist
  rng = np.random.default_rng(1)
  gray = rng.uniform(size=(5, 12, 12))
  fg, bg = colour_mnist.palettes(0, 'test', 5)
  rgb = colour_mnist.colourise(gray, fg, bg)
  got_fg, got_bg, residual = colour_mnist.fit_palettes(gray, rgb)
  np.testing.assert_allclose(got_fg, fg, atol=1e-9)
  np.testing.assert_allclose(got_bg, bg, atol=1e-9)
  np.testing.assert_allclose(residual, 0, atol=1e-9)
  # Noise of std 0.1 on the colours shows up as an RMS residual of ~0.1.
  _, _, noisy = colour_mnist.fit_palettes(gray, rgb + rng.normal(0, 0.1, rgb.shape))
  assert np.all((noisy > 0.08) & (noisy < 0.12)), noisy
