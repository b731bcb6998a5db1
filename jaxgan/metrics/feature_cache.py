"""The on-disk cache of real-image Inception features, and the weights-file fingerprint.

Features of the real test images cost 13-30 CPU minutes (10k MNIST digits) and are the
same for every evaluation of a run and every `python -m jaxgan.evaluate`, so they are
stored once per key in `<dir>/<key_id>.npz` (the array and the key's JSON). The caller's
key holds everything that determines the features (source, split, domain, size,
channels, number of images, weights fingerprint, feature name, format version); any
change is a new entry, so nothing is ever invalidated in place.

The cache is an optimisation only: a corrupt entry is recomputed, an unwritable
directory is a warning, and neither ever fails the run.
"""

import functools
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# The names inside each .npz; a file without both is treated as corrupt.
_FEATURES = 'features'
_KEY = 'key'
_KEY_ID_CHARS = 24  # 96 bits: collisions are not a practical concern


def default_cache_dir() -> Path:
  """`$JAXGAN_CACHE/fid_features` if JAXGAN_CACHE is set, else
  `~/.cache/jaxgan/fid_features`."""
  env = os.environ.get('JAXGAN_CACHE')
  base = Path(env).expanduser() if env else Path.home() / '.cache' / 'jaxgan'
  return base / 'fid_features'


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int, ctime_ns: int, inode: int) -> str:
  # The stat fields are only the memo key: any rewrite, replace or touch of the file
  # changes one of them, so a stale digest is never returned for a changed file.
  del size, mtime_ns, ctime_ns, inode
  with open(path, 'rb') as f:
    return hashlib.file_digest(f, 'sha256').hexdigest()


def file_fingerprint(path: Path | str) -> str:
  """sha256 hex of the file's bytes; memoized in-process by (resolved path, size,
  mtime_ns, ctime_ns, inode), so hashing the ~90 MB weights file is paid once."""
  resolved = Path(path).expanduser().resolve()
  st = resolved.stat()
  return _sha256(str(resolved), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _canonical(key: dict) -> str:
  return json.dumps(key, sort_keys=True)


class FeatureCache:
  """Feature arrays on disk, one `.npz` per key."""

  def __init__(self, directory: Path | str | None = None):
    self.directory = (Path(directory).expanduser() if directory is not None
                      else default_cache_dir())

  def key_id(self, key: dict) -> str:
    """Stable id of `key`: the first 24 hex chars of the sha256 of its sorted JSON."""
    return hashlib.sha256(_canonical(key).encode()).hexdigest()[:_KEY_ID_CHARS]

  def path(self, key: dict) -> Path:
    return self.directory / f'{self.key_id(key)}.npz'

  def get_or_compute(self, key: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The cached array for `key`, else `compute()`'s result, stored for next time."""
    canonical = _canonical(key)
    path = self.path(key)
    cached = self._load(path, canonical)
    if cached is not None:
      logger.info('reusing cached real-image features %s %s (%s)',
                  'x'.join(map(str, cached.shape)), cached.dtype, path)
      return cached
    start = time.monotonic()
    array = np.asarray(compute())
    seconds = time.monotonic() - start
    if self._store(path, canonical, array):
      logger.info('computed real-image features %s %s in %.1f s; cached (%s)',
                  'x'.join(map(str, array.shape)), array.dtype, seconds, path)
    return array

  def _load(self, path: Path, canonical: str) -> np.ndarray | None:
    """The stored array if `path` holds a readable entry for exactly this key."""
    try:
      # allow_pickle=False: a cache file must never be able to run code.
      with np.load(path, allow_pickle=False) as z:
        stored_key = str(z[_KEY][()])
        array = z[_FEATURES]
    except (FileNotFoundError, NotADirectoryError):
      return None  # a plain miss; an unusable directory is reported when writing
    except Exception as e:  # noqa: BLE001 - any unreadable entry is just a miss
      logger.warning('ignoring unreadable feature cache file %s (%s: %s); recomputing',
                     path, type(e).__name__, e)
      return None
    if stored_key != canonical:
      # Only a copied/renamed file or a hash-prefix collision lands here.
      logger.warning('feature cache file %s holds another key (%s, wanted %s); '
                     'recomputing', path, stored_key, canonical)
      return None
    return array

  def _store(self, path: Path, canonical: str, array: np.ndarray) -> bool:
    """Writes the entry atomically; False (with a warning) if it could not be cached."""
    if array.dtype.hasobject:
      # Such an array would need pickle to load, which _load refuses.
      logger.warning('not caching real-image features of dtype object (%s)', path)
      return False
    # A name unique per process and call: concurrent writers of one entry each
    # replace the whole file, so a reader sees one complete version or the other.
    tmp = path.with_name(f'.{path.stem}.{os.getpid()}.{uuid.uuid4().hex}.tmp')
    try:
      self.directory.mkdir(parents=True, exist_ok=True)
      # os.open with 0o666 (not mkstemp's 0o600) so the entry gets the umask's
      # permissions, like any other file, and a shared cache dir stays shared.
      fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
      try:
        with os.fdopen(fd, 'wb') as f:
          np.savez(f, **{_FEATURES: array, _KEY: np.array(canonical)})
          f.flush()
          # Without fsync a crash can leave a renamed but empty file on some file
          # systems; it would be recomputed, but that is the 30 minutes we save.
          os.fsync(f.fileno())
        os.replace(tmp, path)
      except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as e:
      logger.warning('could not cache real-image features in %s (%s: %s); they will '
                     'be recomputed next time', self.directory, type(e).__name__, e)
      return False
    return True
