"""Where training images come from: the `--data` source specs and their image sets.

This module owns turning a spec string into a `Source` whose splits ('train', 'test')
each give two `ImageSet`s (domain A and domain B):

  folder:PATH   the unaligned CycleGAN layout: PATH/trainA, trainB, testA, testB
  aligned:PATH  the pix2pix layout: PATH/train, val, test; each file is A|B side by side
  tfds:NAME     a prepared tensorflow-datasets builder: with trainA/trainB/testA/testB
                splits (two domains), or train/test (one domain, e.g. tfds:mnist)
  mnist:PATH    MNIST's four IDX files (optionally .gz) in PATH: one domain, grayscale
  colour_mnist:PATH  the same files as two unpaired RGB domains: A gray digits, B
                digits in a random palette per image (`jaxgan.data.colour_mnist`)
  synthetic     procedurally generated pairs (`jaxgan.data.synthetic`)

Unconditional GANs use one domain: a one-domain source's splits have no B (`Domains.b`
is None), and `Source.task_domains` gives a task the domains its `data_mode` needs.

Image files are checked once, when the source is built: each is fully decoded with PIL
(in a thread pool), and unreadable ones are skipped with one warning. The same check
picks each file's decoder in the input pipeline so that it gives exactly the pixels of
`jaxgan.images.read_rgb` (what translation and evaluation read): TensorFlow's own
decoders for L/RGB JPEG (with libjpeg's accurate integer IDCT, as PIL uses; TF's
default fast IDCT is off by up to 16 levels), 8/16-bit L/RGB/opaque-palette PNG, RGB
BMP and opaque GIF; PIL through `tf.numpy_function` for the rest (alpha, CMYK, TIFF,
WebP, ...).
"""

from __future__ import annotations

import abc
import concurrent.futures
import dataclasses
import logging
import os

import numpy as np
from PIL import Image
import tensorflow as tf

from jaxgan import images
from jaxgan.data import synthetic as synthetic_lib
from jaxgan.errors import JaxganError

log = logging.getLogger(__name__)

# How the pipeline decodes a file (see the module doc).
DECODE_PIL, DECODE_TF_JPEG, DECODE_TF_IMAGE = 0, 1, 2

SPLITS = ('train', 'test')
SPEC_FORMS = ('folder:PATH, aligned:PATH, tfds:NAME, mnist:PATH, colour_mnist:PATH or '
              'synthetic')
DATA_MODES = ('unpaired', 'paired', 'single')
_MAX_NAMES_IN_WARNING = 5


# ----------------------------------------------------------------------------- images


class ImageSet(abc.ABC):
  """An indexable set of same-mode images (RGB or grayscale) of one domain."""

  name: str
  channels: int = 3

  @abc.abstractmethod
  def __len__(self) -> int:
    ...

  @abc.abstractmethod
  def numpy(self, i: int) -> np.ndarray:
    """Image i as uint8 [H, W, channels] (for sample grids and evaluation)."""

  @abc.abstractmethod
  def tf_load(self, index: tf.Tensor) -> tf.Tensor:
    """Image `index` (a scalar int tensor) as float32 [H, W, channels] in [0, 1],
    in-graph."""

  def __repr__(self):
    return f'{type(self).__name__}({self.name!r}, {len(self)} images)'

  def problem(self, i: int) -> str | None:
    """Why image i cannot be read now (e.g. its file changed since the source was
    built), or None."""
    return None


