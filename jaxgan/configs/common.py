"""The config groups every GAN experiment shares: data, train, loss, eval, optimizer.

An experiment's module calls `base_config(task)` and then sets its reference defaults
and adds its own `model` group (and any task-only keys). Keeping the shared keys here
means a knob such as `optimizer.clip_norm` or `train.instance_noise` means the same
thing, with the same default, in every task.
"""

import ml_collections
from ml_collections import config_dict

from jaxgan import optim


def base_config(task: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.task = task
  c.experiment = task
  c.seed = 0
  c.dtype = 'float32'  # compute dtype: float32 | bfloat16; parameters stay float32

  c.data = ml_collections.ConfigDict()
  c.data.source = ''
  c.data.image_size = 256  # random crop
  c.data.load_size = 286  # resize before the crop
  c.data.channels = 3  # 1: grayscale (RGB sources are converted), 3: RGB
  c.data.batch_size = 1  # global batch, split over the devices
  c.data.flip = True
  c.data.synthetic_size = 64  # images per domain for data.source=synthetic
  c.data.tfds_data_dir = ''  # '' = tensorflow-datasets' default

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 0  # 0: (epochs + epochs_decay) * steps per epoch
  c.train.epochs = 100  # constant learning rate
  c.train.epochs_decay = 100  # then linear decay to 0
  c.train.log_every = 100
  c.train.sample_every = 1000
  c.train.sample_size = 4  # rows of the sample grid
  c.train.checkpoint_every = 5000
  c.train.keep_checkpoints = 3
  c.train.instance_noise = 0.0  # std of Gaussian noise on D's inputs (0: off)
  c.train.instance_noise_steps = 0  # anneal that std linearly to 0 over N steps (0: constant)
  # Resuming with another data order (data.source, batch_size, load_size, flip, seed,
  # ...) than the checkpoints' is an error unless this is true (then a warning).
  c.train.allow_resume_changes = False

  c.loss = ml_collections.ConfigDict()
  c.loss.gan_mode = 'vanilla'  # lsgan | vanilla | hinge | wgangp
  # Gradient penalty on D, independent of the loss: none | wgangp (interpolates,
  # (|grad| - 1)^2) | r1 (reals) | r2 (fakes), both (gamma / 2) |grad|^2; auto: wgangp
  # with gan_mode=wgangp, else none.
  c.loss.gp = 'auto'
  c.loss.lambda_gp = 10.0  # the penalty's weight (lambda for wgangp, gamma for r1/r2)
  c.loss.gp_every = 1  # > 1: lazy, its own D step every N steps, weight x N
  c.loss.real_label = 1.0  # < 1: one-sided label smoothing (vanilla, lsgan)

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 10000  # steps between evaluations (FID and the task's scores); 0: off
  c.eval.num_images = 500  # first N test images (0: all)
  c.eval.batch_size = 50
  c.eval.kid = True
  c.eval.weights = ''  # FID Inception weights; '': `python -m jaxgan.metrics.weights` default
  c.eval.cache_dir = ''  # real-image features cache; '': ~/.cache/jaxgan (or $JAXGAN_CACHE); none: off

  # Settings every optimizer group inherits (see jaxgan.optim); one group's own value:
  # optimizer.groups.<group>.<key>, e.g. --config.optimizer.groups.disc.lr=1e-4.
  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'adam'  # adam | sgd
  c.optimizer.lr = 2e-4
  c.optimizer.b1 = 0.5
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8  # Adam's epsilon (PyTorch's default)
  c.optimizer.momentum = 0.9  # sgd only
  c.optimizer.clip_norm = 0.0  # global-norm gradient clipping per group (0: off)
  c.optimizer.weight_decay = 0.0  # L2 added to the gradient, as torch's Adam (0: off)
  c.optimizer.schedule = 'linear_decay'  # constant | linear_decay | cosine | step_decay
  c.optimizer.decay_every = 0  # step_decay: multiply the rate by decay_factor every N steps
  c.optimizer.decay_factor = 0.5
  c.optimizer.lr_mult = ()  # ('REGEX=FACTOR', ...) on parameter paths 'NET/.../name'
  c.optimizer.groups = ml_collections.ConfigDict()

  # Exponential moving average of the generators' weights (off unless a half-life or
  # a decay is set); used for samples, translation and evaluation when on.
  c.ema = ml_collections.ConfigDict()
  c.ema.half_life_images = 0.0  # beta = 0.5 ** (batch / half-life); StyleGAN2: 10k
  c.ema.rampup = 0.0  # > 0: half-life <= rampup x images seen (StyleGAN2: 0.05)
  c.ema.decay = 0.0  # a constant beta instead of a half-life (e.g. 0.999)
  c.ema.networks = ()  # which networks; (): the task's generators
  c.ema.for_inference = True  # samples, translation and evaluation use the EMA

  # Augmentation of every discriminator input, reals and fakes, in the G and D phases
  # (see jaxgan.augment); the lazy R1 step sees augmented reals too.
  c.augment = ml_collections.ConfigDict()
  c.augment.policy = 'none'  # none | diffaugment | ada
  c.augment.diffaugment = 'color,translation,cutout'  # DiffAugment's ops, in order
  # ADA (stylegan2-ada-pytorch's defaults): p moves towards the overfitting target of
  # E[sign(D(real))] every ada_interval steps, by up to 1 per ada_kimg thousand images.
  c.augment.ada_target = 0.6  # 0: p fixed at p_init
  c.augment.ada_interval = 4  # steps between adjustments of p
  c.augment.ada_kimg = 500.0
  c.augment.p_init = 0.0  # p at the start (resumed runs continue from the saved p)
  return c


_TYPES = {'name': str, 'lr': float, 'b1': float, 'b2': float, 'eps': float,
          'momentum': float, 'clip_norm': float, 'weight_decay': float, 'schedule': str,
          'decay_every': int, 'decay_factor': float, 'lr_mult': tuple}


def optimizer_groups(c: ml_collections.ConfigDict, *names: str) -> None:
  """Declares the task's optimizer groups in the config, every key unset (inherit)."""
  assert set(_TYPES) == set(optim.GROUP_KEYS)
  for name in names:
    c.optimizer.groups[name] = ml_collections.ConfigDict(
        {k: config_dict.placeholder(t) for k, t in _TYPES.items()})


def variant(c: ml_collections.ConfigDict, variants, name: str) -> ml_collections.ConfigDict:
  """`c` turned into variant `name` by its function in `variants` (name -> function
  that edits the config in place); '' is the base config itself."""
  if name:
    if name not in variants:
      raise KeyError(f"unknown variant '{name}'; valid: {', '.join(variants)}")
    variants[name](c)
  return c


def smoke_run(c: ml_collections.ConfigDict) -> None:
  """The few-step, log-everything settings of every `:smoke` variant (for tests)."""
  c.train.num_steps = 4
  c.train.epochs = 1
  c.train.epochs_decay = 1
  c.train.log_every = 1
  c.train.sample_every = 2
  c.train.sample_size = 2
  c.train.checkpoint_every = 2
  c.eval.every = 0
  c.eval.num_images = 8
  c.eval.batch_size = 4


# (key, lowest valid value, what the value means when it matters)
_BOUNDS = (
    ('seed', 0, ''), ('data.batch_size', 1, ''), ('data.image_size', 1, ''),
    ('data.load_size', 1, ''), ('data.synthetic_size', 1, ''),
    ('train.num_steps', 0, ' (0: epochs + epochs_decay)'), ('train.epochs', 0, ''),
    ('train.epochs_decay', 0, ''), ('train.log_every', 1, ''),
    ('train.sample_every', 0, ' (0: off)'), ('train.sample_size', 1, ''),
    ('train.checkpoint_every', 1, ''), ('train.keep_checkpoints', 1, ''),
    ('eval.every', 0, ' (0: off)'), ('eval.num_images', 0, ' (0: all)'),
    ('eval.batch_size', 1, ''),
)


def problems(c: ml_collections.ConfigDict) -> list[str]:
  """What is wrong with the shared keys of `c`, one line each (the task checks its own
  keys when it is built); [] when nothing is."""
  found = []
  for key, low, note in _BOUNDS:
    node = c
    for part in key.split('.'):
      node = node[part]
    if isinstance(node, bool) or not isinstance(node, int):
      found.append(f'{key}={node!r} must be an integer')
    elif node < low:
      found.append(f'{key}={node} must be >= {low}{note}')
  t = c.train
  if t.num_steps == t.epochs == t.epochs_decay == 0:
    found.append('train.num_steps=0 and train.epochs + train.epochs_decay = 0: nothing '
                 'to train')
  return found
