"""Fault injection: each test names the promise it checks.

Promises of the loop (`jaxgan.train`) and its workdir (`jaxgan.workdir`):
  * A bad config or workdir is refused before any work, one line per problem.
  * A run that cannot continue from a workdir leaves it as it was (config.json is
    written only after the restore), and says in one line what differs.
  * One run per workdir (a lock naming the owner; a dead owner's lock is taken over).
  * Only finite states are checkpointed; "last good checkpoint" is one.
  * Nothing is lost: kill -9 at any point of an async save, a full disk, a corrupt
    checkpoint or a corrupt image mid-epoch, each followed by a plain re-run, ends in
    the state an uninterrupted run reaches.
  * SIGTERM at any phase (start-up, training, sampling, evaluation) exits cleanly
    with the latest step checkpointed.
  * Checkpoints restore on a different device count, exactly (checksums verified):
    in tests/test_multiprocess.py, on the 8-device run it makes anyway.

Most cases run `train.train_and_evaluate` in-process on cyclegan:smoke (the session's
compilation cache makes each run a few seconds); kill -9 needs subprocesses.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import textwrap

import jax
import numpy as np
import pytest

from jaxgan import checkpointing, images, runs, train, workdir as workdir_lib
from jaxgan.errors import JaxganError
from jaxgan.tasks import cyclegan

from conftest import PYTHON, REPO, experiment_config, run_in_process, subprocess_env

COMMON = {'train.sample_every': 0, 'train.checkpoint_every': 2}


def _config(experiment='cyclegan:smoke', **overrides):
  return experiment_config(experiment, **{**COMMON, **overrides})


def _train(workdir, experiment='cyclegan:smoke', **overrides):
  return train.train_and_evaluate(_config(experiment, **overrides), workdir)


def _steps(workdir):
  return checkpointing.Checkpoints(workdir / 'checkpoints', read_only=True).all_steps()


def _assert_same_state(a, b):
  for field in ('params', 'opt_state', 'aux', 'batch_stats', 'step'):
    la, lb = jax.tree.leaves(getattr(a, field)), jax.tree.leaves(getattr(b, field))
    assert len(la) == len(lb)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb)), field


# The users of each module fixture below are one xdist group: spread over both
# workers (or interleaved with other modules' tests) they built it once per worker,
# and again after each interruption (measured: `two_steps` 77 s + 71 s, set up on
# both workers at once).
@pytest.fixture(scope='module')
def straight(tmp_path_factory):
  """The state after 6 uninterrupted steps: what every recovery must reach."""
  return _train(tmp_path_factory.mktemp('straight'), **{'train.num_steps': 6})


def _one_line(error: JaxganError, *parts):
  text = str(error)
  assert '\n' not in text, text
  for part in parts:
    assert part in text, text


# -- refused before any work ----------------------------------------------------------


def test_bad_config_is_refused_before_any_work_one_line_per_problem(tmp_path, capsys):
  """Promise: every problem of the config at once, nothing created."""
  out = run_in_process(capsys, 'jaxgan.main', '--experiment', 'cyclegan:smoke',
                       '--workdir', str(tmp_path / 'w'), '--config.train.checkpoint_every=0',
                       '--config.train.num_steps=-5')
  assert out.returncode == 1 and 'Traceback' not in out.stderr
  lines = [line for line in out.stderr.splitlines() if line.startswith('jaxgan: error: ')]
  assert len(lines) == 2, out.stderr
  assert 'train.num_steps=-5 must be >= 0' in lines[0] + lines[1]
  assert 'train.checkpoint_every=0 must be >= 1' in lines[0] + lines[1]
  assert not (tmp_path / 'w').exists()


def test_workdir_under_a_file_is_one_line(tmp_path, capsys):
  """Promise: an unusable workdir is named before any work."""
  (tmp_path / 'file').write_text('x')
  out = run_in_process(capsys, 'jaxgan.main', '--experiment', 'cyclegan:smoke',
                       '--workdir', str(tmp_path / 'file' / 'w'))
  assert out.returncode == 1 and 'Traceback' not in out.stderr
  assert out.stderr.strip().splitlines()[-1] == (
      f'jaxgan: error: cannot create workdir {tmp_path / "file" / "w"}: '
      f'{tmp_path / "file"} is a file')


# -- resume checks --------------------------------------------------------------------


@pytest.fixture(scope='module')
def two_steps(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('two_steps')
  _train(workdir, **{'train.num_steps': 2})
  return workdir


def _snapshot(workdir):
  return {str(p.relative_to(workdir)): p.read_bytes() for p in workdir.rglob('*')
          if p.is_file() and p.name != workdir_lib.LOCK_FILE}


@pytest.mark.xdist_group('faults_two_steps')
@pytest.mark.slow
@pytest.mark.parametrize('experiment,overrides,expected', [
    ('cyclegan:smoke', {'model.ngf': 16}, 'model.ngf 8 -> 16'),
    ('cyclegan:smoke', {'data.image_size': 64, 'data.load_size': 64},
     'data.image_size 32 -> 64'),
    ('dcgan:smoke', {}, "task 'cyclegan' -> 'dcgan'"),
], ids=['ngf', 'image-size', 'task'])
def test_resume_of_another_model_is_refused_and_changes_nothing(two_steps, experiment,
                                                                overrides, expected):
  """Promise: one line listing the differing keys; the workdir stays usable."""
  before = _snapshot(two_steps)
  with pytest.raises(JaxganError) as e:
    _train(two_steps, experiment, **{'train.num_steps': 4, **overrides})
  _one_line(e.value, 'cannot resume', expected)
  assert _snapshot(two_steps) == before
  _, _, _, step = runs.restore_inference(two_steps)  # translate/evaluate still work
  assert step == 2


@pytest.mark.xdist_group('faults_two_steps')
@pytest.mark.slow
def test_resume_with_another_state_layout_is_one_line(two_steps):
  """Promise: a change outside the model keys that alters the state (here Adam ->
  SGD) is caught from the checkpoint's own layout, in one line."""
  with pytest.raises(JaxganError) as e:
    _train(two_steps, **{'train.num_steps': 4, 'optimizer.name': 'sgd'})
  _one_line(e.value, 'does not fit this config', 'opt_state')