class FileImageSet(ImageSet):
  """Image files on disk, optionally the left or right half of each (pix2pix)."""

  def __init__(self, name: str, files, decoders, half: str | None = None):
    if half not in (None, 'left', 'right'):
      raise ValueError(f'half must be None, "left" or "right", got {half!r}')
    self.name = name
    self.files = tuple(files)
    self.decoders = np.asarray(decoders, dtype=np.int32)  # DECODE_* per file.
    self.half = half

  @property
  def native(self) -> np.ndarray:
    """Per file: decoded by TensorFlow itself (rather than PIL) in the pipeline."""
    return self.decoders != DECODE_PIL

  def __len__(self):
    return len(self.files)

  def _crop_half_np(self, img):
    w2 = img.shape[1] // 2
    if self.half == 'left':
      return img[:, :w2]
    if self.half == 'right':
      return img[:, w2:]
    return img

  def numpy(self, i):
    return np.ascontiguousarray(self._crop_half_np(images.read_rgb(self.files[i])))

  def problem(self, i):
    try:
      images.read_rgb(self.files[i])
    except Exception as e:  # noqa: BLE001 (PIL raises many types)
      return f'{self.files[i]} ({type(e).__name__}: {e})'
    return None

  def _read_full(self, i):
    return images.read_rgb(self.files[int(i)])

  def tf_load(self, index):
    index = tf.convert_to_tensor(index, tf.int64)

    def read():
      return tf.io.read_file(tf.gather(tf.constant(self.files), index))

    def via_pil():
      return tf.ensure_shape(
          tf.numpy_function(self._read_full, [index], tf.uint8, stateful=False),
          [None, None, 3])

    def via_tf_jpeg():
      return tf.io.decode_jpeg(read(), channels=3, dct_method='INTEGER_ACCURATE')

    def via_tf_image():
      return tf.io.decode_image(read(), channels=3, dtype=tf.uint8,
                                expand_animations=False)

    branches = [via_pil, via_tf_jpeg, via_tf_image]  # Indexed by DECODE_*.
    used = np.unique(self.decoders)
    if len(used) == 1:
      img = branches[used[0]]()
    else:
      code = tf.gather(tf.constant(self.decoders), index)
      img = tf.switch_case(code, branches)
    img = tf.ensure_shape(img, [None, None, 3])
    if self.half is not None:
      w2 = tf.shape(img)[1] // 2
      img = img[:, :w2] if self.half == 'left' else img[:, w2:]
    return tf.cast(img, tf.float32) / 255.0


class ArrayImageSet(ImageSet):
  """Images held in memory as one uint8 [N, H, W, 3 or 1] array (tfds, MNIST,
  synthetic)."""

  def __init__(self, name: str, array: np.ndarray):
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] not in (1, 3):
      raise ValueError(f'{name}: want uint8 [N, H, W, 3 or 1], got {array.dtype} '
                       f'{array.shape}')
    self.name = name
    self.array = array
    self.channels = array.shape[-1]

  def __len__(self):
    return self.array.shape[0]

  def numpy(self, i):
    return self.array[i]

  def tf_load(self, index):
    # numpy_function rather than a graph constant: arrays of a few hundred MB would
    # otherwise be copied into (and bloat) every traced dataset function.
    img = tf.numpy_function(lambda i: self.array[int(i)], [index], tf.uint8,
                            stateful=False)
    img = tf.ensure_shape(img, self.array.shape[1:])
    return tf.cast(img, tf.float32) / 255.0


@dataclasses.dataclass(frozen=True)
class Domains:
  """The domains of one split. paired: a[i] and b[i] show the same scene. b is None
  for a one-domain source (or view, see `Source.task_domains`)."""
  a: ImageSet
  b: ImageSet | None
  paired: bool


# ----------------------------------------------------------------------------- checks


@dataclasses.dataclass(frozen=True)
class _Probe:
  path: str
  ok: bool
  decoder: int = DECODE_PIL


def _decoder_for(img: Image.Image) -> int:
  """The pipeline decoder that reproduces `images.read_rgb` exactly for this file."""
  fmt, mode = img.format, img.mode
  transparent = 'transparency' in img.info
  if fmt == 'JPEG' and mode in ('L', 'RGB'):  # Not CMYK/YCCK: PIL handles Adobe's.
    return DECODE_TF_JPEG
  if fmt == 'PNG' and (mode in ('L', 'RGB', 'I;16', 'I;16B', 'I;16L')
                       or (mode == 'P' and not transparent)):
    return DECODE_TF_IMAGE
  if fmt == 'BMP' and mode == 'RGB':  # TF misreads palette BMPs.
    return DECODE_TF_IMAGE
  if fmt == 'GIF' and mode == 'P' and not transparent:
    return DECODE_TF_IMAGE
  return DECODE_PIL


def _probe(path: str) -> _Probe:
  try:
    with Image.open(path) as img:
      decoder = _decoder_for(img)
      img.load()  # Full decode: catches truncated files.
      if img.width < 1 or img.height < 1:
        return _Probe(path, False)
  except Exception:  # pylint: disable=broad-except
    # Any failure to decode means "skip this file"; the count is reported below.
    return _Probe(path, False)
  return _Probe(path, True, decoder)


def _list_images(folder: str) -> list[str]:
  """All image files under `folder`, recursively, sorted by path."""
  found = []
  for root, dirs, files in os.walk(folder, followlinks=True):
    dirs.sort()
    found.extend(os.path.join(root, f) for f in files if images.is_image_file(f))
  return sorted(found)


