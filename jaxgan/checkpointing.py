"""Checkpoints with Orbax: the whole train state plus the data position, async.

Saved items: `state` (the GANState pytree, StandardSave) and `meta` (JSON: step,
epoch, steps per epoch, seed and data source — what makes the data order resumable:
the data stream is a pure function of (seed, step), see jaxgan.data.pipeline).
"""

from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath


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
    of jax.ShapeDtypeStruct carrying the target shardings."""
    step = self.latest_step() if step is None else step
    restored = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
    return restored['state'], dict(restored['meta'])

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
    self.manager.wait_until_finished()
    self.manager.close()


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

