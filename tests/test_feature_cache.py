"""The real-image feature cache: hits, invalidation by key, corrupt entries, unwritable
directories, concurrent writers, and the memoized weights fingerprint. No JAX."""

import errno
import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from jaxgan.metrics import feature_cache
from jaxgan.metrics.feature_cache import FeatureCache

KEY = {'source': 'mnist', 'split': 'test', 'domain': 'a', 'size': 28, 'channels': 1,
       'num_images': 10000, 'weights': 'ab' * 32, 'feature': 'pool3', 'version': 1}
LOGGER = feature_cache.__name__


class Compute:
  """A compute() that counts its calls and returns a fresh float32 array each time."""

  def __init__(self, seed: int = 0):
    self.calls = 0
    self.seed = seed

  def __call__(self) -> np.ndarray:
    self.calls += 1
    rng = np.random.default_rng(self.seed + self.calls)
    return rng.normal(size=(7, 5)).astype(np.float32)


def _warnings(caplog) -> list[logging.LogRecord]:
  return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def _leftovers(directory: Path) -> list[str]:
  return sorted(p.name for p in directory.iterdir() if p.name.endswith('.tmp'))


def test_second_call_reuses_the_cached_array_bit_exactly(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger=LOGGER)
  compute = Compute()
  first = FeatureCache(tmp_path).get_or_compute(KEY, compute)
  # A new instance stands for a later process: only the file carries the entry.
  second = FeatureCache(tmp_path).get_or_compute(dict(KEY), compute)
  assert compute.calls == 1
  assert second.dtype == np.float32 and second.shape == first.shape
  assert second.tobytes() == first.tobytes()
  path = tmp_path / f'{FeatureCache(tmp_path).key_id(KEY)}.npz'
  assert path.is_file() and _leftovers(tmp_path) == []
  reuse = [r.getMessage() for r in caplog.records
           if r.getMessage().startswith('reusing cached real-image features')]
  assert len(reuse) == 1 and str(path) in reuse[0]
  assert not _warnings(caplog)


def test_key_id_is_stable_and_order_independent(tmp_path):
  cache = FeatureCache(tmp_path)
  reordered = dict(reversed(list(KEY.items())))
  assert cache.key_id(reordered) == cache.key_id(KEY)
  expected = hashlib.sha256(json.dumps(KEY, sort_keys=True).encode()).hexdigest()[:24]
  assert cache.key_id(KEY) == expected


@pytest.mark.parametrize('field', sorted(KEY))
def test_changing_any_key_value_recomputes(tmp_path, field):
  cache = FeatureCache(tmp_path)
  compute = Compute()
  original = cache.get_or_compute(KEY, compute)
  value = KEY[field]
  changed = dict(KEY, **{field: value * 2 if isinstance(value, int) else value + 'x'})
  other = cache.get_or_compute(changed, compute)
  assert compute.calls == 2
  assert other.tobytes() != original.tobytes()
  # Both entries stay: going back to the original key is a hit again.
  assert cache.get_or_compute(KEY, compute).tobytes() == original.tobytes()
  assert compute.calls == 2


def _truncate(path: Path) -> None:
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _garbage(path: Path) -> None:
  path.write_bytes(b'not an npz file at all\x00\xff' * 10)


def _empty(path: Path) -> None:
  path.write_bytes(b'')


def _no_key(path: Path) -> None:
  with open(path, 'wb') as f:
    np.savez(f, features=np.zeros(3, np.float32))


def _no_features(path: Path) -> None:
  with open(path, 'wb') as f:
    np.savez(f, key=np.array('{}'))


def _pickled(path: Path) -> None:
  # The right key, but features that only pickle can load: a cache file never runs code.
  with open(path, 'wb') as f:
    np.savez(f, features=np.array([1.5, None], dtype=object),
             key=np.array(json.dumps(KEY, sort_keys=True)))


@pytest.mark.parametrize('damage', [_truncate, _garbage, _empty, _no_key, _no_features,
                                    _pickled])
def test_corrupt_file_is_recomputed_with_a_warning(tmp_path, caplog, damage):
  cache = FeatureCache(tmp_path)
  compute = Compute()
  cache.get_or_compute(KEY, compute)
  path = cache.path(KEY)
  damage(path)
  caplog.clear()
  again = cache.get_or_compute(KEY, compute)  # must not raise
  assert compute.calls == 2
  warnings = _warnings(caplog)
  assert len(warnings) == 1 and str(path) in warnings[0].getMessage()
  assert warnings[0].exc_info is None  # a one-line warning, not a traceback
  # The entry was rewritten: the next call is a hit with the recomputed array.
  assert cache.get_or_compute(KEY, compute).tobytes() == again.tobytes()
  assert compute.calls == 2


def test_stored_key_mismatch_is_a_miss(tmp_path, caplog):
  cache = FeatureCache(tmp_path)
  compute = Compute()
  other_key = dict(KEY, split='train')
  cache.get_or_compute(other_key, compute)
  # A file under KEY's name that holds another key (copied, or a prefix collision).
  cache.path(other_key).replace(cache.path(KEY))
  caplog.clear()
  result = cache.get_or_compute(KEY, compute)
  assert compute.calls == 2
  warnings = _warnings(caplog)
  assert len(warnings) == 1 and str(cache.path(KEY)) in warnings[0].getMessage()
  assert cache.get_or_compute(KEY, compute).tobytes() == result.tobytes()
  assert compute.calls == 2


