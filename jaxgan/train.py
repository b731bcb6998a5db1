"""The training loop shared by every GAN task.

It knows nothing of any one GAN (no network, domain or group names): it builds the
mesh, the data stream and the task, initialises or restores the state, runs the task's
step functions on their intervals through `jaxgan.runs.CompiledSteps` (each jitted once,
explicit shardings, state donated), and writes metrics (CLU), sample grids,
checkpoints (Orbax) and the evaluators' scores.
Metrics of step N are read after step N+1 is dispatched, so logging never stalls the
device; a non-finite loss stops the run with an error naming the step and the loss,
and the last good checkpoint stays the latest.
"""

import logging
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from clu import metric_writers, periodic_actions

from jaxgan import checkpointing, config as config_lib, images, runs, sharding
from jaxgan import workdir as workdir_lib
from jaxgan.cli import StopRequest
from jaxgan.errors import JaxganError
from jaxgan.models import cpu_conv


class _MetricLog:
  """Host side of the metrics: finiteness check, window means, writer output."""

  def __init__(self, writer, num_steps, log_every, global_batch, last_good):
    self.writer = writer
    self.num_steps = num_steps
    self.log_every = max(1, log_every)
    self.global_batch = global_batch
    self.last_good = last_good
    self._sums, self._counts, self._steps = {}, {}, 0
    self._t0 = time.monotonic()
    self.data_wait = 0.0  # seconds the loop waited for the input pipeline

  def add(self, step: int, metrics) -> dict:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    for name, value in values.items():
      if not math.isfinite(value):
        raise JaxganError(f'non-finite {name} = {value} at step {step}; training '
                          f'stopped (last good checkpoint: {self.last_good_text})')
    # Per-key means: a lazy step's metrics arrive only on the steps it runs.
    for name, value in values.items():
      self._sums[name] = self._sums.get(name, 0.0) + value
      self._counts[name] = self._counts.get(name, 0) + 1
    self._steps += 1
    if step % self.log_every == 0 or step == self.num_steps:
      elapsed = max(time.monotonic() - self._t0, 1e-9)
      scalars = {f'train/{k}': v / self._counts[k] for k, v in self._sums.items()}
      scalars['train/steps_per_sec'] = self._steps / elapsed
      scalars['train/images_per_sec'] = self._steps * self.global_batch / elapsed
      # The share of the wall time spent waiting for batches: ~0 when the input
      # pipeline outruns the step.
      scalars['train/data_wait_frac'] = min(1.0, self.data_wait / elapsed)
      self.writer.write_scalars(step, scalars)
      self._sums, self._counts, self._steps = {}, {}, 0
      self._t0 = time.monotonic()
      self.data_wait = 0.0
    return values

  @property
  def last_good_text(self) -> str:
    return f'step {self.last_good}' if self.last_good is not None else 'none'


def train_and_evaluate(config, workdir: str, stop: StopRequest | None = None, *,
                       distributed: dict | None = None):
  """Trains `config` in `workdir` (resuming from its latest readable checkpoint);
  returns the final state (None when stopped before the state existed).
  `distributed`: the arguments of `sharding.maybe_initialize_distributed` (a
  multi-process launch), called once the config is known to be good.

  Start-up touches the workdir only once the run is known to be able to continue
  from it: the whole config is checked first, then the data and the networks are
  built; the workdir is locked, the checkpoints are checked against the config and
  restored; only then is config.json written. `stop`: a StopRequest the caller
  installed earlier (so that a signal during imports is not lost); else one is
  installed here."""
  if stop is not None:
    return _train(config, workdir, stop, distributed)
  with StopRequest() as stop:
    return _train(config, workdir, stop, distributed)


class _Stopped(Exception):
  """A stop request arrived during start-up."""


def _train(config, workdir, stop: StopRequest, distributed):
  try:
    return _start_and_run(config, workdir, stop, distributed)
  except _Stopped as e:
    logging.warning('Stopped by %s during start-up (%s), before any training step; '
                    'nothing to save. Run the same command to resume.',
                    stop.signal_name, e)
    return None


