"""Task registry. A task owns a GAN's state, its `train_step` and its `sample`.

Interface every task class implements (the loop relies on nothing else):
  Task(config, steps_per_epoch)         validates the config (JaxganError on bad values)
  .paired_data: bool                    the data layer must keep A[i] and B[i] paired
  .init_state(rng) -> GANState
  .train_step(state, batch) -> (state, metrics)      pure; jitted once by the loop
  .sample(state, batch) -> tuple of [N,H,W,C] arrays  the sample grid's columns
  .sample_columns: tuple[str, ...]      names of those columns
  .directions: dict[str, str]           'AtoB'/'BtoA' -> generator name, for translate
  .generate(state, net_name, x) -> y    one generator in inference mode
  .size_multiple: int                   input sides must be multiples of this
"""

import importlib

from jaxgan.errors import JaxganError

TASKS = {
    'cyclegan': ('jaxgan.tasks.cyclegan', 'CycleGAN'),
}


def task_class(config):
  if config.task not in TASKS:
    raise JaxganError(f"unknown task '{config.task}'; valid: {', '.join(sorted(TASKS))}")
  module, cls = TASKS[config.task]
  return getattr(importlib.import_module(module), cls)


def make_task(config, steps_per_epoch: int):
  return task_class(config)(config, steps_per_epoch)
