"""Checkpoints with Orbax: the whole train state plus the data position, async.

Saved items: `state` (the GANState pytree, StandardSave) and `meta` (JSON: step,
epoch, steps per epoch, seed and data source — what makes the data order resumable:
the data stream is a pure function of (seed, step), see jaxgan.data.pipeline — and
a checksum of every array of the state).

Integrity: `audit` computes, in one jitted pass on the devices, whether every float
of the state is finite and a position-weighted wrap-around sum of each array's bits
(integer arithmetic: the same for any device count or reduction order). The loop
saves only finite states; `restore` recomputes the sums and rejects a checkpoint whose
bytes changed (Orbax restores a corrupted chunk silently), and `restore_latest`
falls back to the previous step, moving the bad one aside.
"""

import errno
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp
from etils import epath

from jaxgan.errors import JaxganError


class Unreadable(Exception):
  """A checkpoint that cannot be restored as it was written."""


class Checkpoints:

  def __init__(self, directory, *, max_to_keep: int = 3, read_only: bool = False):
    self.directory = epath.Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
        enable_async_checkpointing=not read_only)
    self.manager = ocp.CheckpointManager(self.directory, options=options,
                                         item_names=('state', 'meta'))

  def latest_step(self):
    return self.manager.latest_step()

  def all_steps(self):
    return list(self.manager.all_steps())

  def save(self, step: int, state, meta: dict[str, Any]) -> None:
    """Starts an async save; device-to-host copies finish before it returns, so the
    caller may donate `state` to the next step right away."""
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, abstract_state, step: int | None = None):
    """Restores (state, meta) at `step` (default latest) into `abstract_state`, a tree
    of jax.ShapeDtypeStruct carrying the target shardings. A state whose checksums
    differ from the saved ones raises `Unreadable`."""
    step = self.latest_step() if step is None else step
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    state, meta = restored['state'], dict(restored['meta'])
    saved = meta.get('checksums')
    if saved is not None:
      _, sums = audit(state)
      bad = [k for k, v in sums.items() if saved.get(k) != v]
      if bad or set(saved) != set(sums):
        raise Unreadable(f'its contents differ from what was saved ({len(bad)} '
                         f'array(s), e.g. {(bad or sorted(set(saved) ^ set(sums)))[0]})')
    return state, meta

  def layout_problems(self, abstract_state, step: int) -> list[str]:
    """How the state saved at `step` differs in structure, shapes or dtypes from
    `abstract_state` (at most 5 lines; [] when it fits)."""
    saved = _shapes(ocp.PyTreeCheckpointHandler().metadata(
        self.directory / str(step) / 'state'))
    wanted = _shapes(abstract_state)
    found = [f'{k}: saved {saved[k]}, expected {wanted[k]}' for k in wanted
             if k in saved and saved[k] != wanted[k]]
    found += [f'{k}: not in the checkpoint' for k in wanted if k not in saved]
    found += [f'{k}: in the checkpoint only' for k in saved if k not in wanted]
    return found[:5] + ([f'... {len(found) - 5} more'] if len(found) > 5 else [])

  def restore_latest(self, abstract_state, *, move_aside: bool = True):
    """(state, meta, step) of the newest checkpoint that restores intact, or None
    when there is none. An unreadable one is reported, moved to
    `../unreadable_checkpoints/` (when `move_aside`, so that the run can write that
    step again) and the previous step is tried."""
    for step in sorted(self.all_steps(), reverse=True):
      try:
        state, meta = self.restore(abstract_state, step)
      except Exception as e:  # noqa: BLE001 (Orbax and TensorStore raise many types)
        where = self.move_aside(step) if move_aside else None
        logging.warning('The checkpoint at step %d is unreadable (%s)%s; falling back to '
                        'the previous one', step, one_line(e),
                        f', moved to {where}' if where else '')
        continue
      return state, meta, step
    return None

  def move_aside(self, step: int):
    """Moves step `step`'s folder out of the manager's sight (kept for inspection)."""
    src = self.directory / str(step)
    dest = self.directory.parent / 'unreadable_checkpoints' / f'{step}-{int(time.time())}'
    dest.parent.mkdir(parents=True, exist_ok=True)
    src.rename(dest)
    self.manager.reload()
    return dest

  def restore_fields(self, abstract_fields: dict, step: int) -> dict:
    """Restores only the named fields of the saved state (a partial restore, e.g.
    params and EMA for inference: no optimizer state is read)."""
    # Orbax's partial restore cannot match empty containers ({} batch stats of a net
    # without batch norm, an empty aux): restore the rest and put them back.
    target = _without_empty(abstract_fields)
    restore_args = jax.tree.map(
        lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding, dtype=x.dtype), target)
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(target, restore_args=restore_args,
                                     partial_restore=True)))
    return _with_empty(abstract_fields, dict(restored['state']))

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    try:
      self.manager.wait_until_finished()
    finally:
      self.manager.close()