@pytest.mark.slow
def test_resume_with_another_data_order_needs_consent(tmp_path, caplog):
  """Promise: a changed data order is refused unless allowed, then a warning."""
  _train(tmp_path, **{'train.num_steps': 2})
  with pytest.raises(JaxganError) as e:
    _train(tmp_path, **{'train.num_steps': 3, 'seed': 1})
  _one_line(e.value, 'data order', 'seed 0 -> 1', 'allow_resume_changes=true')
  state = _train(tmp_path, **{'train.num_steps': 3, 'seed': 1,
                              'train.allow_resume_changes': True})
  assert int(state.step) == 3
  assert 'different data order than the checkpoints: seed 0 -> 1' in caplog.text
  assert workdir_lib.read_config(tmp_path).seed == 1


# -- one run per workdir --------------------------------------------------------------


def test_second_run_in_a_workdir_is_refused_naming_the_first(tmp_path):
  """Promise: a second run exits at once, naming the first's host and pid."""
  tmp_path.mkdir(exist_ok=True)
  with workdir_lib.Lock(tmp_path):
    with pytest.raises(JaxganError) as e:
      _train(tmp_path, **{'train.num_steps': 2})
  _one_line(e.value, 'in use by another run', f'host {socket.gethostname()}',
            f'pid {os.getpid()}')
  assert not (tmp_path / 'checkpoints').exists()
  assert not (tmp_path / 'config.json').exists()