def _check_folders(source_name: str,
                   folders: dict[str, str]) -> dict[str, tuple[list[str], np.ndarray]]:
  """Lists and checks the image files of each folder (key -> path).

  Returns key -> (readable files, their DECODE_* codes). Unreadable files are skipped with one
  warning for the whole source; a folder left with no readable image is an error.
  """
  listed = {key: _list_images(path) for key, path in folders.items()}
  everything = [f for files in listed.values() for f in files]
  workers = min(32, (os.cpu_count() or 1) + 4)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    probes = dict(zip(everything, pool.map(_probe, everything)))
  result, bad = {}, []
  for key, files in listed.items():
    good = [probes[f] for f in files if probes[f].ok]
    bad.extend(f for f in files if not probes[f].ok)
    if not good:
      what = (f'all {len(files)} image files are unreadable' if files else
              f'no image files ({", ".join(images.IMG_EXTENSIONS)})')
      raise JaxganError(f'{source_name}: no readable image in {folders[key]}: {what}')
    result[key] = ([p.path for p in good], np.array([p.decoder for p in good]))
  if bad:
    names = ', '.join(bad[:_MAX_NAMES_IN_WARNING])
    more = ', ...' if len(bad) > _MAX_NAMES_IN_WARNING else ''
    log.warning('%s: skipped %d unreadable image file(s): %s%s', source_name,
                len(bad), names, more)
  return result


def _check_split(split: str):
  if split not in SPLITS:
    raise JaxganError(f'unknown split {split!r}: expected one of {", ".join(SPLITS)}')


# ---------------------------------------------------------------------------- sources


class Source(abc.ABC):
  """A named data source with 'train' and optionally 'test' splits."""

  name: str
  paired: bool

  @abc.abstractmethod
  def has_split(self, split: str) -> bool:
    ...

  @abc.abstractmethod
  def domains(self, split: str) -> Domains:
    ...

  def task_domains(self, split: str, mode: str) -> Domains:
    """The split as a task with `data_mode` `mode` uses it: 'single' takes domain A
    of any source; 'unpaired' and 'paired' need two domains, 'paired' true pairs."""
    if mode not in DATA_MODES:
      raise JaxganError(f'unknown data mode {mode!r}; valid: {", ".join(DATA_MODES)}')
    domains = self.domains(split)
    if mode == 'single':
      return Domains(domains.a, None, paired=False)
    if domains.b is None:
      raise JaxganError(f'{self.name} has one domain of images, but this task '
                        'translates between two: use folder:PATH, aligned:PATH, a '
                        'tfds dataset with trainA/trainB, or synthetic')
    if mode == 'paired' and not domains.paired:
      raise JaxganError(f'{self.name} is unpaired, but this task needs aligned pairs: '
                        'use aligned:PATH (A|B side by side) or synthetic')
    return domains

  def __repr__(self):
    return f'{type(self).__name__}({self.name!r})'


class FolderSource(Source):
  """The unaligned CycleGAN layout: PATH/{train,test}{A,B}/**/*.jpg."""

  paired = False

  def __init__(self, name: str, root: str):
    self.name, self.root = name, root
    subdirs = {f'{s}{d}': os.path.join(root, f'{s}{d}') for s in SPLITS for d in 'AB'}
    present = {k: p for k, p in subdirs.items() if os.path.isdir(p)}
    if not present:
      raise JaxganError(f'{name}: {root} has none of trainA/ trainB/ testA/ testB/ '
                        '(the unaligned CycleGAN layout)')
    self._dirs = subdirs
    self._sets = {k: FileImageSet(f'{name}/{k}', files, decoders)
                  for k, (files, decoders) in _check_folders(name, present).items()}

  def has_split(self, split):
    return f'{split}A' in self._sets and f'{split}B' in self._sets

  def domains(self, split):
    _check_split(split)
    for d in 'AB':
      if f'{split}{d}' not in self._sets:
        raise JaxganError(f'{self.name}: missing folder {self._dirs[split + d]}')
    return Domains(self._sets[f'{split}A'], self._sets[f'{split}B'], paired=False)


