"""The command-line contract: `jaxgan.main` on cyclegan:smoke, `jaxgan.translate`, and
one-line errors for bad inputs. One subprocess run per command; the error cases run
the same entry points in-process (`conftest.run_in_process`)."""

import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import PYTHON, REPO, run_in_process, subprocess_env

# One worker runs this module and the smoke run is session-scoped (a module-scoped one
# is torn down whenever the worker runs another module's test in between), so it
# trains once.
pytestmark = pytest.mark.xdist_group('cli_smoke_run')


def _run(*args, timeout=600):
  return subprocess.run([PYTHON, '-m', *args], cwd=REPO, env=subprocess_env(),
                        capture_output=True, text=True, timeout=timeout)


def _one_line_error(out, pattern):
  assert out.returncode != 0
  assert 'Traceback' not in out.stderr, out.stderr[-3000:]
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith('jaxgan: error: '), out.stderr[-3000:]
  assert pattern in last, last


@pytest.fixture(scope='session')
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('smoke')
  out = _run('jaxgan.main', '--experiment', 'cyclegan:smoke', '--workdir', str(workdir))
  assert out.returncode == 0, out.stderr[-3000:]
  return workdir, out


@pytest.mark.slow
def test_main_writes_the_workdir(smoke_run):
  workdir, out = smoke_run
  config = json.loads((workdir / 'config.json').read_text())
  assert config['experiment'] == 'cyclegan:smoke' and config['train']['num_steps'] == 4
  steps = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir() if p.name.isdigit())
  assert steps == [2, 4]
  assert list(workdir.glob('events.out.tfevents.*'))
  for step in (2, 4):
    grid = np.asarray(Image.open(workdir / 'samples' / f'step_{step:07d}.png'))
    # 2 sample rows x 6 columns of 32x32 images with 2-pixel padding.
    assert grid.shape == (2 * 34 + 2, 6 * 34 + 2, 3)
  # The console shows the losses and a progress line with an ETA.
  for key in ('loss_G_A', 'loss_G_B', 'loss_cycle_A', 'loss_cycle_B', 'loss_idt_A',
              'loss_idt_B', 'loss_D_A', 'loss_D_B', 'lr_gen', 'lr_disc', 'images_per_sec'):
    assert f'train/{key}' in out.stderr, key
  assert 'ETA' in out.stderr


