"""IDX files (the MNIST format) and the MNIST set's four files, in pure numpy.

Owns `read_idx` (one IDX file, plain or gzipped, to a native-endian numpy array)
and `load_mnist` (a split's images and labels from the four standard files). The
format: two zero bytes, a type code byte, a byte with the number of dimensions,
each dimension as a big-endian uint32, then the data, big-endian, row-major.
Gzip is recognised by its magic bytes, whatever the file is called.
"""

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from jaxgan.errors import JaxganError

# Type code -> element type as stored (big-endian).
IDX_TYPES = {
    0x08: np.dtype('u1'),
    0x09: np.dtype('i1'),
    0x0B: np.dtype('>i2'),
    0x0C: np.dtype('>i4'),
    0x0D: np.dtype('>f4'),
    0x0E: np.dtype('>f8'),
}
GZIP_MAGIC = b'\x1f\x8b'

# split -> the file-name prefix of the original MNIST distribution.
MNIST_PREFIXES = {'train': 'train', 'test': 't10k'}


def read_idx(path: str | os.PathLike) -> np.ndarray:
  """The array stored in the IDX file at `path` (gzipped or not), native-endian.

  Raises JaxganError naming the file if it is missing or unreadable, is not IDX
  (bad magic bytes, unknown type code), holds fewer or more data bytes than its
  header says, or is a corrupt gzip stream.
  """
  path = Path(path)
  try:
    raw = path.read_bytes()
  except FileNotFoundError:
    raise JaxganError(f'IDX file {path} does not exist') from None
  except OSError as e:
    raise JaxganError(f'cannot read IDX file {path}: {e.strerror or e}') from None
  if raw[:2] == GZIP_MAGIC:
    try:
      raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
      raise JaxganError(f'{path}: corrupt gzip stream ({_one_line(e)})') from None
  return _parse(raw, path)


def _one_line(e: Exception) -> str:
  return ' '.join(str(e).split()) or type(e).__name__


def _parse(raw: bytes, path: Path) -> np.ndarray:
  if len(raw) < 4 or raw[:2] != b'\0\0':
    raise JaxganError(f'{path} is not an IDX file (it does not start with the '
                      'bytes 00 00)')
  code, ndim = raw[2], raw[3]
  if code not in IDX_TYPES:
    raise JaxganError(f'{path} is not an IDX file (unknown type code '
                      f'0x{code:02X}; valid: '
                      f"{', '.join(f'0x{c:02X}' for c in IDX_TYPES)})")
  dtype = IDX_TYPES[code]
  offset = 4 + 4 * ndim
  if len(raw) < offset:
    raise JaxganError(f'{path} is truncated: its header needs {offset} bytes for '
                      f'{ndim} dimensions, the file has {len(raw)}')
  shape = tuple(int(d) for d in np.frombuffer(raw, '>u4', ndim, 4))
  expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
  got = len(raw) - offset
  if got < expected:
    raise JaxganError(f'{path} is truncated: header says shape {shape} '
                      f'({expected} data bytes), the file has {got}')
  if got > expected:
    raise JaxganError(f'{path} has {got - expected} bytes of trailing data after '
                      f'the {expected} that its header (shape {shape}) describes')
  data = np.frombuffer(raw, dtype, math.prod(shape), offset).reshape(shape)
  # A writable copy in native byte order (frombuffer over bytes is read-only).
  return data.astype(dtype.newbyteorder('='))


def _find(root: Path, name: str) -> Path:
  candidates = (name, name + '.gz')
  for candidate in candidates:
    if (root / candidate).is_file():
      return root / candidate
  raise JaxganError(f"MNIST folder {root} has none of: {', '.join(candidates)}")


def mnist_file_names(split: str) -> tuple[str, str]:
  """The (images, labels) file names of `split` ('train' or 'test'), without .gz."""
  if split not in MNIST_PREFIXES:
    raise JaxganError(f"unknown MNIST split {split!r}; valid: "
                      f"{', '.join(MNIST_PREFIXES)}")
  prefix = MNIST_PREFIXES[split]
  return f'{prefix}-images-idx3-ubyte', f'{prefix}-labels-idx1-ubyte'


def load_mnist(root: str | os.PathLike,
               split: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, H, W], labels uint8 [N]) of MNIST's `split` in `root`.

  `root` holds the original files (`train-images-idx3-ubyte`,
  `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`),
  each optionally gzipped with a `.gz` suffix; the plain file wins if both exist.
  """
  images_name, labels_name = mnist_file_names(split)
  root = Path(root)
  if not root.is_dir():
    raise JaxganError(f'MNIST folder {root} does not exist')
  images_path, labels_path = _find(root, images_name), _find(root, labels_name)
  images, labels = read_idx(images_path), read_idx(labels_path)
  if images.ndim != 3:
    raise JaxganError(f'{images_path}: MNIST images must be 3-D [N, H, W], got '
                      f'shape {images.shape}')
  if labels.ndim != 1:
    raise JaxganError(f'{labels_path}: MNIST labels must be 1-D [N], got shape '
                      f'{labels.shape}')
  for path, array in ((images_path, images), (labels_path, labels)):
    if array.dtype != np.uint8:
      raise JaxganError(f'{path}: MNIST data must be uint8 (type code 0x08), got '
                        f'{array.dtype}')
  if len(images) != len(labels):
    raise JaxganError(f'MNIST {split} in {root}: {len(images)} images but '
                      f'{len(labels)} labels')
  return images, labels
