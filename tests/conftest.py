"""Shared test fixtures: paths to ../shared and a fast subprocess environment.

Every test process of one session (this one and the subprocesses it starts) shares a
fresh XLA persistent compilation cache: the suite compiles the same small steps many
times (each resume, CLI run and subprocess builds a new task), and a cache hit turns
a ~25 s smoke-run compile into a ~1 s load. The cache starts empty each session and
is removed at exit, so no result depends on an earlier run.
"""

import atexit
import dataclasses
import importlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# One OpenBLAS thread per test process (set before anything imports NumPy; the
# subprocesses inherit it): `make test` runs two xdist workers on 2 cores, and two
# processes each running 2-thread OpenBLAS oversubscribe them, its threads spinning
# while they wait. Two 8-image FIDs (2048² eigendecompositions) run at once took 2.7
# and 11.8 s each with the default threads, 1.3 s with one (BUILD_NOTES, "Test suite").
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

# XLA:CPU compiles the suite's programs without LLVM's optimisations (the HLO, i.e. what
# the program computes, is the same; only the machine code is less optimised): the
# suite is ~60 % compile time, and this takes ~20 % off a smoke step's compile (golden,
# knobs and FID-in-training tests: 139 -> 110 CPU-s) while the golden numbers hold at
# their 1e-5. Training, `make train` and the benchmarks compile at XLA's default.
# Subprocesses get it through `subprocess_env`. A level already in XLA_FLAGS wins.
TEST_XLA_FLAGS = '--xla_backend_optimization_level=0'


def _with_test_xla_flags(flags: str) -> str:
  if 'xla_backend_optimization_level' in flags:
    return flags
  return f'{flags} {TEST_XLA_FLAGS}'.strip()


os.environ['XLA_FLAGS'] = _with_test_xla_flags(os.environ.get('XLA_FLAGS', ''))

if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _CACHE = tempfile.mkdtemp(prefix='jaxgan-test-xla-cache-')
  atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
  """`--dist loadgroup` for pytest >= 9.2: keep each `xdist_group` on one worker.

  pytest-xdist (3.8) groups tests by suffixing their node ids with '@GROUP', which it
  does by assigning `item._nodeid`; pytest 9.2 keeps node ids in `item._id` (a NodeId)
  and no longer reads that attribute, so every test became its own work unit and the
  groups' once-per-session launches ran on both workers (the multiprocess launch and
  the CLI smoke run twice each; with the CPUs shared, the launch then missed its
  deadline). This sets the same suffix where pytest reads it; it does nothing where
  xdist's own renaming took effect, or outside an xdist worker.
  """
  if not getattr(config.option, 'loadgroup', False):  # set in xdist workers only
    return
  _longest_first(items)
  for item in items:
    groups = sorted(set(_groups(item)))
    suffix = '@' + '_'.join(groups)
    if groups and not item.nodeid.endswith(suffix) and hasattr(item, '_id'):
      from _pytest.nodeid import NodeId  # pytest >= 9.2, where `_id` exists
      item._id = NodeId.parse(item.nodeid + suffix)


# The work units that take longest (each group runs on one worker, in one piece: its
# module fixture launches subprocesses), longest first. xdist hands units out in
# collection order, so these go first and the short tests fill in behind them, instead
# of a long unit starting last while the other worker idles.
LONGEST_GROUPS = ('sharding_launch', 'multiprocess_launch', 'faults_straight',
                  'cli_smoke_run', 'faults_two_steps')


def _groups(item) -> list[str]:
  """The names of `item`'s `xdist_group` markers."""
  return [str(m.args[0] if m.args else m.kwargs.get('name', 'default'))
          for m in item.iter_markers('xdist_group')]


def _longest_first(items):
  """Reorder `items` (stable): the LONGEST_GROUPS in that order, then the other
  `slow` tests, then the rest."""
  def rank(item):
    groups = _groups(item)
    for i, group in enumerate(LONGEST_GROUPS):
      if group in groups:
        return i
    return len(LONGEST_GROUPS) + (0 if item.get_closest_marker('slow') else 1)
  items.sort(key=rank)


REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'
MAPS = SHARED / 'datasets' / 'maps'


def require(path: Path, what: str) -> Path:
  if not path.exists():
    pytest.skip(f'{what} not found at {path} (../shared is absent in this checkout)')
  return path


def subprocess_env(**extra) -> dict:
  env = dict(os.environ)
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  env['PYTHONUNBUFFERED'] = '1'
  env.update(extra)
  env['XLA_FLAGS'] = _with_test_xla_flags(env.get('XLA_FLAGS', ''))
  return env


PYTHON = sys.executable


# FID weights. The library looks only at $JAXGAN_FID_WEIGHTS and its cache, never at
# ../shared, so point the variable at the shared copy when this checkout has one. Set at
# import time so that subprocesses (`subprocess_env` copies os.environ) see it too; a
# value set by the caller wins. Tests that need the weights still `require` the file.
FID_WEIGHTS = SHARED / 'fid' / 'fid_inception_v3_2015-12-05_params.npz'
if FID_WEIGHTS.is_file() and not os.environ.get('JAXGAN_FID_WEIGHTS'):
  os.environ['JAXGAN_FID_WEIGHTS'] = str(FID_WEIGHTS)

# Caches the code writes by default under ~/.cache/jaxgan (real-image FID features,
# converted weights) go to a per-session directory instead, removed at exit.
if 'JAXGAN_CACHE' not in os.environ:
  _JAXGAN_CACHE = tempfile.mkdtemp(prefix='jaxgan-test-cache-')
  atexit.register(shutil.rmtree, _JAXGAN_CACHE, ignore_errors=True)
  os.environ['JAXGAN_CACHE'] = _JAXGAN_CACHE


@dataclasses.dataclass
class Ran:
  returncode: int
  stdout: str
  stderr: str


def run_in_process(capsys, module: str, *args: str) -> Ran:
  """`python -m MODULE ARGS` run in this process, as its entry point does (one-line
  errors and exit codes through `jaxgan.cli.run`); one subprocess test per command
  keeps the real command-line contract covered, the other cases save a start-up."""
  from jaxgan import cli
  main = importlib.import_module(module).main
  capsys.readouterr()
  code = cli.run(main, list(args))
  out = capsys.readouterr()
  return Ran(code, out.out, out.err)


def experiment_config(spec: str, **overrides):
  """The config of experiment `spec` with `--config.KEY=VALUE`-style overrides."""
  from jaxgan import config as config_lib
  c = config_lib.get_experiment(spec)
  for key, value in overrides.items():
    config_lib.apply_override(c, key, str(value))
  return c


def init_state(task, seed: int = 0):
  """`task`'s initial train state from PRNGKey(seed), made as the loop makes it
  (`runs.jit_init`; called eagerly, op by op, a smoke config's init takes 12-17 s
  against 2-3 s)."""
  import jax
  from jaxgan import runs
  return runs.jit_init(task.init_state, jax.devices()[:1])(jax.random.PRNGKey(seed))


def random_batch(c, seed: int = 0) -> dict:
  """A global batch of uniform [-1, 1] images of config `c`'s shape: domain 'a' only
  for one-domain tasks, 'a' and 'b' otherwise."""
  import numpy as np
  from jaxgan.tasks import task_class
  rng = np.random.default_rng(seed)
  shape = (c.data.batch_size, c.data.image_size, c.data.image_size, c.data.channels)
  keys = 'a' if task_class(c).data_mode == 'single' else 'ab'
  return {k: rng.uniform(-1, 1, shape).astype(np.float32) for k in keys}