class AlignedSource(Source):
  """The pix2pix layout: PATH/{train,val,test}/*.jpg, A left half | B right half."""

  paired = True

  def __init__(self, name: str, root: str):
    self.name, self.root = name, root
    present = {s: os.path.join(root, s) for s in ('train', 'val', 'test')
               if os.path.isdir(os.path.join(root, s))}
    if not present:
      raise JaxganError(f'{name}: {root} has none of train/ val/ test/ '
                        '(the aligned pix2pix layout)')
    self._files = _check_folders(name, present)

  def _folder(self, split):
    # As in pix2pix, evaluation uses test/ when there is one and val/ otherwise.
    if split == 'train':
      return 'train'
    return 'test' if 'test' in self._files else 'val'

  def has_split(self, split):
    return split in SPLITS and self._folder(split) in self._files

  def domains(self, split):
    _check_split(split)
    folder = self._folder(split)
    if folder not in self._files:
      missing = (os.path.join(self.root, 'train') if split == 'train' else
                 f'{os.path.join(self.root, "test")} (or val)')
      raise JaxganError(f'{self.name}: missing folder {missing}')
    files, decoders = self._files[folder]
    return Domains(
        FileImageSet(f'{self.name}/{folder} (A: left half)', files, decoders, 'left'),
        FileImageSet(f'{self.name}/{folder} (B: right half)', files, decoders, 'right'),
        paired=True)


