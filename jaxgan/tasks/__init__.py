"""Task registry. A task owns a GAN's state, its `train_step` and its `sample`.

Interface every task class implements (the loop relies on nothing else; most of it
comes from `jaxgan.tasks.base.GANTask`):
  Task(config, steps_per_epoch)         validates the config (JaxganError on bad values)
  .data_mode: str                       (class attribute) what the data layer must give:
                                        'unpaired' A and B, 'paired' A[i] with B[i]
                                        (same crop and flip), or 'single' (A only)
  .evaluator: str                       (class attribute) `jaxgan.evaluation` kind:
                                        'translation' or 'samples'
  .init_state(rng) -> GANState
  .train_step(state, batch) -> (state, metrics)      pure; jitted once by the loop
  .sample(state, batch) -> tuple of [N,H,W,C] arrays  the sample grid's columns
  .sample_columns: tuple[str, ...]      names of those columns
  .directions: dict[str, str]           'AtoB'/'BtoA' -> generator name, for translate
                                        and translation evaluation ({} if none)
  .generate(state, net_name, x) -> y    one generator in inference mode (if directions)
  .size_multiple: int                   input sides must be multiples of this
  .generate_samples(state, rng, n)      n unconditional samples ('samples' evaluator)

A new GAN adds its module here, its config in `jaxgan.configs` and its networks in
`jaxgan.models`.
"""

import importlib

from jaxgan.errors import JaxganError

TASKS = {
    'cyclegan': ('jaxgan.tasks.cyclegan', 'CycleGAN'),
    'pix2pix': ('jaxgan.tasks.pix2pix', 'Pix2Pix'),
    'dcgan': ('jaxgan.tasks.dcgan', 'DCGAN'),
}


def task_class(config):
  if config.task not in TASKS:
    raise JaxganError(f"unknown task '{config.task}'; valid: {', '.join(sorted(TASKS))}")
  module, cls = TASKS[config.task]
  return getattr(importlib.import_module(module), cls)


def make_task(config, steps_per_epoch: int):
  return task_class(config)(config, steps_per_epoch)
