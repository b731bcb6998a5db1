"""The task contract and the task registry.

A task is one GAN: its networks, its pure step functions and its predictors. `Task`
below lists every member the loop (`jaxgan.train`, `jaxgan.runs`), the evaluators
(`jaxgan.evaluators`) and the command-line tools use; nothing else of a task is read
outside its module. `jaxgan.tasks.base.GANTask` implements the shared part (optimizer
groups, EMA, gradient penalties, lazy steps, stability knobs), so a new GAN adds its
module here, its config in `jaxgan.configs` and its networks in `jaxgan.models`.
"""

import importlib
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
  channels: int  # image channels, 1 or 3
  # Network name -> Flax module. Optimizer group -> the networks it holds.
  modules: Mapping[str, Any]
  GROUPS: Mapping[str, tuple[str, ...]]
  sample_columns: tuple[str, ...]  # names of `sample`'s columns

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


TASKS = {
    'cyclegan': ('jaxgan.tasks.cyclegan', 'CycleGAN'),
    'pix2pix': ('jaxgan.tasks.pix2pix', 'Pix2Pix'),
    'dcgan': ('jaxgan.tasks.dcgan', 'DCGAN'),
    'stylegan': ('jaxgan.tasks.stylegan', 'StyleGAN'),
}


def task_class(config) -> type:
  if config.task not in TASKS:
    raise JaxganError(f"unknown task '{config.task}'; valid: {', '.join(sorted(TASKS))}")
  module, cls = TASKS[config.task]
  return getattr(importlib.import_module(module), cls)


def make_task(config, steps_per_epoch: int | None = None) -> Task:
  """The task of `config`; without `steps_per_epoch`, for inference only."""
  return task_class(config)(config, steps_per_epoch)
