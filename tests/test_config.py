"""Experiment lookup and --config.KEY=VALUE overrides."""

import subprocess
import sys
from pathlib import Path

import pytest

from jaxgan import config as config_lib
from jaxgan.errors import JaxganError

REQUIRED_KEYS = [
    'seed', 'data.source', 'data.image_size', 'data.load_size', 'data.batch_size',
    'train.num_steps', 'train.epochs', 'train.epochs_decay', 'train.log_every',
    'train.sample_every', 'train.checkpoint_every', 'model.generator',
    'model.discriminator', 'model.ngf', 'model.ndf', 'model.norm', 'loss.gan_mode',
    'loss.lambda_cycle', 'loss.lambda_identity', 'optimizer.lr', 'optimizer.b1', 'dtype']


@pytest.mark.parametrize('spec', ['cyclegan', 'cyclegan:demo', 'cyclegan:smoke'])
def test_required_keys(spec):
  c = config_lib.get_experiment(spec)
  for key in REQUIRED_KEYS:
    node = c
    for part in key.split('.'):
      node = node[part]


def test_reference_defaults():
  c = config_lib.get_experiment('cyclegan')
  assert (c.data.image_size, c.data.load_size, c.data.batch_size) == (256, 286, 1)
  assert (c.train.epochs, c.train.epochs_decay, c.train.pool_size) == (100, 100, 50)
  assert (c.model.generator, c.model.discriminator, c.model.norm) == (
      'resnet_9blocks', 'basic', 'instance')
  assert (c.model.ngf, c.model.ndf) == (64, 64)
  assert (c.loss.gan_mode, c.loss.lambda_cycle, c.loss.lambda_identity) == ('lsgan', 10.0, 0.5)
  assert (c.optimizer.lr, c.optimizer.b1) == (2e-4, 0.5)
  assert c.data.source == 'tfds:cycle_gan/horse2zebra'


def test_unknown_experiment_and_variant():
  with pytest.raises(JaxganError, match="unknown experiment 'cycle'; valid: cyclegan"):
    config_lib.get_experiment('cycle')
  with pytest.raises(JaxganError, match='cyclegan:demo, cyclegan:smoke'):
    config_lib.get_experiment('cyclegan:tiny')


def test_overrides_typed():
  c = config_lib.get_experiment('cyclegan')
  for key, text in [('optimizer.lr', '1e-4'), ('data.batch_size', '4'),
                    ('data.flip', 'false'), ('model.generator', 'unet_256'),
                    ('loss.lambda_cycle', '5')]:
    config_lib.apply_override(c, key, text)
  assert c.optimizer.lr == 1e-4 and c.data.batch_size == 4 and c.data.flip is False
  assert c.model.generator == 'unet_256' and c.loss.lambda_cycle == 5.0
  assert isinstance(c.loss.lambda_cycle, float)


@pytest.mark.parametrize('key,text,pattern', [
    ('optimizer.lrr', '1', r"unknown config key 'optimizer.lrr' \(valid keys under optimizer: b1, b2, clip_norm, decay_every, decay_factor, eps, groups, lr, lr_mult, momentum, name, schedule, weight_decay\)"),
    ('nope', '1', "unknown config key 'nope'"),
    ('data.batch_size', 'four', "bad value for config key 'data.batch_size': 'four' is not a valid int"),
    ('data.flip', 'maybe', "'maybe' is not a valid bool"),
    ('optimizer', '1', "'optimizer' is a group"),
    ('seed.x', '1', "unknown config key 'seed.x'"),
])
def test_override_errors(key, text, pattern):
  c = config_lib.get_experiment('cyclegan')
  with pytest.raises(JaxganError, match=pattern):
    config_lib.apply_override(c, key, text)


def test_parse_overrides():
  assert config_lib.parse_overrides(['--config.a.b=1', '--config.c', '2']) == [
      ('a.b', '1'), ('c', '2')]
  with pytest.raises(JaxganError, match="unrecognized argument '--foo'"):
    config_lib.parse_overrides(['--foo'])
  with pytest.raises(JaxganError, match='has no value'):
    config_lib.parse_overrides(['--config.seed'])


def test_json_round_trip():
  c = config_lib.get_experiment('cyclegan:smoke')
  back = config_lib.from_json(config_lib.to_json(c))
  assert back.to_dict() == c.to_dict()


def test_tuple_overrides_split_on_top_level_commas_only():
  # Regression (issue 18): a regex with a comma of its own ({1,3}) was cut in two.
  c = config_lib.get_experiment('dcgan:smoke')
  config_lib.apply_override(c, 'optimizer.lr_mult', r'G/conv_{1,3}/.*=0.1,(D|G)/x=2')
  assert c.optimizer.lr_mult == (r'G/conv_{1,3}/.*=0.1', '(D|G)/x=2')
  config_lib.apply_override(c, 'optimizer.lr_mult', 'a{0,2}=1, b=2')
  assert c.optimizer.lr_mult == ('a{0,2}=1', 'b=2')
  config_lib.apply_override(c, 'ema.networks', 'G')
  assert c.ema.networks == ('G',)


def test_experiments_and_tasks_are_found_by_module_name():
  # Found, not listed: a new GAN's modules join without an edit here.
  from jaxgan import tasks
  known = {'cyclegan', 'dcgan', 'pix2pix', 'stylegan', 'munit'}
  assert known <= set(config_lib.experiments()) and known <= set(tasks.available())
  assert 'common' not in config_lib.experiments()  # shared keys, not an experiment
  assert not {'base', 'nets'} & set(tasks.available())  # shared machinery
  for name in config_lib.experiments():  # every experiment has a smoke variant and a task
    c = config_lib.get_experiment(f'{name}:smoke')
    assert c.task in tasks.available()
  c = config_lib.get_experiment('dcgan:smoke')
  with c.unlocked():
    c.task = 'base'  # a module of jaxgan.tasks that is not a task
  with pytest.raises(JaxganError, match="unknown task 'base'; valid: cyclegan, dcgan, "):
    tasks.task_class(c)


def test_variants_are_functions_of_the_base_config():
  import importlib
  for name in config_lib.experiments():
    module = importlib.import_module(f'jaxgan.configs.{name}')
    base = module.get_config('').to_dict()
    for variant, make in module.VARIANTS.items():
      assert callable(make)
      assert module.get_config(variant).to_dict() != base, (name, variant)


@pytest.mark.parametrize('argv, message', [
    (['--channels', '3'], "unrecognized argument '--channels'"),
    (['--config.model.nope=1'], "unknown config key 'model.nope'"),
])
def test_bench_step_bad_flags_are_one_line(argv, message):
  """experiments/bench_step.py reads its --config overrides with this module; run as
  a user runs it, a bad flag or key is one line and exit 1 (its cli.run)."""
  path = Path(__file__).parent.parent / 'experiments' / 'bench_step.py'
  r = subprocess.run([sys.executable, str(path), '--experiment', 'dcgan:smoke', *argv],
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 1 and r.stdout == ''
  assert message in r.stderr and 'Traceback' not in r.stderr
  assert len([line for line in r.stderr.splitlines() if 'error' in line]) == 1
