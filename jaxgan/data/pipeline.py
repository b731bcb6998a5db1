"""The tf.data input pipeline: shuffled, augmented, exactly resumable training batches.

This module owns what the model sees: which images make up each batch, their
augmentation (resize to load size, random crop, optional flip, scale to [-1, 1]), and
placing the batch on the devices. It also gives the fixed, unaugmented batches used for
sample grids and evaluation.

Every batch is a pure function of (seed, global step): epoch e = step // steps_per_epoch,
the image orders of epoch e come from `np.random.default_rng([seed, e, domain])`, and the
augmentation draws come from stateless TF ops keyed by (seed, e, position in the epoch).
Resuming at any step therefore reproduces, bit for bit, the batches an uninterrupted run
would have seen, without decoding anything that is then thrown away.

TensorFlow is used here for data only: importing this module hides the GPUs from it, so
that it never takes accelerator memory that JAX needs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')  # Keep TF's C++ INFO lines quiet.

import jax  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

try:
  tf.config.set_visible_devices([], 'GPU')
except RuntimeError:
  # TF was already initialised by someone else; its devices can no longer change.
  pass

from jaxgan.data.sources import Domains, ImageSet  # pylint: disable=g-import-not-at-top
from jaxgan.errors import JaxganError  # pylint: disable=g-import-not-at-top

# Batches made ahead of the step. The pipeline outruns the step by far (maps at 64²:
# ~440 batches/s against ~1 step/s, experiments/bench_data.py), so a few suffice, and
# tf.data's autotuner, which keeps threads busy measuring, is not needed.
_PREFETCH_BATCHES = 4
# Steps per tf.data pipeline (see BatchStream.__iter__).
_CHUNK_STEPS = 64


def _options() -> tf.data.Options:
  """tf.data shares the CPU with XLA's step: a small private thread pool (sized by
  the cores) and no intra-op parallelism inside tf.data's own ops, so that the
  input pipeline's threads do not compete with the step's."""
  options = tf.data.Options()
  options.threading.private_threadpool_size = max(1, min(4, (os.cpu_count() or 2) // 2))
  options.threading.max_intra_op_parallelism = 1
  options.autotune.enabled = False
  return options


# Keys folded into each element's augmentation seed, one per random draw.
_CROP_A, _FLIP_A, _CROP_B, _FLIP_B = range(4)


def _check_sizes(load_size: int, image_size: int):
  if not 1 <= image_size <= load_size:
    raise JaxganError(f'image size {image_size} must be between 1 and the load size '
                      f'{load_size}')


def _to_channels(img: tf.Tensor, channels: int) -> tf.Tensor:
  """float [H, W, c] -> [H, W, channels]: gray is replicated to RGB; RGB becomes gray
  with ITU-R 601 luma weights (what PIL's convert('L') uses)."""
  have = img.shape[-1]
  if have == channels:
    return img
  if have == 1 and channels == 3:
    return tf.tile(img, [1, 1, 3])
  if have == 3 and channels == 1:
    return tf.image.rgb_to_grayscale(img)
  raise JaxganError(f'cannot convert {have}-channel images to {channels} channels')


def _resize(img: tf.Tensor, size: int) -> tf.Tensor:
  """float [H, W, C] in [0, 1] -> [size, size, C]; bicubic, antialiased like PIL."""
  def resize():
    out = tf.image.resize(img, [size, size], method='bicubic', antialias=True)
    return tf.clip_by_value(out, 0.0, 1.0)  # Bicubic overshoots; PIL clips too.

  if img.shape[0] == size and img.shape[1] == size:
    return img
  shape = tf.shape(img)
  same = tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size))
  out = tf.cond(same, lambda: tf.identity(img), resize)
  return tf.ensure_shape(out, [size, size, img.shape[-1]])


def _center_crop(img: tf.Tensor, size: int) -> tf.Tensor:
  top = (img.shape[0] - size) // 2
  left = (img.shape[1] - size) // 2
  return img[top:top + size, left:left + size]