@pytest.mark.slow
def test_translate_any_size_and_mode(smoke_run, tmp_path, capsys):
  workdir, _ = smoke_run
  src = tmp_path / 'in'
  src.mkdir()
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 255, (30, 41), np.uint8), 'L').save(src / 'gray.png')
  Image.fromarray(rng.integers(0, 255, (33, 20, 4), np.uint8), 'RGBA').save(src / 'rgba.png')
  Image.fromarray(rng.integers(0, 255, (64, 48, 3), np.uint8), 'RGB').save(src / 'rgb.jpg')
  (src / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not really a jpeg')
  dst = tmp_path / 'out'
  out = _run('jaxgan.translate', '--workdir', str(workdir), '--direction', 'BtoA',
             '--input', str(src), '--output', str(dst))
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'skipped 1 unreadable: broken.jpg' in out.stdout
  sizes = {p.stem: Image.open(p).size for p in dst.iterdir()}
  assert sizes == {'gray': (41, 30), 'rgba': (20, 33), 'rgb': (48, 64)}
  assert all(Image.open(p).mode == 'RGB' for p in dst.iterdir())
  # One file and an explicit step (in-process: the command's contract is checked above).
  out = run_in_process(capsys, 'jaxgan.translate', '--workdir', str(workdir), '--direction',
                       'AtoB', '--input', str(src / 'rgb.jpg'), '--output',
                       str(dst / 'one'), '--step', '2')
  assert out.returncode == 0, out.stderr[-3000:]
  assert 'step-2 checkpoint' in out.stdout
  assert (dst / 'one' / 'rgb.png').is_file()


@pytest.mark.slow
def test_translate_errors(smoke_run, tmp_path, capsys):
  workdir, _ = smoke_run
  img = tmp_path / 'x.png'
  Image.new('RGB', (8, 8)).save(img)
  common = ['--input', str(img), '--output', str(tmp_path / 'o')]
  run = lambda *args: run_in_process(capsys, 'jaxgan.translate', *args, *common)
  _one_line_error(run('--workdir', str(workdir), '--direction', 'AtoC'),
                  "direction 'AtoC' is not one of AtoB, BtoA")
  _one_line_error(run('--workdir', str(workdir), '--direction', 'AtoB', '--step', '3'),
                  'no checkpoint at step 3')
  _one_line_error(run('--workdir', str(tmp_path), '--direction', 'AtoB'),
                  'is not a jaxgan workdir')
  # Style flags on a translator without a style input, and bad combinations.
  _one_line_error(run('--workdir', str(workdir), '--direction', 'AtoB', '--style-seed', '3'),
                  '--style-seed needs a style-controlled translator; task cyclegan')
  _one_line_error(run('--workdir', str(workdir), '--direction', 'AtoB', '--style-ref',
                      str(img), '--num-styles', '2'), '--style-ref takes the style of an')
  _one_line_error(run('--workdir', str(workdir), '--direction', 'AtoB', '--num-styles',
                      '0'), '--num-styles must be >= 1')
  grid = run_in_process(capsys, 'jaxgan.sample', '--workdir', str(workdir),
                        '--style-grid', str(img), '--output', str(tmp_path / 'g.png'))
  _one_line_error(grid, '--style-grid needs a style-controlled translator; task cyclegan')


@pytest.mark.slow
def test_translate_never_overwrites_inputs_or_merges_outputs(smoke_run, tmp_path, capsys):
  """Promise: translate writes nothing when an output would replace an input image or
  when two inputs would share one output name (it used to do both silently)."""
  workdir, _ = smoke_run
  src = tmp_path / 'in'
  src.mkdir()
  Image.new('RGB', (8, 8), (10, 20, 30)).save(src / 'x.png')
  before = (src / 'x.png').read_bytes()
  run = lambda *args: run_in_process(capsys, 'jaxgan.translate', '--workdir', str(workdir),
                                     '--direction', 'AtoB', *args)
  _one_line_error(run('--input', str(src), '--output', str(src)),
                  f'--output would overwrite 1 input image(s) ({src / "x.png"})')
  _one_line_error(run('--input', str(src / 'x.png'), '--output', str(tmp_path / 'in/')),
                  'would overwrite 1 input image(s)')
  assert (src / 'x.png').read_bytes() == before and sorted(src.iterdir()) == [src / 'x.png']
  Image.new('RGB', (8, 8)).save(src / 'x.jpg')
  dst = tmp_path / 'out'
  _one_line_error(run('--input', str(src), '--output', str(dst)),
                  '1 output name(s) would be shared by several inputs (x.jpg, x.png -> x.png)')
  assert not dst.exists()
  (tmp_path / 'file').write_text('')
  _one_line_error(run('--input', str(src / 'x.png'), '--output', str(tmp_path / 'file')),
                  'exists and is not a folder')


@pytest.mark.parametrize('args,pattern', [
    (['--experiment', 'stylegan3'], "unknown experiment 'stylegan3'; valid: cyclegan"),
    (['--experiment', 'cyclegan:huge'], "unknown variant 'huge'"),
    (['--experiment', 'cyclegan:smoke', '--config.model.ngff=3'], "unknown config key 'model.ngff'"),
    (['--experiment', 'cyclegan:smoke', '--config.data.batch_size=two'],
     "'two' is not a valid int"),
    (['--experiment', 'cyclegan:smoke', '--config.model.generator=resnet_7blocks'],
     "unknown generator 'resnet_7blocks'"),
    (['--experiment', 'cyclegan:smoke', '--config.loss.gan_mode=wgan'], "unknown loss.gan_mode"),
    (['--experiment', 'cyclegan:smoke', '--config.data.image_size=30'], 'multiple of 4'),
    (['--experiment', 'cyclegan:smoke', '--config.data.source=folder:/nonexistent/x'],
     '/nonexistent/x'),
    (['--experiment', 'cyclegan:smoke', '--config.data.source=magic:1'], 'magic:1'),
])
def test_main_bad_inputs(args, pattern, tmp_path, capsys):
  _one_line_error(run_in_process(capsys, 'jaxgan.main', '--workdir', str(tmp_path / 'w'),
                                 *args), pattern)