@pytest.mark.slow
def test_stale_lock_of_a_dead_run_is_taken_over(tmp_path, caplog):
  """Promise: a lock left by a process that died (kill -9) is taken over, saying so."""
  (tmp_path / workdir_lib.LOCK_FILE).write_text(json.dumps(
      {'host': 'gone-host', 'pid': 999999, 'started': '2026-01-01 00:00:00'}))
  state = _train(tmp_path, **{'train.num_steps': 1})
  assert int(state.step) == 1
  assert 'Took over the lock' in caplog.text and 'gone-host, pid 999999' in caplog.text
  assert (tmp_path / workdir_lib.LOCK_FILE).read_text() == ''  # released at exit


# -- only finite states are saved -----------------------------------------------------


@pytest.mark.slow
def test_exploding_parameters_are_not_checkpointed(tmp_path):
  """Promise: a state with inf parameters is never saved, even when its losses are
  finite (SGD at lr 1e38: finite step-1 losses, inf parameters after it)."""
  with pytest.raises(JaxganError) as e:
    _train(tmp_path, **{'train.num_steps': 3, 'train.checkpoint_every': 1,
                        'optimizer.name': 'sgd', 'optimizer.lr': 1e38})
  _one_line(e.value, 'non-finite values in params/', 'after step 1',
            'last good checkpoint: none')
  assert _steps(tmp_path) == []


@pytest.mark.slow
def test_nan_injected_at_a_chosen_step(tmp_path, monkeypatch):
  """Promise: NaN parameters after step 3 stop the run; the checkpoint the error
  calls last good (step 2) is the newest and holds only finite values."""
  real_step = cyclegan.CycleGAN.train_step

  def poisoned(self, state, batch):
    state, metrics = real_step(self, state, batch)
    bias = state.params['G']['down_0_conv']['bias']
    bias = bias + jax.numpy.where(state.step >= 3, jax.numpy.nan, 0.0)
    params = {**state.params, 'G': {**state.params['G'], 'down_0_conv': {
        **state.params['G']['down_0_conv'], 'bias': bias}}}
    return state.replace(params=params), metrics

  monkeypatch.setattr(cyclegan.CycleGAN, 'train_step', poisoned)
  with pytest.raises(JaxganError) as e:
    _train(tmp_path, **{'train.num_steps': 6, 'train.checkpoint_every': 1})
  _one_line(e.value, 'non-finite values in params/G/down_0_conv/bias', 'after step 3',
            'last good checkpoint: step 2')
  assert _steps(tmp_path) == [1, 2]
  _, _, inference, _ = runs.restore_inference(tmp_path)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(inference.params))


# -- nothing lost -------------------------------------------------------------------


# Orbax's reads of the truncated checkpoint fail in coroutines that are collected
# unawaited once the restore has given up on that step (~200 'Exception ignored'
# warnings, each the expected read error): the fallback is what this test checks.
@pytest.mark.filterwarnings('ignore:Exception ignored in.*_read_array_index_and_device_put'
                            ':pytest.PytestUnraisableExceptionWarning')
@pytest.mark.xdist_group('faults_straight')
@pytest.mark.slow
@pytest.mark.parametrize('damage', ['truncated', 'bytes-changed', 'manifest-deleted'])
def test_corrupt_checkpoint_falls_back_to_the_previous_step(tmp_path, straight, caplog,
                                                            damage):
  """Promise: an unreadable newest checkpoint (cut short, silently changed bytes that
  Orbax would restore as they are, a missing file) is reported, moved aside, and the
  run resumes from the previous one to the uninterrupted run's state."""
  caplog.set_level(logging.INFO)
  _train(tmp_path, **{'train.num_steps': 4})
  assert _steps(tmp_path) == [2, 4]
  step4 = tmp_path / 'checkpoints' / '4' / 'state'
  data = max((p for p in step4.rglob('*') if p.is_file()), key=lambda p: p.stat().st_size)
  if damage == 'truncated':
    os.truncate(data, data.stat().st_size // 2)
  elif damage == 'bytes-changed':
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one bit of one stored value
    data.write_bytes(bytes(raw))
  else:
    next(step4.rglob('manifest.ocdbt')).unlink()
  resumed = _train(tmp_path, **{'train.num_steps': 6})
  assert 'The checkpoint at step 4 is unreadable' in caplog.text
  assert 'Resuming from checkpoint at step 2' in caplog.text
  assert list((tmp_path / 'unreadable_checkpoints').iterdir())[0].name.startswith('4-')
  _assert_same_state(straight, resumed)


def _mount_tmpfs(path, size):
  path.mkdir()
  done = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(path)],
                        capture_output=True, text=True)
  if done.returncode:
    pytest.skip(f'cannot mount a small tmpfs to fill ({done.stderr.strip()[:200]})')