def test_regular_file_in_place_of_the_directory_still_returns_the_array(tmp_path, caplog):
  blocker = tmp_path / 'cache'
  blocker.write_text('in the way')
  cache = FeatureCache(blocker)
  compute = Compute()
  first = cache.get_or_compute(KEY, compute)
  second = cache.get_or_compute(KEY, compute)
  assert compute.calls == 2  # nothing could be cached, so each call computes
  assert first.shape == second.shape == (7, 5)
  assert blocker.read_text() == 'in the way'
  warnings = _warnings(caplog)
  assert len(warnings) == 2 and all(str(blocker) in w.getMessage() for w in warnings)
  assert all(w.exc_info is None for w in warnings)


def test_disk_full_while_writing_leaves_no_partial_file(tmp_path, monkeypatch, caplog):
  def savez_then_enospc(f, **arrays):
    f.write(b'PK\x03\x04 partial')
    raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(feature_cache.np, 'savez', savez_then_enospc)
  cache = FeatureCache(tmp_path)
  compute = Compute()
  result = cache.get_or_compute(KEY, compute)
  assert compute.calls == 1 and result.shape == (7, 5)
  assert list(tmp_path.iterdir()) == []  # neither the entry nor the temp file
  warnings = _warnings(caplog)
  assert len(warnings) == 1 and 'No space left' in warnings[0].getMessage()


def test_permission_error_on_replace_is_a_warning(tmp_path, monkeypatch, caplog):
  # chmod cannot make a directory unwritable for root, so the refusal is simulated.
  def refuse(src, dst):
    raise PermissionError(errno.EACCES, 'Permission denied', str(dst))

  monkeypatch.setattr(feature_cache.os, 'replace', refuse)
  cache = FeatureCache(tmp_path)
  compute = Compute()
  assert cache.get_or_compute(KEY, compute).shape == (7, 5)
  assert list(tmp_path.iterdir()) == []
  assert len(_warnings(caplog)) == 1


def test_directory_is_created_on_first_write(tmp_path):
  directory = tmp_path / 'a' / 'b' / 'fid_features'
  cache = FeatureCache(directory)
  compute = Compute()
  cache.get_or_compute(KEY, compute)
  assert cache.path(KEY).is_file()
  cache.get_or_compute(KEY, compute)
  assert compute.calls == 1


def test_concurrent_writers_of_one_entry_leave_a_valid_file(tmp_path, caplog):
  writers = 4
  barrier = threading.Barrier(writers)
  results, errors = [None] * writers, []

  def work(i: int) -> None:
    def compute() -> np.ndarray:
      barrier.wait(timeout=30)  # every writer has missed before any of them writes
      return np.full((300, 64), i, np.float32)
    try:
      results[i] = FeatureCache(tmp_path).get_or_compute(KEY, compute)
    except Exception as e:  # noqa: BLE001 - reported by the assertion below
      errors.append(e)

  threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert errors == [] and not _warnings(caplog)
  assert [r[0, 0] for r in results] == list(range(writers))
  assert _leftovers(tmp_path) == []
  # The surviving entry is one writer's complete array.
  final = FeatureCache(tmp_path).get_or_compute(KEY, Compute())
  assert final.shape == (300, 64) and np.all(final == final[0, 0])
  assert final[0, 0] in range(writers)


def test_default_cache_dir_honours_jaxgan_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('JAXGAN_CACHE', str(tmp_path / 'c'))
  assert feature_cache.default_cache_dir() == tmp_path / 'c' / 'fid_features'
  assert FeatureCache().directory == tmp_path / 'c' / 'fid_features'
  monkeypatch.delenv('JAXGAN_CACHE')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  expected = tmp_path / 'home' / '.cache' / 'jaxgan' / 'fid_features'
  assert feature_cache.default_cache_dir() == expected
  assert FeatureCache().directory == expected


def test_file_fingerprint_is_the_sha256_of_the_bytes(tmp_path):
  path = tmp_path / 'weights.npz'
  path.write_bytes(b'weights v1' * 1000)
  assert feature_cache.file_fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest()
  assert feature_cache.file_fingerprint(str(path)) == feature_cache.file_fingerprint(path)

  # A longer file.
  path.write_bytes(b'weights v2!' * 1000)
  assert feature_cache.file_fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest()

  # Same size, rewritten in place. The kernel's coarse timestamps can give two quick
  # writes one mtime, so the test moves it on by hand rather than rely on the clock.
  st = path.stat()
  path.write_bytes(b'weights v3!' * 1000)
  os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
  assert feature_cache.file_fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest()

  # Same size and same mtime, but a different file moved into place (a new inode).
  st = path.stat()
  new = tmp_path / 'new.npz'
  new.write_bytes(b'weights v4!' * 1000)
  os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
  new.replace(path)
  assert feature_cache.file_fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_file_fingerprint_is_memoized(tmp_path, monkeypatch):
  path = tmp_path / 'weights.npz'
  path.write_bytes(b'memo' * 1000)
  opened = []
  real_open = open

  def counting_open(*args, **kwargs):
    opened.append(args[0])
    return real_open(*args, **kwargs)

  # The module's own name `open` shadows the builtin only inside feature_cache.
  monkeypatch.setattr(feature_cache, 'open', counting_open, raising=False)
  first = feature_cache.file_fingerprint(path)
  for _ in range(3):
    assert feature_cache.file_fingerprint(path) == first
  assert feature_cache.file_fingerprint(tmp_path / '.' / 'weights.npz') == first
  assert len(opened) == 1


def test_object_array_is_returned_but_not_cached(tmp_path, caplog):
  cache = FeatureCache(tmp_path)
  calls = []

  def compute() -> np.ndarray:
    calls.append(1)
    return np.array([1.5, None], dtype=object)

  assert cache.get_or_compute(KEY, compute)[0] == 1.5
  assert list(tmp_path.iterdir()) == [] and len(_warnings(caplog)) == 1
  cache.get_or_compute(KEY, compute)
  assert len(calls) == 2
