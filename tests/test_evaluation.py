"""The evaluators: paired scores (L1/PSNR/SSIM + FID) for pix2pix, FID of samples for
DCGAN, through `jaxgan.evaluate`."""

import json
import logging

import jax
import numpy as np
import pytest

from jaxgan import config as config_lib, evaluate, evaluators, images, runs, train
from jaxgan.errors import JaxganError
from jaxgan.tasks import make_task

from conftest import SHARED, init_state, require

WEIGHTS = SHARED / 'fid' / 'fid_inception_v3_2015-12-05_params.npz'


def _config(experiment, **overrides):
  c = config_lib.get_experiment(experiment)
  c.eval.weights = str(WEIGHTS)
  c.eval.kid = False
  c.eval.batch_size = 4
  for key, value in overrides.items():
    config_lib.apply_override(c, key, str(value))
  return c


@pytest.mark.slow
def test_paired_scores_compare_each_output_with_its_own_target():
  require(WEIGHTS, 'the FID Inception weights')
  c = _config('pix2pix:smoke', **{'data.direction': 'BtoA'})
  task = make_task(c, steps_per_epoch=1)
  state = init_state(task)
  source = runs.open_source(c)
  results = evaluators.make_evaluator(task, source, c, num_images=5)(state)
  assert set(results) == {'fid_BtoA', 'num_images_BtoA', 'l1_BtoA', 'psnr_BtoA',
                          'ssim_BtoA'}
  assert results['num_images_BtoA'] == 5 and np.isfinite(results['fid_BtoA'])
  # By hand: the first 5 test pairs (synthetic images are made at the training size),
  # translated B -> A and compared with their own A.
  test = source.domains('test')
  src, dst = test.b.array[:5], test.a.array[:5]
  generate = jax.jit(lambda s, x: task.generate(s, 'G', x))  # one compile, not ~100
  fake = images.to_uint8(generate(state, src.astype(np.float32) / 127.5 - 1))
  diff = fake.astype(np.float64) - dst
  assert results['l1_BtoA'] == pytest.approx(np.mean(np.abs(diff)) / 127.5, rel=1e-6)
  mse = np.mean(diff.reshape(5, -1) ** 2, axis=1)
  assert results['psnr_BtoA'] == pytest.approx(np.mean(10 * np.log10(255 ** 2 / mse)),
                                               rel=1e-6)
  assert 0 < results['ssim_BtoA'] < 1


@pytest.mark.slow
def test_dcgan_fid_of_samples_through_jaxgan_evaluate(tmp_path, capsys, caplog):
  require(WEIGHTS, 'the FID Inception weights')
  c = _config('dcgan:smoke', **{'train.sample_every': 0})
  train.train_and_evaluate(c, tmp_path)
  evaluate.main(['--workdir', str(tmp_path), '--num-images', '6', '--weights',
                 str(WEIGHTS), '--batch-size', '4'])
  results = json.loads((tmp_path / 'eval_4.json').read_text())
  assert set(results) == {'step', 'fid', 'num_images'}
  assert results['num_images'] == 6 and results['fid'] > 0
  # The same z every time: a second evaluation gives the same number.
  c = config_lib.from_json((tmp_path / 'config.json').read_text())
  c.eval.weights, c.eval.kid = str(WEIGHTS), False
  _, task, state, _ = runs.restore_inference(tmp_path)
  caplog.set_level(logging.INFO)
  caplog.clear()
  again = evaluators.make_evaluator(task, runs.open_source(c), c, num_images=6)(state)
  assert again['fid'] == pytest.approx(results['fid'], rel=1e-6)
  # The 6 real test digits' features come from the cache `evaluate` filled.
  assert 'reusing cached real-image features 6x2048' in caplog.text
  assert 'computed real-image features' not in caplog.text
  with pytest.raises(JaxganError, match='--num-images must be >= 0'):
    evaluate.main(['--workdir', str(tmp_path), '--num-images', '-1'])
