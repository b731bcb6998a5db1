"""The config groups every GAN experiment shares: data, train, loss, eval, optimizer.

An experiment's module calls `base_config(task)` and then sets its reference defaults
and adds its own `model` group (and any task-only keys). Keeping the shared keys here
means a knob such as `optimizer.clip_norm` or `train.instance_noise` means the same
thing, with the same default, in every task.
"""

import ml_collections


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

  c.loss = ml_collections.ConfigDict()
  c.loss.gan_mode = 'vanilla'  # lsgan | vanilla | hinge | wgangp
  c.loss.lambda_gp = 10.0  # gradient penalty weight, gan_mode=wgangp only
  c.loss.real_label = 1.0  # < 1: one-sided label smoothing (vanilla, lsgan)

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 10000  # steps between evaluations (FID and the task's scores); 0: off
  c.eval.num_images = 500  # first N test images (0: all)
  c.eval.batch_size = 50
  c.eval.kid = True
  c.eval.weights = ''  # FID Inception weights; '': `python -m jaxgan.metrics.weights` default

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = 'adam'  # adam | sgd
  c.optimizer.lr = 2e-4
  c.optimizer.b1 = 0.5
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8  # Adam's epsilon (PyTorch's default)
  c.optimizer.momentum = 0.9  # sgd only
  c.optimizer.lr_d = 0.0  # discriminators' learning rate (0: the same as lr)
  c.optimizer.clip_norm = 0.0  # global-norm gradient clipping per network group (0: off)
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
