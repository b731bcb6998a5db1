"""The task contract and the task registry.

A task is one GAN: its networks, its pure step functions and its predictors. `Task`
below lists every member the loop (`jaxgan.train`, `jaxgan.runs`), the evaluators
(`jaxgan.evaluators`) and the command-line tools use; nothing else of a task is read
outside its module. `jaxgan.tasks.base.GANTask` implements the shared part (optimizer
groups, EMA, gradient penalties, lazy steps, stability knobs), so a new GAN adds its
module here (named as its `config.task`, with `TASK = <its class>`), its config in
`jaxgan.configs` and its networks in `jaxgan.models`; nothing is registered by hand.
"""

import importlib
import pkgutil
from typing import Any, Callable, Mapping, Protocol

import jax

from jaxgan.errors import JaxganError
from jaxgan.state import GANState, InferenceState
from jaxgan.tasks.base import Sampler, Translator

Batch = Mapping[str, jax.Array]  # 'a' (and 'b'): [N, H, W, C] in [-1, 1]
Metrics = Mapping[str, jax.Array]  # scalars, logged as train/<name>
StepFn = Callable[[GANState, Batch], tuple[GANState, Metrics]]


class Task(Protocol):
  """Built as `Task(config, steps_per_epoch)` for training (optimizers and schedules
  need the epoch length) or `Task(config)` for inference; the constructor validates
  the config and raises JaxganError (one line) on a bad value."""

  config: Any
  # What the data layer must give (`jaxgan.data` Source.task_domains): 'unpaired' A and
  # B, 'paired' A[i] with B[i] (same crop and flip), or 'single' (A only).
  data_mode: str
  channels: int  # image channels, 1 or 3 (what `translate` feeds the translators)
  modules: Mapping[str, Any]  # network name -> Flax module (`jaxgan.params` counts them)

  def prepare_training(self, steps_per_epoch: int) -> None:
    """Builds the optimizers of a task built for inference (`Task(config)`), for
    epochs of `steps_per_epoch` steps: the loop builds the task once, to check the
    config, and calls this once the data says how long an epoch is."""

  def init_state(self, rng: jax.Array) -> GANState:
    """The whole train state (jitted by the loop with the state's shardings)."""

  def init_inference(self, rng: jax.Array) -> InferenceState:
    """Params, batch stats and EMA only: the restore target of the inference tools."""

  def step_functions(self) -> dict[str, tuple[StepFn, int]]:
    """name -> (pure step, interval k). At an iteration that starts at step s the loop
    runs, in this dict's order, every step whose k divides s; 'main' (k = 1) advances
    `state.step`. Each is jitted once with the state's shardings, state donated."""

  def sample(self, state: GANState, batch: Batch) -> tuple[jax.Array, ...]:
    """The sample grid's columns for the fixed sample batch (pure; jitted)."""

  def predictors(self) -> dict[str, Translator | Sampler]:
    """What the task predicts, by name ('AtoB', 'samples', ...): what translation,
    evaluation and sampling run. They take a GANState or an InferenceState and use
    the EMA weights when the task keeps them (ema.for_inference)."""


# Modules of this package that hold shared machinery, not a task.
_NOT_TASKS = ('base', 'nets')


def available() -> tuple[str, ...]:
  """The task names: the modules of this package that define `TASK`."""
  return tuple(sorted(
      info.name for info in pkgutil.iter_modules(__path__)
      if info.name not in _NOT_TASKS and not info.name.startswith('_')
      and hasattr(importlib.import_module(f'{__name__}.{info.name}'), 'TASK')))


def task_class(config) -> type:
  names = available()
  if config.task not in names:
    raise JaxganError(f"unknown task '{config.task}'; valid: {', '.join(names)}")
  return importlib.import_module(f'{__name__}.{config.task}').TASK


def make_task(config, steps_per_epoch: int | None = None) -> Task:
  """The task of `config`; without `steps_per_epoch`, for inference only."""
  return task_class(config)(config, steps_per_epoch)
