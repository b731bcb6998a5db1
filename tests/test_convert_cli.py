"""`python -m jaxgan.convert`: reference checkpoints into jaxgan workdirs that the
tools and training use as any run's. Numbers are checked through the workdir against
the reference's outputs in ../shared/interop (README there). Writing a workdir
compiles the whole train state's init (~20 s on 2 busy cores), so those tests are
`slow`."""

import logging
import subprocess

import jax
import numpy as np
import pytest

from conftest import PYTHON, REPO, SHARED, require, run_in_process, subprocess_env
from jaxgan import config as config_lib, convert, runs, sample
from jaxgan.errors import JaxganError

INTEROP = SHARED / 'interop'
RESNET = INTEROP / 'cyclegan_resnet6_ngf8_net_G.pth'
SNAPSHOT = INTEROP / 'sga_32px_1ch_cb512_cm64_z64.pkl'
TOL = 1e-4
# The reference's ResNet-6 needs that generator (cyclegan:smoke has 2 blocks).
RESNET6 = [('model.generator', 'resnet_6blocks')]


@pytest.fixture(scope='module')
def cyclegan_workdir(tmp_path_factory):
  """The ResNet-6 as CycleGAN's G (A -> B) in cyclegan:smoke (ngf 8 already) with a
  6-block generator; F and the discriminators fresh."""
  pth = require(RESNET, 'the reference JZ checkpoints')
  workdir = tmp_path_factory.mktemp('imported') / 'cyclegan'
  convert.convert([str(pth)], 'cyclegan:smoke', str(workdir), RESNET6)
  return workdir


@pytest.mark.slow
def test_cyclegan_workdir_translates_as_the_reference(cyclegan_workdir):
  config, task, model, step = runs.restore_inference(cyclegan_workdir)
  assert step == 0 and config.model.generator == 'resnet_6blocks'
  io = np.load(INTEROP / 'cyclegan_resnet6_ngf8_io.npz')
  x = io['input_nchw'].transpose(0, 2, 3, 1)
  translate = jax.jit(task.predictors()['AtoB'].fn)
  out = np.asarray(translate(model, x))
  np.testing.assert_allclose(out, io['output_nchw'].transpose(0, 2, 3, 1), rtol=0,
                             atol=TOL)


@pytest.mark.slow
def test_existing_workdir_is_refused(cyclegan_workdir):
  with pytest.raises(JaxganError, match='already holds a run'):
    convert.convert([str(RESNET)], 'cyclegan:smoke', str(cyclegan_workdir), RESNET6)


def test_bad_sources_are_one_line(tmp_path):
  pth = require(RESNET, 'the reference JZ checkpoints')
  cases = [
      ([str(pth)], 'cyclegan', 'key model.1.bias has shape [8] in the file, the '
       "config's resnet_9blocks expects [64]; the file holds a resnet_6blocks"),
      ([str(pth)], 'dcgan', '.pth files import into cyclegan or pix2pix, not dcgan'),
      ([str(INTEROP / 'jz_manifest.json')], 'cyclegan:smoke', 'cannot tell which network'),
      ([f'G={INTEROP / "jz_manifest.json"}'], 'cyclegan:smoke', 'not a PyTorch checkpoint'),
      ([f'D={pth}'], 'pix2pix', "unexpected key model.1.bias [8] for the config's basic"),
      ([str(tmp_path / 'none.pth')], 'cyclegan:smoke', 'no such file or folder'),
  ]
  for sources, experiment, message in cases:
    with pytest.raises(JaxganError) as e:
      convert.convert(sources, experiment, str(tmp_path / 'w'), [])
    assert message in str(e.value) and '\n' not in str(e.value), (sources, str(e.value))
  assert not (tmp_path / 'w').exists()  # nothing written on a failure