class TfdsSource(Source):
  """A prepared tensorflow-datasets builder: two domains when it has the splits
  trainA/trainB/testA/testB (the cycle_gan sets), else one domain from its train/test
  splits (mnist, ...).

  Each split is materialised (on first use) into uint8 arrays resized to `size` x
  `size` (bicubic, antialiased): these sets are at most tens of thousands of images.
  """

  paired = False

  def __init__(self, name: str, dataset: str, *, size: int, data_dir: str | None):
    import tensorflow_datasets as tfds  # Imported only when used: it is slow.

    self.name, self._size = name, size
    try:
      builder = tfds.builder(dataset, data_dir=data_dir)
    except Exception as e:  # pylint: disable=broad-except
      # tfds raises assorted types (DatasetNotFoundError, ValueError, ...) with
      # multi-line messages; the user needs one line.
      first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      raise JaxganError(f'{name}: unknown tensorflow-datasets dataset: {first}') from None
    # Checked before anything that could reach for the network: these machines may
    # be offline, and a download attempt would hang or fail slowly.
    if not builder.is_prepared():
      raise JaxganError(
          f'{name}: dataset is not available offline (not prepared under '
          f'{builder.data_dir}); put its images in folders and use folder:PATH '
          '(PATH/trainA trainB testA testB) or aligned:PATH (PATH/train val, A|B side '
          'by side) or, for MNIST, mnist:PATH (its four IDX files) instead, or pass '
          'the tfds data dir that holds it')
    self._builder = builder
    features = builder.info.features
    keys = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
    if not keys:
      raise JaxganError(f'{name}: dataset has no image feature')
    self._key = 'image' if 'image' in keys else keys[0]
    self._splits = set(builder.info.splits.keys())
    self._two_domains = {'trainA', 'trainB'} <= self._splits
    if not self._two_domains and 'train' not in self._splits:
      raise JaxganError(f'{name}: needs splits trainA/trainB (two domains) or train '
                        f'(one domain); it has {", ".join(sorted(self._splits))}')
    self._cache: dict[str, ArrayImageSet] = {}

  def has_split(self, split):
    if not self._two_domains:
      return split in self._splits
    return f'{split}A' in self._splits and f'{split}B' in self._splits

  def _materialise(self, tfds_split: str) -> ArrayImageSet:
    if tfds_split not in self._cache:
      size, key = self._size, self._key

      def resize(example):
        img = tf.cast(example[key][..., :3], tf.float32)  # drops alpha; keeps gray
        img = tf.image.resize(img, [size, size], method='bicubic', antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(img), 0.0, 255.0), tf.uint8)

      ds = self._builder.as_dataset(split=tfds_split, shuffle_files=False)
      ds = ds.map(resize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
      chunks = [b for b in ds.batch(256).as_numpy_iterator()]
      if not chunks:
        raise JaxganError(f'{self.name}: split {tfds_split} is empty')
      self._cache[tfds_split] = ArrayImageSet(f'{self.name}/{tfds_split}',
                                              np.concatenate(chunks))
    return self._cache[tfds_split]

  def domains(self, split):
    _check_split(split)
    if not self._two_domains:
      if split not in self._splits:
        raise JaxganError(f'{self.name}: missing split {split} (has '
                          f'{", ".join(sorted(self._splits))})')
      return Domains(self._materialise(split), None, paired=False)
    for d in 'AB':
      if f'{split}{d}' not in self._splits:
        raise JaxganError(f'{self.name}: missing split {split}{d} (has '
                          f'{", ".join(sorted(self._splits))})')
    return Domains(self._materialise(f'{split}A'), self._materialise(f'{split}B'),
                   paired=False)


class MnistSource(Source):
  """MNIST from its four standard IDX files in PATH: one domain, 28x28 grayscale."""

  paired = False

  def __init__(self, name: str, root: str):
    from jaxgan.data import idx  # pylint: disable=g-import-not-at-top
    self.name = name
    self._sets = {}
    for split in SPLITS:
      pixels, _ = idx.load_mnist(root, split)
      self._sets[split] = ArrayImageSet(f'{name}/{split}', pixels[..., None])

  def has_split(self, split):
    return split in self._sets

  def domains(self, split):
    _check_split(split)
    return Domains(self._sets[split], None, paired=False)


class ColourMnistSource(Source):
  """MNIST as two unpaired RGB domains with known palettes (`colour_mnist`), seeded."""

  paired = False

  def __init__(self, name: str, root: str, *, seed: int):
    from jaxgan.data import colour_mnist, idx  # pylint: disable=g-import-not-at-top
    self.name = name
    self._domains = {}
    for split in SPLITS:
      digits, _ = idx.load_mnist(root, split)
      a, b, _, _ = colour_mnist.domains(digits, seed, split)
      self._domains[split] = Domains(ArrayImageSet(f'{name}/{split}A', a),
                                     ArrayImageSet(f'{name}/{split}B', b), paired=False)

  def has_split(self, split):
    return split in self._domains

  def domains(self, split):
    _check_split(split)
    return self._domains[split]


class SyntheticSource(Source):
  """Generated pairs with an exactly known A -> B map (see `synthetic`)."""

  paired = True

  def __init__(self, name: str, *, seed: int, size: int, n_train: int):
    self.name = name
    self._domains = {}
    for split, n in (('train', n_train), ('test', max(8, n_train // 4))):
      a, b = synthetic_lib.synthetic_pairs(seed, n, size, split)
      self._domains[split] = Domains(ArrayImageSet(f'{name}/{split}A', a),
                                     ArrayImageSet(f'{name}/{split}B', b), paired=True)

  def has_split(self, split):
    return split in self._domains

  def domains(self, split):
    _check_split(split)
    return self._domains[split]


def load_source(spec: str, *, seed: int, image_size: int, synthetic_size: int = 64,
                tfds_data_dir: str | None = None) -> Source:
  """Builds the source named by `spec` (see the module doc for the forms).

  Args:
    spec: the source string, e.g. 'folder:/data/horse2zebra' or 'synthetic'.
    seed: seeds the synthetic images and colour_mnist's halves and palettes.
    image_size: the size tfds and synthetic images are materialised at (the training
      load size); file-based images keep their own size.
    synthetic_size: synthetic images per domain in 'train' ('test' gets a quarter,
      at least 8).
    tfds_data_dir: where tensorflow-datasets looks for prepared data (None: its
      default, $TFDS_DATA_DIR or ~/tensorflow_datasets).
  """
  if not spec:
    raise JaxganError(f'data.source is not set: pass --config.data.source=SOURCE, one of '
                      f'{SPEC_FORMS}')
  kind, sep, arg = spec.partition(':')
  if spec == 'synthetic':
    if synthetic_size < 1 or image_size < 1:
      raise JaxganError(f'synthetic: need synthetic_size >= 1 and image_size >= 1, got '
                        f'{synthetic_size} and {image_size}')
    return SyntheticSource(spec, seed=seed, size=image_size, n_train=synthetic_size)
  if sep and arg and kind in ('folder', 'aligned', 'mnist', 'colour_mnist'):
    root = os.path.expanduser(arg)
    if not os.path.isdir(root):
      what = 'is not a folder' if os.path.exists(root) else 'does not exist'
      raise JaxganError(f'{spec}: data folder {root} {what}')
    if kind == 'colour_mnist':
      return ColourMnistSource(spec, root, seed=seed)
    cls = {'folder': FolderSource, 'aligned': AlignedSource, 'mnist': MnistSource}[kind]
    return cls(spec, root)
  if sep and arg and kind == 'tfds':
    return TfdsSource(spec, arg, size=image_size, data_dir=tfds_data_dir)
  raise JaxganError(f'unknown data source {spec!r}: expected {SPEC_FORMS}')
