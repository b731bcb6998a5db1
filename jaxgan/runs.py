"""Run setup, shared by the training loop and every tool: the data source and streams,
the state's layout and shardings, the jit wiring of a task's steps (`CompiledSteps`), and
restoring a workdir's config and weights for inference.

The loop (`jaxgan.train`), the tests of sharding and resume, `translate`, `evaluate`
and the benchmarks all go through here, so they exercise the same wiring.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np

from jaxgan import checkpointing, sharding
from jaxgan.configs import common
from jaxgan.errors import JaxganError
from jaxgan.models import cpu_conv
from jaxgan.state import INFERENCE_FIELDS, GANState, InferenceState
from jaxgan.tasks import Task, make_task
from jaxgan.workdir import read_config

if TYPE_CHECKING:
  from jaxgan import data


# -- config -------------------------------------------------------------------------


def check_config(config) -> Task:
  """Every problem of `config` found before any work starts, one line each: the
  shared keys' bounds, then the task's own checks (building it checks its keys).
  Returns the task, built without optimizers: training gives it the epoch length
  (`prepare_training`) once the data is open."""
  found = common.problems(config)
  task = None
  try:
    task = make_task(config)
  except JaxganError as e:
    found.append(str(e))
  except Exception:  # a consequence of a value already reported
    if not found:
      raise
  if found:
    raise JaxganError('\n'.join(found))
  return task


# -- data -------------------------------------------------------------------------


# The data layer (tf.data) is imported where it is used: the jit wiring below and the
# benchmarks that feed random arrays run where TensorFlow is not installed.


def open_source(config) -> data.Source:
  from jaxgan import data
  d = config.data
  return data.load_source(d.source, seed=config.seed, image_size=d.load_size,
                          synthetic_size=d.synthetic_size,
                          tfds_data_dir=d.tfds_data_dir or None)


def train_stream(config, source, data_mode: str, *,
                 batch_sharding=None) -> data.BatchStream:
  """The training batches (a pure function of seed and step; `from_step(s)` gives
  them from step s on)."""
  from jaxgan import data
  d = config.data
  stream = data.train_batches(
      source.task_domains('train', data_mode), global_batch=d.batch_size,
      load_size=d.load_size, image_size=d.image_size, flip=d.flip,
      paired=data_mode == 'paired', seed=config.seed,
      sharding=batch_sharding, channels=d.channels)
  if stream.steps_per_epoch < 1:
    raise JaxganError(f'data.batch_size={d.batch_size} is larger than the training set '
                      f'of {d.source}')
  return stream


def sample_batch(config, source, data_mode: str) -> dict[str, np.ndarray]:
  """The fixed images of the sample grids: the first `train.sample_size` of each
  domain of the test split (the train split if there is none)."""
  from jaxgan import data
  split = 'test' if source.has_split('test') else 'train'
  domains = source.task_domains(split, data_mode)
  sizes = [len(s) for s in (domains.a, domains.b) if s is not None]
  return data.fixed_batch(domains, min(config.train.sample_size, *sizes),
                          load_size=config.data.load_size,
                          image_size=config.data.image_size,
                          channels=config.data.channels)


# -- layout and jit wiring ----------------------------------------------------------


def _layout(init_fn, config, mesh):
  abstract = jax.eval_shape(init_fn, jax.random.PRNGKey(config.seed))
  shardings = jax.tree.map(lambda _: sharding.replicated(mesh), abstract)
  return checkpointing.abstract_with_shardings(abstract, shardings), shardings


# What the initialisation is compiled with, per platform. It runs once, so on CPU it is
# compiled without LLVM's optimisations: cyclegan:smoke's `init_state` compiles in 2.5 s
# instead of 9.1 s (stylegan:smoke 8.1 -> 2.0 s, munit:smoke 11.0 -> 3.3 s; called
# eagerly, op by op, it takes 12-17 s). The same operations: the normal draws differ from
# an optimised compile's in the last bit of a few per cent of the weights. Elsewhere
# (not measured) XLA's defaults.
INIT_COMPILER_OPTIONS = {'cpu': {'xla_backend_optimization_level': 0}}


def jit_init(init_fn, target, **jit_kwargs):
  """`init_fn` (a task's `init_state` or `init_inference`) jitted for the mesh, sharding
  or devices `target` it runs on, compiled with that platform's
  INIT_COMPILER_OPTIONS: how the loop initialises, and how tests and tools should."""
  options = INIT_COMPILER_OPTIONS.get(cpu_conv.platform_of(target))
  return cpu_conv.jit_placed(init_fn, target, compiler_options=options, **jit_kwargs)


def state_layout(task, config, mesh):
  """(abstract state with shardings, state shardings): derived, not hand-written."""
  return _layout(task.init_state, config, mesh)


class CompiledSteps:
  """Owns the jit wiring of a task on a mesh: `init` and each step function, jitted
  once with the state's shardings (state donated) and the batch split on `data`,
  traced for the mesh's platform (`cpu_conv.jit_placed`: on CPU its convolution
  formulations, elsewhere XLA's own).

  `run(state, batch, step)` is one training iteration that starts at `step`: every
  step function due at it (interval divides step), in the task's order."""

  def __init__(self, task, config, mesh):
    self.task, self.config, self.mesh = task, config, mesh
    self.abstract, self.state_shardings = state_layout(task, config, mesh)
    self.batch_sharding = sharding.batch_sharded(mesh)
    replicated = sharding.replicated(mesh)
    self._init = jit_init(task.init_state, mesh, out_shardings=self.state_shardings)
    self.steps = {}
    for name, (fn, every) in task.step_functions().items():
      if every < 1:
        raise JaxganError(f'step function {name!r} has interval {every}; must be >= 1')
      self.steps[name] = (cpu_conv.jit_placed(
          fn, mesh, in_shardings=(self.state_shardings, self.batch_sharding),
          out_shardings=(self.state_shardings, replicated), donate_argnums=0), every)
    if self.steps.get('main', (None, 0))[1] != 1:
      raise JaxganError(f'task {config.task} must export a step "main" run every step')

  def init(self) -> GANState:
    return self._init(jax.random.PRNGKey(self.config.seed))

  def due(self, step: int) -> list[str]:
    return [name for name, (_, every) in self.steps.items() if step % every == 0]

  def run(self, state: GANState, batch, step: int):
    """(state after the iteration starting at `step`, its metrics merged)."""
    metrics = {}
    for name in self.due(step):
      state, m = self.steps[name][0](state, batch)
      metrics.update(m)
    return state, metrics

  def put(self, batch) -> dict:
    """A host batch (the global one) placed split over the data axis."""
    return jax.device_put(batch, self.batch_sharding)


# -- workdirs -----------------------------------------------------------------------


def restore_inference(workdir, step=None, mesh=None):
  """(config, task, InferenceState, step) of the run in `workdir` at `step` (default
  latest): params, batch statistics and EMA only; no optimizer, no data."""
  workdir = Path(workdir)
  config = read_config(workdir)
  task = make_task(config)
  ckpt = checkpointing.Checkpoints(workdir / 'checkpoints', read_only=True)
  try:
    steps = ckpt.all_steps()
    if not steps:
      raise JaxganError(f'no checkpoint in {workdir / "checkpoints"}')
    if step is not None and step not in steps:
      raise JaxganError(f'no checkpoint at step {step} in {workdir}; available: '
                        f'{", ".join(map(str, sorted(steps)))}')
    step = max(steps) if step is None else step
    abstract, _ = _layout(task.init_inference, config, mesh or sharding.make_mesh())
    fields = ckpt.restore_fields({f: getattr(abstract, f) for f in INFERENCE_FIELDS},
                                 step)
  finally:
    ckpt.close()
  logging.info('Restored the step-%d weights of %s', step, workdir)
  return config, task, InferenceState(**fields), step