def one_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return f'{type(e).__name__}: {text[0][:300] if text else ""}'


def write_error(e: BaseException, what: str) -> JaxganError | None:
  """A one-line error for a failed write (`what`: e.g. 'the checkpoint of step 8'),
  if `e` or its causes are an OS-level write failure (full disk, quota, read-only,
  I/O error); else None."""
  seen = e
  while seen is not None:
    code = getattr(seen, 'errno', None)
    text = str(seen)
    for number in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG):
      if code == number or os.strerror(number) in text:
        return JaxganError(f'writing {what} failed: {os.strerror(number)}')
    seen = seen.__cause__ or seen.__context__
  return None


def _leaf_sum(x):
  """A wrap-around uint32 sum of the bits of `x`, each element weighted by an odd
  function of its position (so moved values count too)."""
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype.itemsize == 4:
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
  elif x.dtype.itemsize == 2:
    bits = jax.lax.bitcast_convert_type(x, jnp.uint16).astype(jnp.uint32)
  else:
    bits = x.astype(jnp.uint32)
  bits = bits.reshape(-1)
  weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2654435761) | 1
  return jnp.sum(bits * weights, dtype=jnp.uint32)


def _path(path) -> str:
  def name(k):
    for attr in ('key', 'name', 'idx'):
      if hasattr(k, attr):
        return str(getattr(k, attr))
    return str(k)
  return '/'.join(name(k) for k in path)


@jax.jit
def _audit(state):
  flat = jax.tree_util.tree_flatten_with_path(state)[0]
  finite = {_path(p): jnp.all(jnp.isfinite(x)) for p, x in flat
            if jnp.issubdtype(x.dtype, jnp.floating)}
  return finite, {_path(p): _leaf_sum(x) for p, x in flat}


def audit(state) -> tuple[list[str], dict[str, int]]:
  """(the paths of the state's arrays holding inf or NaN, each array's checksum):
  one jitted pass on the devices and one small transfer."""
  finite, sums = jax.device_get(_audit(state))
  return ([k for k, ok in finite.items() if not ok],
          {k: int(v) for k, v in sums.items()})


def _shapes(tree) -> dict[str, tuple]:
  return {_path(p): (tuple(x.shape), str(x.dtype))
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _without_empty(tree: dict) -> dict:
  """`tree` less its (nested) dicts that hold no array."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      value = _without_empty(value)
      if not value:
        continue
    out[key] = value
  return out


def _with_empty(template: dict, restored: dict) -> dict:
  """`restored` with the empty dicts of `template` put back where they were."""
  out = {}
  for key, value in template.items():
    if isinstance(value, dict):
      out[key] = _with_empty(value, restored.get(key, {}))
    else:
      out[key] = restored[key]
  return out


def abstract_with_shardings(abstract_tree, shardings):
  return jax.tree.map(
      lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
      abstract_tree, shardings)