def test_folder_of_reference_files_maps_names(tmp_path):
  for name in ('latest_net_G_A.pth', 'latest_net_G_B.pth', '5_net_D_A.pth',
               'latest_net_D_B.pth', '5_net_D_B.pth', 'notes.txt'):
    (tmp_path / name).write_bytes(b'')
  found = convert.resolve_sources([str(tmp_path)], 'cyclegan', ('G', 'F', 'D_A', 'D_B'))
  assert {k: v.name for k, v in found.items()} == {
      'G': 'latest_net_G_A.pth', 'F': 'latest_net_G_B.pth', 'D_B': '5_net_D_A.pth',
      'D_A': 'latest_net_D_B.pth'}
  with pytest.raises(JaxganError, match='does not belong to a pix2pix model'):
    convert.resolve_sources([str(tmp_path / 'latest_net_G_A.pth')], 'pix2pix', ('G', 'D'))


@pytest.mark.slow
def test_stylegan_snapshot_workdir_samples_as_the_reference(tmp_path):
  """Convert the snapshot, then `jaxgan.sample --latents` with const noise at psi 1
  and 0.7 writes the reference's images (8-bit PNGs: compared at 1 grey level), in
  the latents' order; and the restored G_ema matches in float32."""
  pkl = require(SNAPSHOT, 'the reference stylegan2-ada snapshot')
  io = np.load(INTEROP / 'sga_32px_1ch_cb512_cm64_z64_io.npz')
  workdir = tmp_path / 'sg'
  convert.convert([str(pkl)], None, str(workdir), [])
  config, task, model, _ = runs.restore_inference(workdir)
  assert (config.model.z_dim, config.data.image_size, config.model.buffers) == (
      64, 32, 'stored')
  np.testing.assert_array_equal(np.asarray(model.aux['w_avg']), io['w_avg'])
  sampler = task.predictors()['samples']
  for psi, name in ((1.0, 'img_psi1_const_nchw'), (0.7, 'img_psi07_const_nchw')):
    ws = jax.jit(sampler.styles, static_argnums=2)(model, io['z'], psi)
    img = np.asarray(jax.jit(sampler.synthesize)(model, ws)).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(img, io[name], rtol=0, atol=TOL)

  z = tmp_path / 'z.npy'
  np.save(z, io['z'][::-1])  # reversed: the files must follow the rows
  out = tmp_path / 'out'
  sample.main(['--workdir', str(workdir), '--latents', str(z), '--noise-mode', 'const',
               '--psi', '0.7', '--output', f'{out}/'])
  from PIL import Image
  names = sorted(p.name for p in out.iterdir())
  assert names == [f'latent{i:04d}.png' for i in range(4)]
  ref = io['img_psi07_const_nchw'][::-1, 0]
  expected = np.clip(np.round((ref + 1) * 127.5), 0, 255)
  for name, want in zip(names, expected):
    got = np.asarray(Image.open(out / name).convert('L'), np.float64)
    assert np.abs(got - want).max() <= 1, name


def test_stylegan_override_contradicting_the_snapshot_is_refused(tmp_path):
  pkl = require(SNAPSHOT, 'the reference stylegan2-ada snapshot')
  with pytest.raises(JaxganError, match=r'--config.model.z_dim=128 contradicts the '
                     r'snapshot \(model.z_dim = 64\)'):
    convert.convert([str(pkl)], None, str(tmp_path / 'w'), [('model.z_dim', '128')])


def test_latents_file_errors_are_one_line(tmp_path):
  bad = tmp_path / 'z.npy'
  np.save(bad, np.zeros((2, 3)))
  with pytest.raises(JaxganError, match=r'expected numbers of shape \[n, 64\]'):
    sample.load_latents(bad, 64)
  np.save(bad, np.zeros((2, 64)))
  assert sample.load_latents(bad, 64).shape == (2, 64)


