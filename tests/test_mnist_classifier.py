"""Tests for experiments/mnist_classifier.py (the MNIST classifier and the diversity
measures on its classes) and the pure parts of experiments/mode_coverage.py.

The measures are checked against hand-computed values; no training and no MNIST files
are needed (the weights files here are written from a random initialisation).
"""

import importlib.util
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from jaxgan.errors import JaxganError

_EXPERIMENTS = Path(__file__).resolve().parents[1] / 'experiments'


def _load(name):
  """experiments/NAME.py as module NAME (mode_coverage imports mnist_classifier so)."""
  if name not in sys.modules:
    spec = importlib.util.spec_from_file_location(name, _EXPERIMENTS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
  return sys.modules[name]


mc = _load('mnist_classifier')
coverage = _load('mode_coverage')


# -- measures -----------------------------------------------------------------------


def test_ten_equal_classes_have_entropy_ln10_and_all_ten_above_5_percent():
  labels = np.repeat(np.arange(10), 7)
  assert mc.class_entropy(labels) == pytest.approx(math.log(10), abs=1e-12)
  assert mc.classes_above(labels) == 10
  assert mc.class_counts(labels).tolist() == [7] * 10


def test_one_class_has_entropy_0_and_one_class_above_5_percent():
  labels = np.full(50, 3)
  assert mc.class_entropy(labels) == 0.0
  assert mc.classes_above(labels) == 1


def test_entropy_of_a_three_to_one_split():
  # p = (3/4, 1/4): -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.5623351446188083
  assert mc.class_entropy([0, 0, 0, 9]) == pytest.approx(0.5623351446188083, abs=1e-12)
  assert mc.classes_above([0, 0, 0, 9]) == 2


def test_a_class_at_exactly_5_percent_is_not_above_it():
  labels = [2] * 19 + [7]  # 7 holds 1/20 = 5%
  assert mc.classes_above(labels) == 1
  assert mc.classes_above(labels + [7]) == 2  # 2/21 > 5%


def test_bad_labels_are_one_line_errors():
  with pytest.raises(JaxganError, match=r'in \[0, 10\), got 0\.\.10'):
    mc.class_entropy([0, 10])
  with pytest.raises(JaxganError, match='non-empty 1-D integer'):
    mc.classes_above(np.zeros(0, int))


def test_hop_share_counts_the_changed_classes():
  # Checkpoint 2 changes the class of 2 of 5 fixed z.
  assert mc.hop_share([1, 2, 3, 4, 5], [1, 2, 0, 4, 9]) == pytest.approx(0.4)
  assert mc.hop_share([4, 4], [4, 4]) == 0.0
  with pytest.raises(JaxganError, match=r'shapes \[3\] and \[2\]'):
    mc.hop_share([1, 2, 3], [1, 2])


def test_pixel_std_is_the_per_pixel_std_over_samples_in_0_1_averaged():
  black = -np.ones((4, 4, 1))
  white = np.ones((4, 4, 1))
  assert mc.pixel_std(np.stack([black, black, black])) == 0.0
  # One black and one white image: each pixel is 0 or 1 in [0, 1], std 0.5.
  assert mc.pixel_std(np.stack([black, white])) == pytest.approx(0.5)
  # The second image white only in its top half: std 0.5 there, 0 below: mean 0.25.
  half = black.copy()
  half[:2] = 1.0
  assert mc.pixel_std(np.stack([black, half])) == pytest.approx(0.25)
  # Four samples of one pixel at 0, 0, 0, 1 (in [0, 1]): std sqrt(3/16).
  pixels = np.array([-1.0, -1.0, -1.0, 1.0]).reshape(4, 1, 1, 1)
  assert mc.pixel_std(pixels) == pytest.approx(math.sqrt(3) / 4)


# -- the classifier and its file ------------------------------------------------------


@pytest.fixture(scope='module')
def params():
  return mc.init_params(seed=0)


def test_random_classifier_maps_two_images_to_ten_logits(params):
  import jax
  images = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 1)).astype(np.float32)
  out = jax.jit(mc.logits)(params, images)
  assert out.shape == (2, 10)
  assert np.all(np.isfinite(np.asarray(out)))
  scores, labels = mc.diversity(params, images)
  assert labels.shape == (2,) and set(scores) == {'entropy', 'classes', 'pixel_std'}


