"""The workdir of a run: its path checks, its lock, its config.json, and the check
that a resumed run fits the checkpoints it resumes from.

Nothing here writes into a workdir before the run is known to be able to continue
from it: `check_path` only looks, the lock holds no state a later run needs, and the
config is written (atomically) by the loop only once the checkpoints are restored.
"""

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from jaxgan import config as config_lib
from jaxgan.errors import JaxganError

CONFIG_FILE = 'config.json'
LOCK_FILE = 'jaxgan.lock'

# Keys whose change makes the checkpoints another model: resuming is refused.
ARCHITECTURE = ('task', 'model.', 'data.image_size', 'data.channels')
# Keys whose change alters the data order (the stream is a pure function of these and
# the step): refused unless train.allow_resume_changes, then a warning.
DATA_ORDER = ('seed', 'data.')
# Names and places only; never a reason to refuse.
IGNORED = ('experiment', 'data.tfds_data_dir')


def check_path(workdir) -> Path:
  """`workdir` as a Path, if it is a folder or can be created as one; else a one-line
  error. Writes nothing."""
  path = Path(workdir).expanduser().absolute()
  existing = next(p for p in (path, *path.parents) if p.exists())
  if not existing.is_dir():
    if existing == path:
      raise JaxganError(f'workdir {path} exists and is not a folder')
    raise JaxganError(f'cannot create workdir {path}: {existing} is a file')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise JaxganError(f'workdir {path} is not writable ({existing} is read-only)')
  return path


# -- lock ---------------------------------------------------------------------------


class Lock:
  """An exclusive lock on a workdir for the life of a run (`flock` on
  `jaxgan.lock`: the kernel drops it when the process dies, however it dies).

  The file holds the owner's host, pid and start time while the run is alive and is
  emptied when it ends, so a second run names the first, and a lock file that still
  names an owner but is not locked was left by a process that died: it is taken over
  with a warning."""

  def __init__(self, workdir: Path):
    self.path = Path(workdir) / LOCK_FILE
    self._fd = None

  def acquire(self) -> None:
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      owner = _describe(os.read(fd, 4096))
      os.close(fd)
      raise JaxganError(f'workdir {self.path.parent} is in use by another run ({owner}); '
                        f'stop it first or use another --workdir') from None
    previous = os.read(fd, 4096)
    if previous.strip():
      logging.warning('Took over the lock of %s left by a run that is gone (%s)',
                      self.path.parent, _describe(previous))
    me = {'host': socket.gethostname(), 'pid': os.getpid(),
          'started': time.strftime('%Y-%m-%d %H:%M:%S')}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    os.fsync(fd)
    self._fd = fd

  def release(self) -> None:
    if self._fd is None:
      return
    try:
      os.ftruncate(self._fd, 0)
    except OSError:  # e.g. a full disk: the flock still goes with the close
      pass
    os.close(self._fd)
    self._fd = None

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *exc):
    self.release()


def _describe(raw: bytes) -> str:
  try:
    owner = json.loads(raw.decode())
    return f"host {owner['host']}, pid {owner['pid']}, started {owner['started']}"
  except (ValueError, KeyError, TypeError):
    return 'owner unknown'


# -- config.json --------------------------------------------------------------------


def read_config(workdir):
  config_path = Path(workdir) / CONFIG_FILE
  if not config_path.is_file():
    raise JaxganError(f'{workdir} is not a jaxgan workdir (no {CONFIG_FILE})')
  try:
    return config_lib.from_json(config_path.read_text())
  except ValueError as e:
    raise JaxganError(f'{config_path} is not valid JSON ({e})') from None


def write_config(workdir, config) -> None:
  """Writes config.json atomically: a reader sees the old file or the new one."""
  path = Path(workdir) / CONFIG_FILE
  tmp = path.with_name(f'.{CONFIG_FILE}.{os.getpid()}.tmp')
  tmp.write_text(config_lib.to_json(config))
  os.replace(tmp, path)


def changes(saved, config) -> dict[str, tuple]:
  """key -> (saved value, new value) for every leaf that differs (a key only one
  side has shows `<unset>` on the other)."""
  old, new = config_lib.flatten(saved), config_lib.flatten(config)
  unset = '<unset>'
  return {k: (old.get(k, unset), new.get(k, unset)) for k in sorted(set(old) | set(new))
          if _norm(old.get(k, unset)) != _norm(new.get(k, unset))}


def _norm(value):
  return tuple(value) if isinstance(value, list) else value


def _list(diff: dict) -> str:
  return ', '.join(f'{k} {a!r} -> {b!r}' for k, (a, b) in diff.items())


def check_resume(workdir, config) -> dict[str, tuple]:
  """Compares `config` with the workdir's config.json (the config its checkpoints
  were written with). Architecture changes: an error; data-order changes: an error
  unless `train.allow_resume_changes` (then a warning); the rest is logged. Returns
  the differences ({} when there is no config.json to compare with)."""
  if not (Path(workdir) / CONFIG_FILE).is_file():
    return {}
  diff = {k: v for k, v in changes(read_config(workdir), config).items()
          if not k.startswith(IGNORED)}
  arch = {k: v for k, v in diff.items() if k.startswith(ARCHITECTURE)}
  if arch:
    raise JaxganError(f'cannot resume {workdir}: its checkpoints are another model '
                      f'({_list(arch)}); use a new --workdir or drop those overrides')
  order = {k: v for k, v in diff.items() if k.startswith(DATA_ORDER)}
  if order and not config.train.allow_resume_changes:
    raise JaxganError(f'resuming {workdir} would change the data order ({_list(order)}); '
                      f'drop those overrides, or pass '
                      f'--config.train.allow_resume_changes=true to resume anyway')
  if order:
    logging.warning('Resuming with a different data order than the checkpoints: %s',
                    _list(order))
  rest = {k: v for k, v in diff.items() if k not in order}
  if rest:
    logging.info('Changed since the checkpoints were written: %s', _list(rest))
  return diff
