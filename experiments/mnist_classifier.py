"""An MNIST digit classifier trained here, and the diversity measures built on it.

Whether a GAN run on MNIST covers all ten digits (StyleGAN's demo collapses to one or
two digit shapes, DCGAN's covers all ten) is read off a small CNN's predicted classes:

  python experiments/mnist_classifier.py [--data ../shared/datasets/mnist]
      [--output PATH] [--epochs N] [--seed S]

trains it on the 60k training digits (Flax + Optax, CPU; pin it with `taskset -c 1`),
prints the training time and the accuracy on the 10k test digits, and writes the
weights as an .npz of plain arrays plus a JSON string 'meta' (test accuracy, input
size, date, seed, epochs, training time) to PATH, by default beside the FID feature
cache: `$JAXGAN_CACHE/mnist_classifier.npz`, else `~/.cache/jaxgan/mnist_classifier.npz`.
The default 4 epochs (seed 0) give 99.16% test accuracy in 202 CPU-seconds of
training (2026-12-04, one core of the 2-core dev VM, shared: 495 s wall; ~60 s per
epoch when the core is free). A classifier under 98% is not written.

The classifier sees what the GANs generate: [N, 32, 32, 1] in [-1, 1]. The digits are
brought to that form by the input pipeline's own evaluation path (`eval_batches`:
28x28 resized bicubic, antialiased, to 32x32, clipped, scaled to [-1, 1]), which for
load_size = image_size = 32 (dcgan:demo, stylegan:demo) is exactly what training
shows the GAN: its random crop of a 32x32 image to 32x32 is the identity.

The measures, for images [N, 32, 32, 1] in [-1, 1], taken as the uint8 pixels they
are saved and evaluated as (`diversity`):
  entropy     of the predicted-class histogram, in nats: ln 10 = 2.303 for ten equal
              classes, 0 for one; MNIST's 10k test digits give 2.301
  classes     how many classes hold more than 5% of the samples (`MIN_SHARE`)
  pixel_std   the std over the sample axis of each pixel (images mapped to [0, 1]),
              averaged over the pixels: 0 when every sample is the same image;
              0.185 for the 10k test digits. The always-black border pixels count
              too, so it is well below MNIST's global pixel std (0.31)
and `hop_share(before, after)`: the share of one fixed z set whose predicted class
changes between two checkpoints (mode hopping). `experiments/mode_coverage.py` prints
them per checkpoint of a run; `experiments/fid_at_budget.py` adds them to its table.
"""

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

from flax import traverse_util
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgan import cli
from jaxgan import images as images_lib
from jaxgan.errors import JaxganError
from jaxgan.metrics import feature_cache

INPUT_SIZE = 32  # what dcgan:demo and stylegan:demo generate: [N, 32, 32, 1]
NUM_CLASSES = 10
MIN_SHARE = 0.05  # a class counts as covered above this share of the samples
FILE_NAME = 'mnist_classifier.npz'
META_KEY = 'meta'  # the JSON metadata, stored as a 0-d unicode array (no pickle)
DEFAULT_DATA = '../shared/datasets/mnist'
TRAIN_COMMAND = 'python experiments/mnist_classifier.py'
MIN_ACCURACY = 0.98  # a weaker classifier is not written
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
PREDICT_BATCH = 500  # images per classifier call (one compiled shape)


def default_path() -> Path:
  """`$JAXGAN_CACHE/mnist_classifier.npz` if JAXGAN_CACHE is set, else
  `~/.cache/jaxgan/mnist_classifier.npz`: beside the FID feature cache."""
  return feature_cache.default_cache_dir().parent / FILE_NAME


# ------------------------------------------------------------------------------ model


class Classifier(nn.Module):
  """Three 3x3 conv + ReLU + 2x2 max-pool stages (16, 32, 64 channels: 32 -> 4), a
  128-unit hidden layer, ten logits: small enough to train in minutes on one CPU
  core."""

  @nn.compact
  def __call__(self, x):
    for features in (16, 32, 64):
      x = nn.Conv(features, (3, 3))(x)
      x = nn.max_pool(nn.relu(x), (2, 2), (2, 2))
    x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
    return nn.Dense(NUM_CLASSES)(x)