def _start_and_run(config, workdir, stop: StopRequest, distributed):
  # Every problem of the config, before any process waits for another.
  task = runs.check_config(config)
  if distributed is not None:
    sharding.maybe_initialize_distributed(**distributed)
  multi = jax.process_count() > 1

  def startup_point(what):
    # With several processes a stop is agreed by the loop's vote at its first step:
    # one process leaving alone would leave the others waiting in a collective.
    if stop.requested and not multi:
      raise _Stopped(what)

  startup_point('loading')
  workdir = workdir_lib.check_path(workdir)
  is_main = jax.process_index() == 0
  mesh = sharding.make_mesh()
  global_batch = config.data.batch_size
  sharding.check_batch(global_batch, mesh)
  logging.info('Devices: %d (%s) in %d process(es); mesh %s', jax.device_count(),
               jax.devices()[0].platform, jax.process_count(), dict(mesh.shape))
  t = config.train

  source = runs.open_source(config)
  stream = runs.train_stream(config, source, task.data_mode,
                             batch_sharding=sharding.batch_sharded(mesh))
  steps_per_epoch = stream.steps_per_epoch
  task.prepare_training(steps_per_epoch)
  num_steps = t.num_steps or (t.epochs + t.epochs_decay) * steps_per_epoch
  trainer = runs.CompiledSteps(task, config, mesh)
  startup_point('building the data and the networks')

  lock, ckpt = workdir_lib.Lock(workdir), None
  try:
    _lock(workdir, lock, is_main, multi)
    ckpt = checkpointing.Checkpoints(workdir / 'checkpoints',
                                     max_to_keep=t.keep_checkpoints)
    state, start_step = _restore(config, workdir, ckpt, trainer, steps_per_epoch)
    if is_main:
      workdir_lib.write_config(workdir, config)
    startup_point(f'restoring (step {start_step})')
    state = _loop(config, workdir, stop, ckpt, trainer, task, source, stream, state,
                  start_step, num_steps, startup_point)
  except BaseException as e:
    _close(ckpt, lock, workdir, quietly=True)
    if isinstance(e, Exception) and not isinstance(e, JaxganError):
      error = checkpointing.write_error(e, f'to {workdir}')
      if error is not None:
        raise _nothing_lost(error, workdir) from None
    raise
  _close(ckpt, lock, workdir, quietly=False)
  return state


def _lock(workdir, lock, is_main: bool, multi: bool) -> None:
  """Process 0 creates and locks the workdir; every process learns the outcome."""
  error = None
  if is_main:
    try:
      workdir.mkdir(parents=True, exist_ok=True)
      lock.acquire()
    except JaxganError as e:
      error = e
    except OSError as e:
      error = checkpointing.write_error(e, f'to {workdir}') or JaxganError(
          f'cannot use workdir {workdir}: {e.strerror or e}')
  if multi:
    from jax.experimental import multihost_utils
    failed = multihost_utils.broadcast_one_to_all(np.int32(error is not None))
    if failed and error is None:
      error = JaxganError(f'process 0 could not lock workdir {workdir} (see its log)')
  if error is not None:
    raise error


def _close(ckpt, lock, workdir, *, quietly: bool) -> None:
  """Waits for the last async save and unlocks. Quietly: an error is already on its
  way, so a second one (the same full disk, say) is logged, not raised."""
  try:
    if ckpt is not None:
      ckpt.close()
  except Exception as e:  # noqa: BLE001
    error = checkpointing.write_error(e, f'the last checkpoint to {workdir}')
    if quietly:
      logging.warning('Closing the checkpoints: %s', checkpointing.one_line(e))
    elif error is not None:
      raise _nothing_lost(error, workdir) from None
    else:
      raise
  finally:
    lock.release()


def _nothing_lost(error: JaxganError, workdir) -> JaxganError:
  # Orbax names a step's folder by its number only once the step is complete.
  steps = [int(p.name) for p in (workdir / 'checkpoints').glob('*') if p.name.isdigit()]
  last = f'step {max(steps)}' if steps else 'none'
  return JaxganError(f'{error}; the checkpoints written so far are intact (last: {last}): '
                     f'free space and run the same command to resume')


def _restore(config, workdir, ckpt, trainer, steps_per_epoch):
  """(state, step): the newest intact checkpoint if it fits `config`, else a fresh
  state at step 0. Refuses (one line) a checkpoint of another model or data order."""
  steps = ckpt.all_steps()
  if not steps:
    return trainer.init(), 0
  workdir_lib.check_resume(workdir, config)
  try:
    problems = ckpt.layout_problems(trainer.abstract, max(steps))
  except Exception:  # noqa: BLE001 (an unreadable checkpoint: restore_latest says so)
    problems = []
  if problems:
    raise JaxganError(f'cannot resume {workdir}: the checkpoint at step {max(steps)} '
                      f'does not fit this config ({"; ".join(problems)})')
  restored = ckpt.restore_latest(trainer.abstract)
  if restored is None:
    raise JaxganError(f'no readable checkpoint in {ckpt.directory} (all moved to '
                      f'{workdir / "unreadable_checkpoints"}); start a new --workdir')
  state, meta, step = restored
  logging.info('Resuming from checkpoint at step %d in %s', step, ckpt.directory)
  # None: an imported checkpoint (jaxgan.convert), written without the data.
  if meta.get('steps_per_epoch') not in (None, steps_per_epoch):
    logging.warning('The data differs from the checkpoint (steps per epoch %s -> %s): '
                    'the resumed data order will differ.', meta.get('steps_per_epoch'),
                    steps_per_epoch)
  return state, step