def _process_rows(sharding, global_batch: int) -> tuple[int, int]:
  """The rows [start, stop) of each global batch that this process must produce."""
  n_proc = jax.process_count()
  mesh = getattr(sharding, 'mesh', None)
  if mesh is None or 'data' not in mesh.shape:
    raise JaxganError(f'batch sharding must be a NamedSharding over a mesh with a '
                      f"'data' axis, got {sharding}")
  if global_batch % n_proc:
    raise JaxganError(f'global batch {global_batch} is not divisible by the process '
                      f'count {n_proc}')
  if global_batch % mesh.shape['data']:
    raise JaxganError(f"global batch {global_batch} is not divisible by the 'data' "
                      f"mesh axis size {mesh.shape['data']}")
  local = global_batch // n_proc
  start = jax.process_index() * local
  return start, start + local


class BatchStream:
  """An endless, resumable stream of {'a': x, 'b': y} training batches ({'a': x}
  alone when the domains have no B).

  Batch k of the stream is the batch of global step start_step + k. Iterating twice
  starts over at start_step.
  """

  def __init__(self, domains: Domains, *, global_batch: int, load_size: int,
               image_size: int, flip: bool, paired: bool, seed: int,
               start_step: int = 0, sharding=None, channels: int = 3):
    _check_sizes(load_size, image_size)
    if global_batch < 1:
      raise JaxganError(f'global batch {global_batch} must be at least 1')
    if seed < 0:
      raise JaxganError(f'seed must be a non-negative integer, got {seed}')
    if start_step < 0:
      raise JaxganError(f'start step must be non-negative, got {start_step}')
    len_a = len(domains.a)
    len_b = len_a if domains.b is None else len(domains.b)
    if domains.b is None:
      if paired:
        raise JaxganError(f'paired batches need two domains, but {domains.a.name} '
                          'is the only one')
      self.epoch_len = len_a
    elif paired:
      if not domains.paired:
        raise JaxganError(f'paired batches need paired domains, but {domains.a.name} '
                          f'and {domains.b.name} are unpaired')
      if len_a != len_b:
        raise JaxganError(f'paired domains differ in size: {domains.a.name} has '
                          f'{len_a} images, {domains.b.name} {len_b}')
      self.epoch_len = len_a
    else:
      # As in CycleGAN: an epoch covers the larger domain once, the smaller one is
      # cycled through as many shuffled passes as needed.
      self.epoch_len = max(len_a, len_b)
    self.steps_per_epoch = self.epoch_len // global_batch
    if self.steps_per_epoch < 1:
      names = domains.a.name + ('' if domains.b is None else f', {domains.b.name}')
      raise JaxganError(f'global batch {global_batch} is larger than an epoch of '
                        f'{self.epoch_len} images ({names})')

    self.domains = domains
    self.global_batch = global_batch
    self.load_size, self.image_size = load_size, image_size
    self.flip, self.paired, self.seed = flip, paired, seed
    self.channels = channels
    self.start_step = start_step
    self.sharding = sharding
    if sharding is None:
      self._rows = (0, global_batch)
    else:
      self._rows = _process_rows(sharding, global_batch)
    self._orders: dict[int, tuple[np.ndarray, np.ndarray]] = {}

  # -- index arithmetic (numpy) ------------------------------------------------------

  def _order(self, epoch: int, domain: int, n: int) -> np.ndarray:
    """Epoch order of one domain: shuffled passes over its n images, epoch_len long."""
    rng = np.random.default_rng([self.seed, epoch, domain])
    passes = math.ceil(self.epoch_len / n)
    return np.concatenate([rng.permutation(n) for _ in range(passes)])[:self.epoch_len]

  def orders(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(A order, B order) of an epoch: the image index at each position."""
    if epoch not in self._orders:
      order_a = self._order(epoch, 0, len(self.domains.a))
      if self.paired or self.domains.b is None:
        order_b = order_a  # unused without B
      else:
        order_b = self._order(epoch, 1, len(self.domains.b))
      self._orders = {epoch: (order_a, order_b)}  # Only the current epoch is needed.
    return self._orders[epoch]

  def _step_rows(self, step: int) -> np.ndarray:
    """This process's rows of `step` as int64 [rows, 4]: (A index, B index, epoch,
    position in epoch)."""
    epoch, offset = divmod(step, self.steps_per_epoch)
    order_a, order_b = self.orders(epoch)
    pos = np.arange(offset * self.global_batch + self._rows[0],
                    offset * self.global_batch + self._rows[1])
    return np.stack([order_a[pos], order_b[pos], np.full_like(pos, epoch), pos],
                    axis=1).astype(np.int64)

  def _step_indices(self, step: int) -> Iterator[np.ndarray]:
    """`_step_rows` of each step from `step` on."""
    while True:
      yield self._step_rows(step)
      step += 1

  # -- per element (TF graph) --------------------------------------------------------

  def _augment(self, img, crop_seed, flip_seed):
    img = _resize(_to_channels(img, self.channels), self.load_size)
    img = tf.image.stateless_random_crop(
        img, [self.image_size, self.image_size, self.channels], seed=crop_seed)
    if self.flip:
      img = tf.image.stateless_random_flip_left_right(img, seed=flip_seed)
    return img * 2.0 - 1.0

  def _element(self, row):
    key = tf.constant([self.seed % 2**31, self.seed // 2**31], tf.int64)
    key = tf.random.experimental.stateless_fold_in(key, row[2])  # epoch
    key = tf.random.experimental.stateless_fold_in(key, row[3])  # position
    draw = lambda k: tf.random.experimental.stateless_fold_in(key, k)
    a = self._augment(self.domains.a.tf_load(row[0]), draw(_CROP_A), draw(_FLIP_A))
    if self.domains.b is None:
      return {'a': a}
    b = self.domains.b.tf_load(row[1])
    if self.paired:
      # pix2pix: the pair must stay aligned, so both get the same crop and flip.
      crop_b, flip_b = draw(_CROP_A), draw(_FLIP_A)
    else:
      crop_b, flip_b = draw(_CROP_B), draw(_FLIP_B)
    return {'a': a, 'b': self._augment(b, crop_b, flip_b)}

  def _dataset(self, table: np.ndarray) -> tf.data.Dataset:
    """The batches of the steps in `table` (int64 [steps, rows, 4], this process's
    rows of each step) as a tf.data.Dataset.

    Built from a tensor, not with `Dataset.from_generator`: a live from_generator
    pipeline slowed XLA's CPU step by ~30% for the rest of the process (measured:
    0.87 -> 1.17 s per CycleGAN step at 64² after iterating one, BUILD_NOTES)."""
    rows = self._rows[1] - self._rows[0]
    options = _options()
    ds = tf.data.Dataset.from_tensor_slices(table.reshape(-1, 4))
    ds = ds.map(self._element, num_parallel_calls=options.threading.private_threadpool_size,
                deterministic=True)
    ds = ds.batch(rows, drop_remainder=True)
    ds = ds.prefetch(_PREFETCH_BATCHES)
    return ds.with_options(options)

  def __iter__(self):
    return self.from_step(self.start_step)

  def from_step(self, start_step: int) -> Iterator[dict]:
    """The batches from global step `start_step` on (a resumed run's), in chunks of
    _CHUNK_STEPS steps; the next chunk's pipeline starts (and prefetches) while the
    current one is consumed."""
    if start_step < 0:
      raise JaxganError(f'start step must be non-negative, got {start_step}')
    global_shape = (self.global_batch, self.image_size, self.image_size,
                    self.channels)
    indices = self._step_indices(start_step)

    def chunk():
      table = np.stack([next(indices) for _ in range(_CHUNK_STEPS)])
      return self._dataset(table).as_numpy_iterator()

    step, current, upcoming = start_step, chunk(), None
    while True:
      if upcoming is None:
        upcoming = chunk()
      try:
        batch = next(current)
      except StopIteration:
        current, upcoming = upcoming, None
        continue
      except tf.errors.OpError as e:
        raise JaxganError(self._failure(step, e)) from None
      if self.sharding is None:
        yield batch
      else:
        yield {k: jax.make_array_from_process_local_data(self.sharding, v, global_shape)
               for k, v in batch.items()}
      step += 1

  def _failure(self, step: int, error) -> str:
    """One line on why the batch of `step` could not be made, naming the image."""
    domains = [(d, col) for d, col in ((self.domains.a, 0), (self.domains.b, 1))
               if d is not None]
    rows = self._step_rows(step)
    images = [(d, int(row[col])) for d, col in domains for row in rows]
    return _unreadable(images, error, f'step {step}') + (
        ', then run the same command to resume')


def _unreadable(images, error, needed_for: str) -> str:
  """One line naming the first of `images` ((ImageSet, index) pairs) that cannot be
  read now, else the pipeline's own first line."""
  for image_set, i in images:
    problem = image_set.problem(i)
    if problem:
      return f'cannot read image {problem}, needed for {needed_for}: replace or remove it'
  text = str(error).strip().splitlines()
  return f'the input pipeline failed for {needed_for}: {text[0] if text else error}'


def train_batches(domains: Domains, *, global_batch: int, load_size: int,
                  image_size: int, flip: bool, paired: bool, seed: int,
                  start_step: int = 0, sharding=None,
                  channels: int = 3) -> BatchStream:
  """Endless training batches {'a', 'b'}: float32 [global_batch, S, S, channels] in
  [-1, 1]; only {'a'} when `domains.b` is None.

  Args:
    domains: the split to draw from.
    global_batch: images per domain per step, over all processes.
    load_size: images are first resized to load_size x load_size (bicubic)...
    image_size: ...then randomly cropped to image_size x image_size.
    flip: also flip each image left-right with probability 1/2.
    paired: draw a[i], b[i] as a true pair with the same crop and flip (pix2pix);
      False shuffles and augments the two domains independently (CycleGAN).
    seed: fixes the orders and augmentation.
    start_step: the global step of the first batch (for resuming).
    sharding: None to yield numpy arrays; else a NamedSharding whose mesh has a
      'data' axis splitting the batch: each process then loads only its own rows and
      the stream yields global jax.Arrays.
    channels: 3 (RGB) or 1 (gray): images of the other kind are converted.
  """
  return BatchStream(domains, global_batch=global_batch, load_size=load_size,
                     image_size=image_size, flip=flip, paired=paired, seed=seed,
                     start_step=start_step, sharding=sharding, channels=channels)


def _load_resized(image_set: ImageSet, n: int, load_size: int, image_size: int,
                  channels: int):
  """float32 [n, image_size, image_size, channels] in [-1, 1]: images i % len,
  centre-cropped."""
  def load(i):
    img = _to_channels(image_set.tf_load(i % len(image_set)), channels)
    img = _resize(img, load_size)
    return _center_crop(img, image_size) * 2.0 - 1.0

  ds = tf.data.Dataset.range(n).map(load, num_parallel_calls=tf.data.AUTOTUNE,
                                    deterministic=True)
  try:
    return next(ds.batch(n).as_numpy_iterator())
  except tf.errors.OpError as e:
    raise JaxganError(_unreadable(
        [(image_set, i % len(image_set)) for i in range(n)], e,
        'the sample images')) from None


def fixed_batch(domains: Domains, n: int, *, load_size: int, image_size: int,
                channels: int = 3) -> dict[str, np.ndarray]:
  """The first n images of each domain, resized and centre-cropped (no randomness).

  For sample grids and evaluation: {'a', 'b'} ({'a'} without B) float32
  [n, image_size, image_size, channels] in [-1, 1]. A domain with fewer than n images
  is cycled through, so the shapes are always n.
  """
  _check_sizes(load_size, image_size)
  if n < 1:
    raise JaxganError(f'fixed batch size must be at least 1, got {n}')
  sets = {'a': domains.a, 'b': domains.b}
  return {k: _load_resized(v, n, load_size, image_size, channels)
          for k, v in sets.items() if v is not None}


def eval_batches(image_set: ImageSet, batch_size: int, *, size: int,
                 channels: int = 3) -> Iterator[np.ndarray]:
  """Every image of one domain, in order, resized to size x size (no crop).

  Yields float32 [<= batch_size, size, size, channels] in [-1, 1]; the last batch may
  be partial.
  """
  if batch_size < 1 or size < 1:
    raise JaxganError(f'eval batch size and image size must be at least 1, got '
                      f'{batch_size} and {size}')

  def load(i):
    return _resize(_to_channels(image_set.tf_load(i), channels), size) * 2.0 - 1.0

  ds = tf.data.Dataset.range(len(image_set))
  ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  yield from ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).as_numpy_iterator()