def init_params(seed: int = 0) -> dict:
  """Randomly initialised classifier parameters (the nested Flax dict)."""
  return _init(jax.random.PRNGKey(seed))


@jax.jit
def _init(key):
  # Jitted: one compile instead of an eager dispatch (and compile) per operation.
  return Classifier().init(key, jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 1)))['params']


def logits(params, images):
  """[N, 10] class scores of images [N, 32, 32, 1] in [-1, 1] (traceable)."""
  return Classifier().apply({'params': params}, images)


_jitted_logits = jax.jit(logits)


def _expected_shapes() -> dict[str, tuple]:
  """The flat 'Module/param' -> shape of every array a weights file must hold."""
  abstract = jax.eval_shape(_init, jax.random.PRNGKey(0))
  return {k: tuple(v.shape) for k, v in
          traverse_util.flatten_dict(abstract, sep='/').items()}


def check_images(images, what: str = 'images') -> np.ndarray:
  """`images` as float32 [N, 32, 32, 1]; a one-line JaxganError for anything else."""
  images = np.asarray(images)
  want = (INPUT_SIZE, INPUT_SIZE, 1)
  if images.ndim != 4 or images.shape[1:] != want or images.shape[0] < 1:
    raise JaxganError(f'{what}: the MNIST classifier takes [N, {INPUT_SIZE}, '
                      f'{INPUT_SIZE}, 1] images (N >= 1), got shape {list(images.shape)}')
  if images.dtype.kind != 'f':
    raise JaxganError(f'{what}: expected float images in [-1, 1], got {images.dtype}')
  return images.astype(np.float32)


def predict_classes(params, images, batch_size: int = PREDICT_BATCH) -> np.ndarray:
  """The predicted digit (int [N]) of each image [N, 32, 32, 1] in [-1, 1]. Batches
  of one size (the last one padded) so the classifier compiles once."""
  images = check_images(images)
  out = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    padded = np.concatenate([chunk, np.zeros((batch_size - len(chunk),) + chunk.shape[1:],
                                             chunk.dtype)])
    out.append(np.asarray(_jitted_logits(params, padded))[:len(chunk)].argmax(-1))
  return np.concatenate(out).astype(np.int64)


# --------------------------------------------------------------------------- measures


def class_counts(labels) -> np.ndarray:
  """How many of `labels` (ints in [0, 10)) fall in each class: int [10]."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or labels.size == 0 or labels.dtype.kind not in 'iu':
    raise JaxganError(f'class labels must be a non-empty 1-D integer array, got '
                      f'{labels.dtype} {list(labels.shape)}')
  if labels.min() < 0 or labels.max() >= NUM_CLASSES:
    raise JaxganError(f'class labels must be in [0, {NUM_CLASSES}), got '
                      f'{labels.min()}..{labels.max()}')
  return np.bincount(labels, minlength=NUM_CLASSES)


def class_entropy(labels) -> float:
  """The entropy (nats) of the labels' class histogram: ln 10 for ten equal
  classes, 0 when every label is the same."""
  p = class_counts(labels) / len(labels)
  p = p[p > 0]
  return float((p * np.log(1.0 / p)).sum())  # not -sum(p ln p): no -0.0 for one class


def classes_above(labels, share: float = MIN_SHARE) -> int:
  """How many classes hold more than `share` of the labels."""
  return int((class_counts(labels) / len(labels) > share).sum())


def pixel_std(images) -> float:
  """The std over the sample axis of each pixel of images in [-1, 1] mapped to
  [0, 1], averaged over the pixels (and channels): 0 if all samples are equal."""
  images = np.asarray(images, np.float64)
  if images.ndim < 2 or images.shape[0] < 1:
    raise JaxganError(f'pixel std needs images [N, ...] with N >= 1, got shape '
                      f'{list(images.shape)}')
  return float(((images + 1.0) / 2.0).std(axis=0).mean())


def hop_share(before, after) -> float:
  """The share of samples (one fixed z set) whose class differs between two
  checkpoints' predictions `before` and `after` (int [N] each)."""
  before, after = np.asarray(before), np.asarray(after)
  if before.ndim != 1 or before.shape != after.shape or before.size == 0:
    raise JaxganError(f'mode hopping compares the classes of one z set at two '
                      f'checkpoints: need two equal-length non-empty 1-D arrays, got '
                      f'shapes {list(before.shape)} and {list(after.shape)}')
  return float((before != after).mean())