def _loop(config, workdir, stop, ckpt, trainer, task, source, stream, state,
          start_step, num_steps, startup_point):
  is_main = jax.process_index() == 0
  mesh, t, global_batch = trainer.mesh, config.train, config.data.batch_size
  steps_per_epoch = stream.steps_per_epoch
  logging.info('Training %s: steps %d -> %d (%d per epoch), global batch %d; step '
               'functions %s', config.experiment, start_step, num_steps, steps_per_epoch,
               global_batch, ', '.join(f'{n} every {e}' for n, (_, e) in
                                       trainer.steps.items()))

  fixed = jax.device_put(runs.sample_batch(config, source, task.data_mode),
                         sharding.replicated(mesh))
  sample_fn = cpu_conv.jit_placed(task.sample, mesh)

  evaluator = best = None
  if config.eval.every:
    from jaxgan import evaluators  # loads the Inception weights: only when asked for
    try:
      evaluator = evaluators.make_evaluator(task, source, config,
                                            num_images=config.eval.num_images, mesh=mesh)
    except JaxganError as e:
      raise JaxganError(f'{e}; or train without FID: --config.eval.every=0') from None
    best = evaluators.BestScores(workdir)
  startup_point(f'preparing samples and evaluation (step {start_step})')

  writer = metric_writers.create_default_writer(str(workdir), just_logging=not is_main)
  if start_step == 0:
    writer.write_hparams({k: v if isinstance(v, (int, float, str, bool)) else str(v)
                          for k, v in config_lib.flatten(config).items()})
  report = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer,
                                           every_steps=max(1, t.log_every),
                                           every_secs=None)
  log = _MetricLog(writer, num_steps, t.log_every, global_batch,
                   start_step if start_step else None)
  stop_vote = _StopVote(trainer)

  def save(step):
    # Never checkpoint a state that is not finite (the losses were checked already).
    bad, checksums = checkpointing.audit(state)
    if bad:
      more = f' and {len(bad) - 1} more' if len(bad) > 1 else ''
      raise JaxganError(f'non-finite values in {bad[0]}{more} after step {step}; '
                        f'training stopped, not saved (last good checkpoint: '
                        f'{log.last_good_text})')
    ckpt.save(step, state, {'step': step, 'epoch': step // steps_per_epoch,
                            'steps_per_epoch': steps_per_epoch, 'seed': config.seed,
                            'data_source': config.data.source,
                            'global_batch': global_batch, 'checksums': checksums})
    log.last_good = step

  def evaluate(step):
    results = evaluator(state)
    results.update(best.update(step, results, write=is_main))
    writer.write_scalars(step, {f'eval/{k}': v for k, v in results.items()})

  def write_samples(step):
    columns = [np.asarray(x) for x in jax.device_get(sample_fn(state, fixed))]
    grid = images.make_grid(columns)
    if is_main:
      (workdir / 'samples').mkdir(exist_ok=True)
      images.write_png(workdir / 'samples' / f'step_{step:07d}.png', grid)
    writer.write_images(step, {'samples': grid[None]})

  pending = None
  step = start_step
  try:
    batches = stream.from_step(start_step)
    while step < num_steps:
      waited = time.monotonic()
      try:
        batch = next(batches)
      except JaxganError:  # an image went bad: keep the steps done so far
        if pending is not None:
          log.add(*pending)
          pending = None
          save(step)
          logging.warning('Checkpoint written at step %d before stopping', step)
        raise
      log.data_wait += time.monotonic() - waited
      state, metrics = trainer.run(state, batch, step)
      stop_vote.cast(stop.requested)
      if pending is not None:
        log.add(*pending)
      step += 1
      pending = (step, metrics)
      report(step)
      stopping = stop_vote.result()
      if stopping or step % t.checkpoint_every == 0 or step == num_steps:
        log.add(*pending)  # never checkpoint a state whose losses are not finite
        pending = None
        save(step)
      if stopping:
        logging.warning('Stopped by %s at step %d; checkpoint written. Run the same '
                        'command to resume.', stop.signal_name or 'another process',
                        step)
        break
      if t.sample_every and step % t.sample_every == 0:
        write_samples(step)
      if evaluator and (step % config.eval.every == 0 or step == num_steps):
        evaluate(step)
    if pending is not None:
      log.add(*pending)
  finally:
    writer.flush()
    writer.close()
  return state


class _StopVote:
  """Whether to stop, agreed by every process: each one's stop flag joins a max over
  the devices, cast right after a step is dispatched and read after the next step
  is, so every process stops after the same step without waiting in a collective.
  With one process the flag is read directly."""

  def __init__(self, trainer):
    self.multi = jax.process_count() > 1
    self._flag = False
    self._cast = self._ready = None
    if self.multi:
      mesh = trainer.mesh
      self._sharding = trainer.batch_sharding
      self._local = len(mesh.local_devices)
      self._size = mesh.devices.size
      self._max = jax.jit(jnp.max, out_shardings=sharding.replicated(mesh))

  def cast(self, flag: bool) -> None:
    if not self.multi:
      self._flag = flag
      return
    self._ready, self._cast = self._cast, self._max(jax.make_array_from_process_local_data(
        self._sharding, np.full((self._local,), int(flag), np.int32), (self._size,)))

  def result(self) -> bool:
    if not self.multi:
      return self._flag
    return self._ready is not None and bool(jax.device_get(self._ready))
