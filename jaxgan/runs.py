"""A training workdir seen from the inference tools: its config and a restored state."""

from pathlib import Path

from jaxgan import config as config_lib
from jaxgan.errors import JaxganError


def restore(workdir, step=None):
  """(config, task, state, step) of the run in `workdir` at `step` (default latest)."""
  workdir = Path(workdir)
  config_path = workdir / 'config.json'
  if not config_path.is_file():
    raise JaxganError(f'{workdir} is not a jaxgan workdir (no config.json)')
  config = config_lib.from_json(config_path.read_text())
  from jaxgan import checkpointing, sharding
  from jaxgan.tasks import make_task
  from jaxgan.train import state_layout

  task = make_task(config, steps_per_epoch=1)
  ckpt = checkpointing.Checkpoints(workdir / 'checkpoints', read_only=True)
  steps = ckpt.all_steps()
  if not steps:
    raise JaxganError(f'no checkpoint in {workdir / "checkpoints"}')
  if step is not None and step not in steps:
    raise JaxganError(f'no checkpoint at step {step} in {workdir}; available: '
                      f'{", ".join(map(str, sorted(steps)))}')
  step = max(steps) if step is None else step
  abstract, _ = state_layout(task, config, sharding.make_mesh())
  state, _ = ckpt.restore(abstract, step)
  ckpt.close()
  return config, task, state, step