def test_wrong_image_shapes_are_one_line_errors(params):
  with pytest.raises(JaxganError, match=r'samples: .*\[N, 32, 32, 1\].*got shape '
                     r'\[2, 16, 16, 1\]'):
    mc.diversity(params, np.zeros((2, 16, 16, 1), np.float32), 'samples')
  with pytest.raises(JaxganError, match=r'got shape \[2, 32, 32, 3\]'):
    mc.predict_classes(params, np.zeros((2, 32, 32, 3), np.float32))


def _message(excinfo) -> str:
  text = str(excinfo.value)
  assert '\n' not in text
  return text


def test_default_path_is_beside_the_data_cache(monkeypatch, tmp_path):
  monkeypatch.setenv('JAXGAN_CACHE', str(tmp_path))
  assert mc.default_path() == tmp_path / 'mnist_classifier.npz'
  monkeypatch.delenv('JAXGAN_CACHE')
  assert mc.default_path() == Path.home() / '.cache' / 'jaxgan' / 'mnist_classifier.npz'


def test_missing_file_names_the_command_that_trains_it(tmp_path):
  path = tmp_path / 'nope.npz'
  with pytest.raises(JaxganError) as e:
    mc.load(path)
  assert _message(e) == (f'no MNIST classifier at {path}: train it with '
                         f'`python experiments/mnist_classifier.py --output {path}`')


def test_saved_weights_load_back(params, tmp_path):
  path = tmp_path / 'c.npz'
  mc.save(path, params, {'test_accuracy': 0.99, 'input_size': 32})
  loaded, meta = mc.load(path)
  assert meta == {'test_accuracy': 0.99, 'input_size': 32}
  np.testing.assert_array_equal(loaded['Dense_1']['kernel'], params['Dense_1']['kernel'])
  with np.load(path, allow_pickle=False) as z:  # plain arrays, flat names
    assert sorted(z.files) == sorted(
        ['meta'] + [f'{m}/{p}' for m in ('Conv_0', 'Conv_1', 'Conv_2', 'Dense_0',
                                          'Dense_1') for p in ('kernel', 'bias')])


def _write(path, params, **changes):
  from flax import traverse_util
  arrays = {k: np.asarray(v) for k, v in
            traverse_util.flatten_dict(params, sep='/').items()}
  arrays['meta'] = np.array(json.dumps({'test_accuracy': 0.99, 'input_size': 32}))
  arrays.update(changes)
  np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def test_wrong_array_shape_is_a_one_line_error(params, tmp_path):
  path = tmp_path / 'c.npz'
  _write(path, params, **{'Dense_1/kernel': np.zeros((128, 9), np.float32)})
  with pytest.raises(JaxganError) as e:
    mc.load(path)
  assert _message(e) == (f'MNIST classifier {path}: array Dense_1/kernel is float32 '
                         '[128, 9], expected float [128, 10]')


@pytest.mark.parametrize('changes, match', [
    ({'Conv_0/bias': None}, 'lacks the arrays Conv_0/bias'),
    ({'extra': np.zeros(1)}, 'holds unknown arrays extra'),
    ({'meta': None}, "has no 'meta' entry"),
    ({'meta': np.array('{"input_size": 28, "test_accuracy": 0.9}')},
     'must give input_size 32'),
    ({'Conv_0/bias': np.array([{'a': 1}] * 16, dtype=object)}, 'cannot read'),
])
def test_other_bad_files_are_one_line_errors(params, tmp_path, changes, match):
  path = tmp_path / 'c.npz'
  _write(path, params, **changes)
  with pytest.raises(JaxganError, match=match) as e:
    mc.load(path)
  _message(e)


# -- mode_coverage's pure parts ---------------------------------------------------------


def test_steps_are_all_or_existing_ones():
  assert coverage.parse_steps('all', [1000, 500]) == [500, 1000]
  assert coverage.parse_steps('1000,500', [500, 1000, 1500]) == [500, 1000]
  with pytest.raises(JaxganError, match='no checkpoint at 700; available: 500, 1000'):
    coverage.parse_steps('500,700', [500, 1000])
  with pytest.raises(JaxganError, match="expected 'all' or steps"):
    coverage.parse_steps('last', [500])