def as_saved(images) -> np.ndarray:
  """Images in [-1, 1] as the uint8 pixels they are saved and evaluated as
  (`jaxgan.images.to_uint8`: clipped, rounded), mapped back to [-1, 1]. StyleGAN's
  output is not squashed into [-1, 1]; its samples are scored as they look."""
  return images_lib.to_uint8(images).astype(np.float32) / 127.5 - 1.0


def diversity(params, images, what: str = 'images') -> tuple[dict, np.ndarray]:
  """({'entropy', 'classes', 'pixel_std'}, predicted classes int [N]) of images
  [N, 32, 32, 1] in [-1, 1], scored `as_saved`."""
  images = as_saved(check_images(images, what))
  labels = predict_classes(params, images)
  return {'entropy': class_entropy(labels), 'classes': classes_above(labels),
          'pixel_std': pixel_std(images)}, labels


# ------------------------------------------------------------------------------- files


def save(path, params, meta: dict) -> None:
  """Writes the weights (flat 'Module/param' arrays) and `meta` (as JSON) to the
  .npz at `path`, atomically."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  arrays = {k: np.asarray(v, np.float32)
            for k, v in traverse_util.flatten_dict(params, sep='/').items()}
  arrays[META_KEY] = np.array(json.dumps(meta))
  tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
  try:
    with open(tmp, 'wb') as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)


def load(path=None) -> tuple[dict, dict]:
  """(params, meta) of the classifier saved at `path` (default `default_path()`).

  Never executes anything from the file (allow_pickle=False). A one-line JaxganError
  if it is missing (naming the command that trains it), unreadable, lacks an array or
  the metadata, or holds an array of another shape or an unknown one."""
  path = Path(path) if path is not None else default_path()
  if not path.is_file():
    raise JaxganError(f'no MNIST classifier at {path}: train it with `{TRAIN_COMMAND}'
                      + ('' if path == default_path() else f' --output {path}') + '`')
  expected = _expected_shapes()
  try:
    with np.load(path, allow_pickle=False) as z:
      stored = {k: z[k] for k in z.files}
  except Exception as e:  # noqa: BLE001 - any unreadable file is one line
    raise JaxganError(f'cannot read the MNIST classifier {path} as an .npz of arrays '
                      f'({type(e).__name__}: {" ".join(str(e).split())})') from None
  if META_KEY not in stored:
    raise JaxganError(f'MNIST classifier {path} has no {META_KEY!r} entry (not written '
                      f'by {TRAIN_COMMAND}?)')
  try:
    meta = json.loads(str(stored.pop(META_KEY)[()]))
  except ValueError as e:
    raise JaxganError(f'MNIST classifier {path}: its {META_KEY!r} is not JSON ({e})'
                      ) from None
  if (not isinstance(meta, dict) or meta.get('input_size') != INPUT_SIZE
      or not isinstance(meta.get('test_accuracy'), float)):
    raise JaxganError(f'MNIST classifier {path}: its metadata must give input_size '
                      f'{INPUT_SIZE} and a test_accuracy, got {meta!r}')
  missing = sorted(set(expected) - set(stored))
  if missing:
    raise JaxganError(f'MNIST classifier {path} lacks the arrays {", ".join(missing)}')
  unknown = sorted(set(stored) - set(expected))
  if unknown:
    raise JaxganError(f'MNIST classifier {path} holds unknown arrays '
                      f'{", ".join(unknown)} (another architecture?)')
  for name, shape in expected.items():
    array = stored[name]
    if array.shape != shape or array.dtype.kind != 'f':
      raise JaxganError(f'MNIST classifier {path}: array {name} is {array.dtype} '
                        f'{list(array.shape)}, expected float {list(shape)}')
  params = traverse_util.unflatten_dict(
      {tuple(k.split('/')): v.astype(np.float32) for k, v in stored.items()})
  return params, meta


# ---------------------------------------------------------------------------- training


def mnist_images(root, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(float32 [N, 32, 32, 1] in [-1, 1], int labels [N]) of MNIST's `split`, sized as
  the GANs see it (the pipeline's `eval_batches`; see the module doc)."""
  from jaxgan import data
  from jaxgan.data import idx
  pixels, labels = idx.load_mnist(root, split)
  image_set = data.ArrayImageSet(f'mnist/{split}', pixels[..., None])
  images = np.concatenate(list(data.eval_batches(image_set, 1000, size=INPUT_SIZE,
                                                 channels=1)))
  return images, labels.astype(np.int64)


