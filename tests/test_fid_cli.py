"""FID where users meet it: `jaxgan.fid`, FID in training, `jaxgan.evaluate`. The
`jaxgan.fid` command runs once as a subprocess; the other cases run the entry points
in-process (`conftest.run_in_process`)."""

import json
import logging
import subprocess

import numpy as np
import pytest
from PIL import Image

from conftest import PYTHON, REPO, SHARED, require, run_in_process, subprocess_env

WEIGHTS = SHARED / 'fid' / 'fid_inception_v3_2015-12-05_params.npz'


def _run(*args):
  return subprocess.run([PYTHON, '-m', *args], cwd=REPO, env=subprocess_env(),
                        capture_output=True, text=True, timeout=600)


def _folder(path, seed, n=6, size=(40, 32)):
  path.mkdir()
  rng = np.random.default_rng(seed)
  for i in range(n):
    base = rng.integers(0, 255, 3)
    img = np.clip(base + rng.normal(0, 40, size + (3,)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path / f'{i}.png')
  return path


@pytest.mark.slow
def test_fid_cli_folders_and_stats(tmp_path, capsys):
  weights = require(WEIGHTS, 'the FID Inception weights')
  a = _folder(tmp_path / 'a', 0)
  b = _folder(tmp_path / 'b', 1)
  out = _run('jaxgan.fid', str(a), str(b), '--kid', '--batch-size', '4', '--weights',
             str(weights))
  assert out.returncode == 0, out.stderr[-3000:]
  fid_ab = float(out.stdout.split('FID:')[1].split()[0])
  assert fid_ab > 1.0 and 'KID:' in out.stdout
  # Statistics saved once give the same number; a set against itself is ~0.
  stats = tmp_path / 'a.npz'
  # --batch-size 4 as above: the same compiled network, and 6 images padded to 8,
  # not to the default 50 (each padded image is a full Inception forward).
  out = run_in_process(capsys, 'jaxgan.fid', '--save-stats', str(a), str(stats), '--weights',
                       str(weights), '--batch-size', '4')
  assert out.returncode == 0 and stats.is_file(), out.stderr[-3000:]
  out = run_in_process(capsys, 'jaxgan.fid', str(stats), str(a), '--weights', str(weights),
                       '--batch-size', '4')
  assert abs(float(out.stdout.split('FID:')[1].split()[0])) < 1e-2, out.stdout
  # IS needs the classifier, which the shared npz lacks: a clear one-line error.
  out = run_in_process(capsys, 'jaxgan.fid', str(a), str(b), '--inception-score',
                       '--weights', str(weights), '--batch-size', '4')
  assert out.returncode == 1 and 'needs weights with the 1008-way classifier' in out.stderr


def test_fid_cli_errors(tmp_path, capsys):
  out = run_in_process(capsys, 'jaxgan.fid', str(tmp_path / 'nope'), str(tmp_path),
                       '--weights', 'x.npz')
  assert out.returncode == 1 and 'Traceback' not in out.stderr
  assert out.stderr.strip().splitlines()[-1].startswith('jaxgan: error: ')
  empty = tmp_path / 'empty'
  empty.mkdir()
  out = run_in_process(capsys, 'jaxgan.fid', str(empty), str(empty), '--weights',
                       str(tmp_path / 'missing.npz'))
  assert out.returncode == 1 and 'missing.npz' in out.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_fid_in_training_and_evaluate(tmp_path, capsys, caplog):
  weights = require(WEIGHTS, 'the FID Inception weights')
  caplog.set_level(logging.INFO)
  out = run_in_process(capsys, 'jaxgan.main', '--experiment', 'cyclegan:smoke', '--workdir',
                       str(tmp_path), '--config.eval.every=4',
                       f'--config.eval.weights={weights}', '--config.eval.num_images=4')
  assert out.returncode == 0, out.stderr[-3000:]
  for key in ('eval/fid_AtoB', 'eval/fid_BtoA', 'eval/kid_AtoB', 'eval/best_fid_AtoB'):
    assert f'[4] {key}' in caplog.text or f', {key}=' in caplog.text, key
  best = json.loads((tmp_path / 'eval_best.json').read_text())
  assert set(best) == {'fid_AtoB', 'fid_BtoA'} and best['fid_AtoB']['step'] == 4
  # The real test images' features were cached in training (4 per domain); evaluate
  # scores all 8, a new key: computed and cached once more.
  caplog.clear()
  out = run_in_process(capsys, 'jaxgan.evaluate', '--workdir', str(tmp_path), '--step', '4',
                       '--weights', str(weights), '--batch-size', '4')
  assert out.returncode == 0, out.stderr[-3000:]
  assert caplog.text.count('computed real-image features') == 2, caplog.text[-3000:]
  result = json.loads((tmp_path / 'eval_4.json').read_text())
  assert result['step'] == 4 and result['fid_AtoB'] > 0 and result['num_images_AtoB'] == 8


def test_training_without_weights_fails_fast(tmp_path, capsys):
  out = run_in_process(capsys, 'jaxgan.main', '--experiment', 'cyclegan:smoke', '--workdir',
                       str(tmp_path), '--config.eval.every=2',
                       f'--config.eval.weights={tmp_path}/none.npz')
  assert out.returncode == 1 and 'Traceback' not in out.stderr
  last = out.stderr.strip().splitlines()[-1]
  assert 'none.npz' in last and '--config.eval.every=0' in last