def test_a_workdir_without_checkpoints_is_a_one_line_error(tmp_path):
  from jaxgan import config as config_lib
  from jaxgan.workdir import write_config
  write_config(tmp_path, config_lib.get_experiment('dcgan:smoke'))
  with pytest.raises(JaxganError, match='no checkpoint in'):
    coverage.checkpoint_steps(tmp_path)
  with pytest.raises(JaxganError, match='generates 16x16x1 images; the MNIST classifier '
                     'needs 32x32x1'):
    coverage.CheckpointSampler(tmp_path, num=4, seed=0)


def test_table_rows():
  rows = [{'step': 500, 'num': 4, 'entropy': math.log(2), 'classes': 2,
           'pixel_std': 0.25, 'hop_share': None},
          {'step': 'real', 'num': 4, 'entropy': 0.0, 'classes': 1, 'pixel_std': 0.0,
           'hop_share': 0.5}]
  lines = coverage.table(rows).splitlines()
  assert lines[2] == '| 500 | 4 | 0.693 | 2 | 0.2500 | - |'
  assert lines[3] == '| real MNIST (test) | 4 | 0.000 | 1 | 0.0000 | 0.500 |'


def test_fid_at_budget_leaves_the_coverage_columns_out_with_a_reason(params, tmp_path,
                                                                    capsys):
  from jaxgan import config as config_lib
  from jaxgan.workdir import write_config
  budget = _load('fid_at_budget')
  rows = [{'run': 'small', 'step': 0}]
  budget.add_coverage(rows, tmp_path, 4, tmp_path / 'none.npz')
  assert capsys.readouterr().out.startswith(
      f'no coverage columns: no MNIST classifier at {tmp_path / "none.npz"}: train it')
  mc.save(tmp_path / 'c.npz', params, {'test_accuracy': 0.99, 'input_size': 32})
  (tmp_path / 'small').mkdir()
  write_config(tmp_path / 'small', config_lib.get_experiment('dcgan:smoke'))
  budget.add_coverage(rows, tmp_path, 4, tmp_path / 'c.npz')
  assert capsys.readouterr().out == (
      f'[small] no coverage columns: {tmp_path / "small"} generates 16x16x1 images; '
      'the MNIST classifier needs 32x32x1\n')
  assert rows == [{'run': 'small', 'step': 0}]


def test_images_are_scored_as_their_saved_pixels(params):
  # Out-of-range pixels (StyleGAN's output is not squashed) clip to black and white;
  # the rest round to the nearest of the 256 grey levels: 0 -> rint(127.5) = 128.
  x = np.array([-3.0, -1.0, 0.0, 0.2, 1.0, 2.5], np.float32)
  np.testing.assert_allclose(mc.as_saved(x),
                             [-1, -1, 128 / 127.5 - 1, 153 / 127.5 - 1, 1, 1], atol=1e-6)
  # Samples at -3 and +3 score as black and white: pixel std 0.5, not 1.5.
  images = np.stack([np.full((32, 32, 1), -3.0), np.full((32, 32, 1), 3.0)])
  scores, _ = mc.diversity(params, images.astype(np.float32))
  assert scores['pixel_std'] == pytest.approx(0.5)


def test_fid_at_budget_scoring_failure_is_one_line(tmp_path, monkeypatch):
  budget = _load('fid_at_budget')
  calls = []

  def failing_run(cmd, **kwargs):
    calls.append(cmd)
    return types.SimpleNamespace(returncode=1)  # as jaxgan.evaluate's one-line error

  monkeypatch.setattr(budget.subprocess, 'run', failing_run)
  with pytest.raises(SystemExit) as e:
    budget.evaluate(tmp_path / 'run', 500, 4)
  assert str(e.value) == (f'fid_at_budget: error: scoring {tmp_path / "run"} at step '
                          '500 failed (see the error above); fix that and rerun with '
                          '--skip-training to score the runs already trained')
  assert calls[0][-6:] == ['--workdir', str(tmp_path / 'run'), '--step', '500',
                           '--num-images', '4']
