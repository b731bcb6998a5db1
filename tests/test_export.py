"""`python -m jaxgan.export`: ONNX and StableHLO files of each task's generator equal
jaxgan's own forward (as `translate` / `sample` run it) on inputs of other batch sizes
and image sizes than the command's built-in check uses; the built-in check fails on a
perturbed weight; bad inputs are one-line errors.

The workdirs are made as the loop makes its checkpoints (the initial state of the
task's smoke config, saved by `checkpointing.Checkpoints`), with the EMA weights moved
away from the live ones, so that a wrong choice of weights shows."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from conftest import PYTHON, REPO, experiment_config, init_state, run_in_process, \
    subprocess_env

TASKS = ('cyclegan', 'pix2pix', 'dcgan', 'stylegan', 'munit')


def _make_workdir(task_name: str, path: Path) -> Path:
  import jax
  from jaxgan import checkpointing, workdir
  from jaxgan.tasks import task_class
  config = experiment_config(f'{task_name}:smoke')
  task = task_class(config)(config, steps_per_epoch=1)
  state = init_state(task)
  if state.ema_params:
    state = state.replace(ema_params=jax.tree.map(lambda p: p * 1.1 + 0.01,
                                                  state.ema_params))
  path.mkdir(parents=True)
  ckpt = checkpointing.Checkpoints(path / 'checkpoints')
  ckpt.save(0, state, {'step': 0, 'epoch': 0, 'steps_per_epoch': 1})
  ckpt.wait()
  ckpt.close()
  workdir.write_config(path, config)
  return path


@pytest.fixture(scope='module')
def workdirs(tmp_path_factory):
  made = {}

  def get(task_name):
    if task_name not in made:
      made[task_name] = _make_workdir(task_name,
                                      tmp_path_factory.mktemp('export') / task_name)
    return made[task_name]

  return get


def _onnxruntime():
  pytest.importorskip('onnx', reason="the 'export' extra is not installed "
                      "(pip install -e '.[export]')")
  return pytest.importorskip('onnxruntime', reason="the 'export' extra is not "
                             "installed (pip install -e '.[export]')")


def _export(capsys, workdir, fmt, *extra):
  out = run_in_process(capsys, 'jaxgan.export', '--workdir', str(workdir), '--format',
                       fmt, *extra)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "its output equals jaxgan's" in out.stdout
  return Path(out.stdout.split('wrote ', 1)[1].split(' (', 1)[0])


def _inputs(exportable, batch, height=None, width=None, seed=1):
  """Inputs of other shapes than the built-in check's (2 images of the training size
  + one stride wider; 3 latents)."""
  rng = np.random.default_rng(seed)
  arrays = []
  for name, shape in exportable.inputs:
    dims = {'batch': batch, 'height': height, 'width': width}
    concrete = tuple(dims.get(d, d) for d in shape)
    if name == 'psi':
      arrays.append(np.asarray(0.5, np.float32))
    elif name == 'image':
      arrays.append(rng.uniform(-1, 1, concrete).astype(np.float32))
    else:
      arrays.append(rng.standard_normal(concrete).astype(np.float32))
  return arrays


# (task, batch, height, width): not the check's sizes; pix2pix's U-Net needs multiples
# of 64, MUNIT's style encoder at least 16 pixels.
ONNX_CASES = [('cyclegan', 3, 12, 16), ('pix2pix', 1, 128, 64), ('dcgan', 5, None, None),
              ('stylegan', 4, None, None), ('munit', 3, 16, 20)]


@pytest.mark.slow
@pytest.mark.parametrize('task_name,batch,height,width', ONNX_CASES,
                         ids=[c[0] for c in ONNX_CASES])
def test_onnx_equals_jaxgan_at_other_sizes(workdirs, capsys, task_name, batch, height,
                                           width):
  ort = _onnxruntime()
  from jaxgan import export
  workdir = workdirs(task_name)
  path = _export(capsys, workdir, 'onnx')
  assert path.is_file() and path.suffix == '.onnx'
  exportable = export.load(workdir)
  inputs = _inputs(exportable, batch, height, width)
  session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
  assert [i.name for i in session.get_inputs()] == [n for n, _ in exportable.inputs]
  got = session.run(None, {n: v for (n, _), v in zip(exportable.inputs, inputs)})[0]
  want = np.asarray(exportable.reference(*inputs))
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_pix2pix_onnx_keeps_test_mode(workdirs):
  """The exported pix2pix normalises each image by its own statistics with the fixed
  dropout mask, as `translate` does: an image's output does not depend on the batch
  it is in."""
  ort = _onnxruntime()
  from jaxgan import export
  exportable = export.load(workdirs('pix2pix'))
  path = workdirs('pix2pix') / 'p2p.onnx'
  export.write(exportable, 'onnx', path)
  session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
  (x,) = _inputs(exportable, 2, 64, 64)
  both = session.run(None, {'image': x})[0]
  alone = session.run(None, {'image': x[1:]})[0]
  np.testing.assert_allclose(both[1:], alone, atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize('task_name', ['cyclegan', 'stylegan'])
def test_stablehlo_round_trip(workdirs, capsys, task_name):
  """The serialised module reloads with jax.export.deserialize and runs at another
  batch (and image) size than it was checked at; StyleGAN (per-sample groups) runs
  one sample at a time."""
  from jax import export as jax_export
  from jaxgan import export
  workdir = workdirs(task_name)
  path = _export(capsys, workdir, 'stablehlo', '--output', str(workdir / 'g.stablehlo'))
  assert path == workdir / 'g.stablehlo'
  exported = jax_export.deserialize(bytearray(path.read_bytes()))
  assert 'cpu' in exported.platforms
  assert not isinstance(exported.in_avals[0].shape[0], int)  # a symbolic batch
  exportable = export.load(workdir)
  inputs = _inputs(exportable, 3, 16, 12)
  got = np.asarray(exported.call(*inputs))
  np.testing.assert_allclose(got, np.asarray(exportable.reference(*inputs)), atol=1e-4,
                             rtol=0)


@pytest.mark.slow
def test_onnx_check_fails_on_a_perturbed_weight(workdirs, tmp_path):
  """The built-in check can fail: one weight of the written graph changed by 0.05
  makes it a one-line error, and the file is removed."""
  _onnxruntime()
  import onnx
  from onnx import numpy_helper
  from jaxgan import export
  from jaxgan.errors import JaxganError
  exportable = export.load(workdirs('cyclegan'))
  path = tmp_path / 'g.onnx'
  assert export.write(exportable, 'onnx', path) <= export.TOLERANCE
  model = onnx.load(str(path))
  largest = max((i for i in model.graph.initializer if i.data_type == 1),
                key=lambda i: int(np.prod(i.dims)))
  weights = numpy_helper.to_array(largest).copy()
  weights.flat[0] += 0.05
  largest.CopyFrom(numpy_helper.from_array(weights, largest.name))
  onnx.save(model, str(path))
  with pytest.raises(JaxganError, match="differs from jaxgan's by") as e:
    export.check_onnx(exportable, path)
  assert '\n' not in str(e.value)
  assert not path.exists()


def _one_line_error(out, pattern):
  assert out.returncode == 1
  lines = out.stderr.strip().splitlines()
  assert lines and 'Traceback' not in out.stderr, out.stderr[-3000:]
  assert lines[-1].startswith('jaxgan: error: ') and pattern in lines[-1], lines[-1]


def test_bad_inputs_are_one_line_errors(capsys, tmp_path):
  from jaxgan import workdir as workdir_lib
  run = lambda *args: run_in_process(capsys, 'jaxgan.export', *args)
  _one_line_error(run('--workdir', str(tmp_path), '--format', 'onnx'),
                  'is not a jaxgan workdir')
  empty = tmp_path / 'empty'
  empty.mkdir()
  workdir_lib.write_config(empty, experiment_config('cyclegan:smoke'))
  _one_line_error(run('--workdir', str(empty), '--format', 'stablehlo'), 'no checkpoint')
  _one_line_error(run('--workdir', str(empty), '--format', 'tflite'),
                  "unknown --format 'tflite'; valid: onnx, stablehlo")


def test_without_the_extra_onnx_is_a_one_line_error(capsys, tmp_path, monkeypatch):
  """Without onnx (or onnxruntime) the command says which extra to install; nothing
  is restored or written first."""
  import sys
  from jaxgan import onnx_graph
  run = lambda: run_in_process(capsys, 'jaxgan.export', '--workdir', str(tmp_path),
                               '--format', 'onnx')
  with monkeypatch.context() as m:
    m.setattr(onnx_graph, 'onnx', None)
    _one_line_error(run(), "pip install -e '.[export]'")
  monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # `import` raises ImportError
  _one_line_error(run(), "pip install -e '.[export]'")


@pytest.mark.slow
def test_wrong_direction_is_a_one_line_error(workdirs, capsys):
  run = lambda *args: run_in_process(capsys, 'jaxgan.export', *args)
  dcgan = workdirs('dcgan')
  _one_line_error(run('--workdir', str(dcgan), '--format', 'stablehlo', '--direction',
                      'AtoB'), '--direction is for translators')
  _one_line_error(run('--workdir', str(workdirs('cyclegan')), '--format', 'stablehlo',
                      '--direction', 'sideways'), "direction 'sideways' is not one of")


@pytest.mark.slow
def test_command_line(workdirs, tmp_path):
  """The command's contract, run as a user runs it (one subprocess)."""
  out_path = tmp_path / 'out' / 'dcgan.stablehlo'
  out = subprocess.run([PYTHON, '-m', 'jaxgan.export', '--workdir',
                        str(workdirs('dcgan')), '--format', 'stablehlo', '--output',
                        str(out_path)], cwd=REPO, env=subprocess_env(),
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out_path.is_file() and f'wrote {out_path}' in out.stdout