def accuracy(params, images, labels) -> float:
  return float((predict_classes(params, images) == labels).mean())


def train(train_images, train_labels, *, epochs: int, seed: int, log=print) -> dict:
  """Classifier parameters trained with Adam (cosine-decayed learning rate) on
  shuffled batches of BATCH_SIZE; the shuffling and the initialisation follow
  `seed`."""
  steps_per_epoch = len(train_images) // BATCH_SIZE
  schedule = optax.cosine_decay_schedule(LEARNING_RATE, epochs * steps_per_epoch)
  optimizer = optax.adam(schedule)
  params = init_params(seed)
  opt_state = optimizer.init(params)

  def loss_fn(p, x, y):
    return optax.softmax_cross_entropy_with_integer_labels(logits(p, x), y).mean()

  @jax.jit
  def step(p, s, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
    updates, s = optimizer.update(grads, s, p)
    return optax.apply_updates(p, updates), s, loss

  rng = np.random.default_rng(seed)
  for epoch in range(epochs):
    start = time.perf_counter()
    order = rng.permutation(len(train_images))
    losses = []
    for i in range(steps_per_epoch):
      batch = order[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]
      params, opt_state, loss = step(params, opt_state, train_images[batch],
                                     train_labels[batch])
      losses.append(loss)
    log(f'epoch {epoch + 1}/{epochs}: mean loss {float(np.mean(jax.device_get(losses))):.4f}'
        f' ({time.perf_counter() - start:.1f} s)')
  return jax.device_get(params)


def parse_args(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--data', default=DEFAULT_DATA, help="MNIST's four IDX files")
  p.add_argument('--output', default=None,
                 help=f'the weights file (default {default_path()})')
  p.add_argument('--epochs', type=int, default=4)
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args(argv)
  if args.epochs < 1:
    p.error(f'--epochs must be >= 1, got {args.epochs}')
  return args


def main(argv):
  args = parse_args(argv)
  output = Path(args.output) if args.output else default_path()
  start = time.perf_counter()
  train_images, train_labels = mnist_images(args.data, 'train')
  test_images, test_labels = mnist_images(args.data, 'test')
  print(f'loaded {len(train_images)} training and {len(test_images)} test digits '
        f'({time.perf_counter() - start:.1f} s)', flush=True)
  start, start_cpu = time.perf_counter(), time.process_time()
  params = train(train_images, train_labels, epochs=args.epochs, seed=args.seed,
                 log=lambda line: print(line, flush=True))
  # CPU seconds beside the wall time: on a shared machine the wall time says little.
  train_s, train_cpu_s = time.perf_counter() - start, time.process_time() - start_cpu
  test_accuracy = accuracy(params, test_images, test_labels)
  meta = {'test_accuracy': test_accuracy, 'input_size': INPUT_SIZE,
          'date': datetime.datetime.now().isoformat(timespec='seconds'),
          'epochs': args.epochs, 'seed': args.seed, 'train_seconds': round(train_s, 1),
          'train_cpu_seconds': round(train_cpu_s, 1)}
  print(f'trained in {train_s:.1f} s ({train_cpu_s:.1f} CPU-s, {args.epochs} epochs); '
        f'test accuracy '
        f'{100 * test_accuracy:.2f}% on {len(test_images)} digits', flush=True)
  if test_accuracy < MIN_ACCURACY:
    raise JaxganError(f'test accuracy {100 * test_accuracy:.2f}% is below '
                      f'{100 * MIN_ACCURACY:g}%: not written, too weak to judge digit '
                      'coverage (train longer: --epochs)')
  save(output, params, meta)
  print(f'wrote {output}')


if __name__ == '__main__':
  sys.exit(cli.run(main))
