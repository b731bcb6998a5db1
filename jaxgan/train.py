"""The training loop shared by every GAN task.

It knows nothing of any one GAN: it builds the mesh, the data stream and the task,
initialises or restores the state, jits the task's pure step once (explicit shardings,
state donated) and runs it, writing metrics (CLU), sample grids and checkpoints (Orbax).
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

from jaxgan import checkpointing, config as config_lib, data, images, sharding
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


def open_source(config):
  d = config.data
  return data.load_source(d.source, seed=config.seed, image_size=d.load_size,
                          synthetic_size=d.synthetic_size,
                          tfds_data_dir=d.tfds_data_dir or None)


def state_layout(task, config, mesh):
  """(abstract state with shardings, state shardings): derived, not hand-written."""
  abstract = jax.eval_shape(task.init_state, jax.random.PRNGKey(config.seed))
  shardings = jax.tree.map(lambda _: sharding.replicated(mesh), abstract)
  return checkpointing.abstract_with_shardings(abstract, shardings), shardings


class _MetricLog:
  """Host side of the metrics: finiteness check, window means, writer output."""

  def __init__(self, writer, num_steps, log_every, global_batch, last_good):
    self.writer = writer
    self.num_steps = num_steps
    self.log_every = max(1, log_every)
    self.global_batch = global_batch
    self.last_good = last_good
    self._sums, self._count = {}, 0
    self._t0 = time.monotonic()

  def add(self, step: int, metrics) -> dict:
    values = {k: float(v) for k, v in jax.device_get(metrics).items()}
    for name, value in values.items():
      if not math.isfinite(value):
        where = (f'step {self.last_good}' if self.last_good is not None else 'none')
        raise JaxganError(f'non-finite {name} = {value} at step {step}; training '
                          f'stopped (last good checkpoint: {where})')
    for name, value in values.items():
      self._sums[name] = self._sums.get(name, 0.0) + value
    self._count += 1
    if step % self.log_every == 0 or step == self.num_steps:
      elapsed = max(time.monotonic() - self._t0, 1e-9)
      scalars = {f'train/{k}': v / self._count for k, v in self._sums.items()}
      scalars['train/steps_per_sec'] = self._count / elapsed
      scalars['train/images_per_sec'] = self._count * self.global_batch / elapsed
      self.writer.write_scalars(step, scalars)
      self._sums, self._count = {}, 0
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

  source = open_source(config)
  data_mode = task_class(config).data_mode
  batch_sharding = sharding.batch_sharded(mesh)
  stream = data.train_batches(
      source.task_domains('train', data_mode), global_batch=global_batch,
      load_size=config.data.load_size, image_size=config.data.image_size,
      flip=config.data.flip, paired=data_mode == 'paired', seed=config.seed,
      start_step=start_step, sharding=batch_sharding, channels=config.data.channels)
  steps_per_epoch = stream.steps_per_epoch
  if steps_per_epoch < 1:
    raise JaxganError(f'data.batch_size={global_batch} is larger than the training set '
                      f'of {config.data.source}')
  task = make_task(config, steps_per_epoch)
  num_steps = t.num_steps or (t.epochs + t.epochs_decay) * steps_per_epoch

  abstract, state_shardings = state_layout(task, config, mesh)
  if latest is not None:
    state, meta = ckpt.restore(abstract, latest)
    logging.info('Resuming from checkpoint at step %d in %s', latest, ckpt.directory)
    if meta.get('steps_per_epoch') != steps_per_epoch or meta.get('seed') != config.seed:
      logging.warning('The data differs from the checkpoint (steps per epoch %s -> %s, '
                      'seed %s -> %s): the resumed data order will differ.',
                      meta.get('steps_per_epoch'), steps_per_epoch, meta.get('seed'),
                      config.seed)
  else:
    state = jax.jit(task.init_state, out_shardings=state_shardings)(
        jax.random.PRNGKey(config.seed))
  logging.info('Training %s: steps %d -> %d (%d per epoch), global batch %d',
               config.experiment, start_step, num_steps, steps_per_epoch, global_batch)

  train_step = jax.jit(task.train_step,
                       in_shardings=(state_shardings, batch_sharding),
                       out_shardings=(state_shardings, sharding.replicated(mesh)),
                       donate_argnums=0)
  sample_split = 'test' if source.has_split('test') else 'train'
  sample_domains = source.task_domains(sample_split, data_mode)
  n_sample = min(t.sample_size, *(len(d) for d in (sample_domains.a, sample_domains.b)
                                  if d is not None))
  fixed = data.fixed_batch(sample_domains, n_sample, load_size=config.data.load_size,
                           image_size=config.data.image_size,
                           channels=config.data.channels)
  fixed = jax.device_put(fixed, sharding.replicated(mesh))
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
        state, metrics = train_step(state, batch)
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