@pytest.mark.slow
def test_imported_cyclegan_fine_tunes_and_resumes(cyclegan_workdir, tmp_path, capsys,
                                                  caplog):
  """`python -m jaxgan.main --workdir W` (no --experiment: W's config.json) trains
  the imported weights two steps, then resumes to three (in this process, as the
  entry point runs it: two start-ups saved)."""
  import shutil
  caplog.set_level(logging.INFO)
  workdir = tmp_path / 'ft'
  shutil.copytree(cyclegan_workdir, workdir)
  for steps, expect in ((2, 'steps 0 -> 2'), (3, 'Resuming from checkpoint at step 2')):
    caplog.clear()
    run = run_in_process(capsys, 'jaxgan.main', '--workdir', str(workdir),
                         f'--config.train.num_steps={steps}')
    assert run.returncode == 0, run.stderr[-2000:]
    assert expect in caplog.text
  assert sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()
                if p.name.isdigit())[-1] == 3


def test_convert_command_line_error_is_one_line(tmp_path):
  run = subprocess.run([PYTHON, '-m', 'jaxgan.convert', '--from', str(tmp_path / 'x.pth'),
                        '--experiment', 'cyclegan:smoke', '--workdir', str(tmp_path / 'w')],
                       cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                       timeout=120)
  assert run.returncode == 1
  assert run.stderr.strip().splitlines() == [
      f'jaxgan: error: --from {tmp_path / "x.pth"}: no such file or folder']


@pytest.mark.slow
def test_round_trip_reference_to_jaxgan_to_onnx(cyclegan_workdir, tmp_path, capsys):
  """The README's round trip: the reference's ResNet-6 imported -> a folder translated
  by `jaxgan.translate` -> exported to ONNX -> run in ONNX Runtime. ONNX Runtime on
  the fixture's input gives the reference's output (1e-4), and on the PNG inputs the
  same PNGs as `translate` (within one grey level: the rounding of the last step)."""
  ort = pytest.importorskip('onnxruntime', reason="the 'export' extra is not installed "
                            "(pip install -e '.[export]')")
  from PIL import Image
  io = np.load(INTEROP / 'cyclegan_resnet6_ngf8_io.npz')
  x = io['input_nchw'].transpose(0, 2, 3, 1)
  inputs, outputs = tmp_path / 'in', tmp_path / 'out'
  inputs.mkdir()
  pixels = np.rint((x + 1) * 127.5).astype(np.uint8)
  for i, image in enumerate(pixels):
    Image.fromarray(image).save(inputs / f'{i}.png')
  ran = run_in_process(capsys, 'jaxgan.translate', '--workdir', str(cyclegan_workdir),
                       '--direction', 'AtoB', '--input', str(inputs), '--output',
                       str(outputs))
  assert ran.returncode == 0, ran.stderr[-3000:]
  onnx_path = tmp_path / 'G.onnx'
  ran = run_in_process(capsys, 'jaxgan.export', '--workdir', str(cyclegan_workdir),
                       '--format', 'onnx', '--direction', 'AtoB', '--output',
                       str(onnx_path))
  assert ran.returncode == 0, ran.stderr[-3000:]
  session = ort.InferenceSession(str(onnx_path))
  name = session.get_inputs()[0].name
  np.testing.assert_allclose(session.run(None, {name: x.astype(np.float32)})[0],
                             io['output_nchw'].transpose(0, 2, 3, 1), rtol=0, atol=TOL)
  onnx_out = session.run(None, {name: pixels.astype(np.float32) / 127.5 - 1})[0]
  onnx_png = np.clip(np.rint((onnx_out + 1) * 127.5), 0, 255)
  for i in range(len(pixels)):
    translated = np.asarray(Image.open(outputs / f'{i}.png'), np.float64)
    assert np.abs(translated - onnx_png[i]).max() <= 1, i


@pytest.mark.slow
def test_params_of_an_imported_workdir(cyclegan_workdir, capsys):
  # The fixture README's count of the reference's ResNet-6 (ngf 8): 124,931.
  out = run_in_process(capsys, 'jaxgan.params', '--workdir', str(cyclegan_workdir))
  assert out.returncode == 0, out.stderr[-2000:]
  assert '| G | 124,931 |' in out.stdout and '| F | 124,931 |' in out.stdout
  out = run_in_process(capsys, 'jaxgan.params', '--workdir', str(cyclegan_workdir.parent))
  assert out.returncode == 1 and 'not a jaxgan workdir' in out.stderr