@pytest.mark.xdist_group('faults_straight')
@pytest.mark.slow
def test_full_disk_is_one_line_and_resumable(tmp_path, straight):
  """Promise: a full disk during an async save ends the run with one line naming the
  last intact checkpoint; with space freed, the same command reaches the
  uninterrupted run's state."""
  disk = tmp_path / 'disk'
  _mount_tmpfs(disk, '4m')  # room for one cyclegan:smoke checkpoint (~2.4 MB), not two
  try:
    workdir = disk / 'w'
    with pytest.raises(JaxganError) as e:
      _train(workdir, **{'train.num_steps': 6, 'train.checkpoint_every': 1})
    _one_line(e.value, 'No space left on device', 'last: step 1', 'run the same command')
    subprocess.run(['mount', '-o', 'remount,size=64m', str(disk)], check=True)
    resumed = _train(workdir, **{'train.num_steps': 6, 'train.checkpoint_every': 1})
    _assert_same_state(straight, resumed)
  finally:
    subprocess.run(['umount', '-l', str(disk)], check=False)


def test_corrupt_image_mid_epoch_is_named_and_the_steps_before_are_kept(tmp_path):
  """Promise: an image that goes bad after start-up stops the run with one line
  naming the file and the step; the steps done are checkpointed first."""
  root = tmp_path / 'data'
  rng = np.random.default_rng(0)
  for split in ('trainA', 'trainB'):
    (root / split).mkdir(parents=True)
    for i in range(4):
      images.write_png(root / split / f'{i}.png',
                       rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
  config = _config(**{'data.source': f'folder:{root}', 'train.num_steps': 8,
                      'train.checkpoint_every': 100, 'data.batch_size': 1})
  bad = root / 'trainB' / '3.png'  # not among the sample grid's first 2 images
  real = runs.train_stream
  needed_at = []

  def corrupting(config, source, data_mode, **kwargs):
    stream = real(config, source, data_mode, **kwargs)
    if kwargs.get('batch_sharding') is not None:  # the loop's stream: files checked
      index = [str(f) for f in source.task_domains('train', data_mode).b.files].index(
          str(bad))
      needed_at.append(list(stream.orders(0)[1]).index(index))
      bad.write_bytes(b'not a png any more')
    return stream

  with pytest.MonkeyPatch.context() as m:
    m.setattr(runs, 'train_stream', corrupting)
    with pytest.raises(JaxganError) as e:
      train.train_and_evaluate(config, tmp_path / 'w')
  [step] = needed_at
  _one_line(e.value, f'cannot read image {bad} (', f'needed for step {step}: replace or '
            'remove it, then run the same command to resume')
  assert _steps(tmp_path / 'w') == ([step] if step else [])


KILL_SCRIPT = textwrap.dedent('''
    import os, signal, sys
    from orbax.checkpoint._src.path import atomicity
    from jaxgan import checkpointing, main
    point, workdir = sys.argv[1:]
    real_save = checkpointing.Checkpoints.save
    def save(self, step, state, meta):
      real_save(self, step, state, meta)
      if point == 'writing' and step == 4:
        os.kill(os.getpid(), signal.SIGKILL)  # the async write is in flight
    checkpointing.Checkpoints.save = save
    real_finalize = atomicity.AtomicRenameTemporaryPath.finalize
    async def finalize(self, *args, **kwargs):
      step_4 = self._final_path.name == '4'  # the step's folder (not one of its items)
      if step_4 and point == 'committing':
        os.kill(os.getpid(), signal.SIGKILL)  # written, not yet renamed into place
      await real_finalize(self, *args, **kwargs)
      if step_4 and point == 'committed':
        os.kill(os.getpid(), signal.SIGKILL)  # step 4 complete, the run not finished
    atomicity.AtomicRenameTemporaryPath.finalize = finalize
    sys.exit(main.cli.run(main.main, ['--experiment', 'cyclegan:smoke', '--workdir',
        workdir, '--config.train.num_steps=6', '--config.train.checkpoint_every=2',
        '--config.train.sample_every=0']))
''')


@pytest.mark.xdist_group('faults_straight')
@pytest.mark.slow
@pytest.mark.parametrize('point,resumes_from', [
    ('writing', 2), ('committing', 2), ('committed', 4)])
def test_kill_9_during_an_async_save(tmp_path, straight, caplog, point, resumes_from):
  """Promise: kill -9 at any point of an async save loses at most the steps since
  the previous checkpoint; the same command then reaches the uninterrupted state."""
  caplog.set_level(logging.INFO)
  out = subprocess.run([PYTHON, '-c', KILL_SCRIPT, point, str(tmp_path)], cwd=REPO,
                       env=subprocess_env(), capture_output=True, text=True, timeout=600)
  assert out.returncode == -signal.SIGKILL, out.stderr[-3000:]
  resumed = _train(tmp_path, **{'train.num_steps': 6})
  assert f'Resuming from checkpoint at step {resumes_from}' in caplog.text
  assert 'Took over the lock' in caplog.text
  _assert_same_state(straight, resumed)


# -- SIGTERM at every phase -----------------------------------------------------------


def _signal_on_call(monkeypatch, owner, name):
  real = getattr(owner, name)

  def wrapped(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return real(*args, **kwargs)
  monkeypatch.setattr(owner, name, wrapped)


def test_sigterm_during_startup_stops_cleanly_and_writes_nothing(tmp_path, monkeypatch,
                                                                 caplog):
  """Promise: SIGTERM while the data and networks are built: a clean stop, a log line
  saying so, nothing written into the workdir."""
  caplog.set_level(logging.INFO)
  _signal_on_call(monkeypatch, runs, 'open_source')
  assert _train(tmp_path / 'w', **{'train.num_steps': 4}) is None
  assert 'Stopped by SIGTERM during start-up' in caplog.text
  assert not (tmp_path / 'w').exists()


@pytest.mark.slow
def test_sigterm_during_sampling_checkpoints_the_next_step(tmp_path, monkeypatch):
  """Promise: SIGTERM while a sample grid is written: the run stops after the next
  step with a checkpoint of it."""
  _signal_on_call(monkeypatch, images, 'write_png')
  state = _train(tmp_path, **{'train.num_steps': 100, 'train.checkpoint_every': 100,
                              'train.sample_every': 2})
  assert int(state.step) == 3
  assert _steps(tmp_path) == [3]
  assert (tmp_path / 'samples' / 'step_0000002.png').is_file()


@pytest.mark.slow
def test_sigterm_during_evaluation_checkpoints_the_next_step(tmp_path, monkeypatch):
  """Promise: SIGTERM while the evaluators run: the same clean stop."""
  from jaxgan import evaluators

  def evaluator_that_gets_a_signal(*args, **kwargs):
    def evaluate(state):
      os.kill(os.getpid(), signal.SIGTERM)
      return {'fid': 1.0}
    return evaluate

  monkeypatch.setattr(evaluators, 'make_evaluator', evaluator_that_gets_a_signal)
  state = _train(tmp_path, **{'train.num_steps': 100, 'train.checkpoint_every': 100,
                              'eval.every': 2})
  assert int(state.step) == 3 and _steps(tmp_path) == [3]
