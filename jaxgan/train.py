"""The training loop shared by every GAN task.

It knows nothing of any one GAN (no network, domain or group names): it builds the
mesh, the data stream and the task, initialises or restores the state, runs the task's
step functions on their intervals through `jaxgan.runs.Trainer` (each jitted once,
explicit shardings, state donated), and writes metrics (CLU), sample grids,
checkpoints (Orbax) and the evaluators' scores.
Metrics of step N are read after step N+1 is dispatched, so logging never stalls the
device; a non-finite loss stops the run with an error naming the step and the loss,
and the last good checkpoint stays the latest.
"""

import logging
import math
import signal
import time
from pathlib import Path

import jax
import numpy as np
from clu import metric_writers, periodic_actions

from jaxgan import checkpointing, config as config_lib, images, runs, sharding
from jaxgan.errors import JaxganError
from jaxgan.tasks import make_task, task_class


class StopRequest:
  """SIGTERM/SIGINT set a flag: the loop finishes its step, checkpoints, exits 0.
  A second signal falls back to the default behaviour."""

  def __init__(self):
    self.signal_name = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: signals cannot be caught here
        pass
    return self

  def _handle(self, signum, frame):
    self.signal_name = signal.Signals(signum).name
    logging.warning('%s received: finishing this step and writing a checkpoint',
                    self.signal_name)
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  @property
  def requested(self) -> bool:
    return self.signal_name is not None


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

  def add(self, step: int, metrics) -> dict:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    for name, value in values.items():
      if not math.isfinite(value):
        where = (f'step {self.last_good}' if self.last_good is not None else 'none')
        raise JaxganError(f'non-finite {name} = {value} at step {step}; training '
                          f'stopped (last good checkpoint: {where})')
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
      self.writer.write_scalars(step, scalars)
      self._sums, self._counts, self._steps = {}, {}, 0
      self._t0 = time.monotonic()
    return values


def train_and_evaluate(config, workdir: str):
  """Trains `config` in `workdir` (resuming from its latest checkpoint); returns the
  final state."""
  workdir = Path(workdir)
  is_main = jax.process_index() == 0
  mesh = sharding.make_mesh()
  global_batch = config.data.batch_size
  sharding.check_batch(global_batch, mesh)
  logging.info('Devices: %d (%s) in %d process(es); mesh %s', jax.device_count(),
               jax.devices()[0].platform, jax.process_count(), dict(mesh.shape))

  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / 'config.json').write_text(config_lib.to_json(config))
  t = config.train
  ckpt = checkpointing.Checkpoints(workdir / 'checkpoints', max_to_keep=t.keep_checkpoints)
  latest = ckpt.latest_step()
  start_step = latest or 0

  source = runs.open_source(config)
  data_mode = task_class(config).data_mode
  stream = runs.train_stream(config, source, data_mode, start_step=start_step,
                             batch_sharding=sharding.batch_sharded(mesh))
  steps_per_epoch = stream.steps_per_epoch
  task = make_task(config, steps_per_epoch)
  num_steps = t.num_steps or (t.epochs + t.epochs_decay) * steps_per_epoch

  trainer = runs.Trainer(task, config, mesh)
  if latest is not None:
    state, meta = ckpt.restore(trainer.abstract, latest)
    logging.info('Resuming from checkpoint at step %d in %s', latest, ckpt.directory)
    if meta.get('steps_per_epoch') != steps_per_epoch or meta.get('seed') != config.seed:
      logging.warning('The data differs from the checkpoint (steps per epoch %s -> %s, '
                      'seed %s -> %s): the resumed data order will differ.',
                      meta.get('steps_per_epoch'), steps_per_epoch, meta.get('seed'),
                      config.seed)
  else:
    state = trainer.init()
  logging.info('Training %s: steps %d -> %d (%d per epoch), global batch %d; step '
               'functions %s', config.experiment, start_step, num_steps, steps_per_epoch,
               global_batch, ', '.join(f'{n} every {e}' for n, (_, e) in
                                       trainer.steps.items()))

  fixed = jax.device_put(runs.sample_batch(config, source, data_mode),
                         sharding.replicated(mesh))
  sample_fn = jax.jit(task.sample)

  evaluator = best = None
  if config.eval.every:
    from jaxgan import evaluation  # loads the Inception weights: only when asked for
    try:
      evaluator = evaluation.make_evaluator(task, source, config,
                                            num_images=config.eval.num_images, mesh=mesh)
    except JaxganError as e:
      raise JaxganError(f'{e}; or train without FID: --config.eval.every=0') from None
    best = evaluation.BestScores(workdir)

  writer = metric_writers.create_default_writer(str(workdir), just_logging=not is_main)
  if start_step == 0:
    writer.write_hparams(dict(_flatten(config.to_dict())))
  report = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer,
                                           every_steps=max(1, t.log_every),
                                           every_secs=None)
  log = _MetricLog(writer, num_steps, t.log_every, global_batch, latest)

  def save(step):
    ckpt.save(step, state, {'step': step, 'epoch': step // steps_per_epoch,
                            'steps_per_epoch': steps_per_epoch, 'seed': config.seed,
                            'data_source': config.data.source,
                            'global_batch': global_batch})
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
    with StopRequest() as stop:
      batches = iter(stream)
      while step < num_steps:
        batch = next(batches)
        state, metrics = trainer.run(state, batch, step)
        if pending is not None:
          log.add(*pending)
        step += 1
        pending = (step, metrics)
        report(step)
        if stop.requested or step % t.checkpoint_every == 0 or step == num_steps:
          log.add(*pending)  # never checkpoint a state whose losses are not finite
          pending = None
          save(step)
        if t.sample_every and step % t.sample_every == 0:
          write_samples(step)
        if evaluator and (step % config.eval.every == 0 or step == num_steps):
          evaluate(step)
        if stop.requested:
          logging.warning('Stopped by %s at step %d; checkpoint written. Run the same '
                          'command to resume.', stop.signal_name, step)
          break
      if pending is not None:
        log.add(*pending)
  finally:
    ckpt.close()
    writer.flush()
    writer.close()
  return state


def _flatten(tree, prefix=''):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _flatten(value, f'{prefix}{key}.')
    else:
      yield f'{prefix}{key}', value if isinstance(value, (int, float, str, bool)) else str(value)
