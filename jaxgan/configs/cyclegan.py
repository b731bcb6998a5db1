"""CycleGAN configs: the reference defaults, plus a CPU demo and a smoke test.

Full reference run (horse2zebra through tensorflow-datasets, 256², 200 epochs):
  python -m jaxgan.main --experiment cyclegan --workdir runs/h2z
The same on a folder in the reference layout (trainA/ trainB/ testA/ testB/):
  python -m jaxgan.main --experiment cyclegan --workdir runs/x \
      --config.data.source=folder:/data/horse2zebra
CPU demo on built-in synthetic data (what `make train` runs, a few minutes):
  python -m jaxgan.main --experiment cyclegan:demo --workdir runs/cyclegan_demo
Smallest run, for tests:
  python -m jaxgan.main --experiment cyclegan:smoke --workdir /tmp/smoke
"""

import ml_collections

VARIANTS = ('demo', 'smoke')


def base_config() -> ml_collections.ConfigDict:
  """Defaults of the PyTorch reference (junyanz/pytorch-CycleGAN-and-pix2pix)."""
  c = ml_collections.ConfigDict()
  c.task = 'cyclegan'
  c.experiment = 'cyclegan'
  c.seed = 0
  c.dtype = 'float32'  # compute dtype: float32 | bfloat16; parameters stay float32

  c.data = ml_collections.ConfigDict()
  c.data.source = 'tfds:cycle_gan/horse2zebra'
  c.data.image_size = 256  # random crop
  c.data.load_size = 286  # resize before the crop
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
  c.train.pool_size = 50  # image pool of past fakes shown to D; 0 disables it
  c.train.instance_noise = 0.0  # std of Gaussian noise on D's inputs (0: off)
  c.train.instance_noise_steps = 0  # anneal that std linearly to 0 over N steps (0: constant)

  c.model = ml_collections.ConfigDict()
  c.model.generator = 'resnet_9blocks'
  c.model.discriminator = 'basic'
  c.model.n_layers = 3  # for discriminator 'n_layers'
  c.model.ngf = 64
  c.model.ndf = 64
  c.model.norm = 'instance'
  c.model.use_dropout = False

  c.loss = ml_collections.ConfigDict()
  c.loss.gan_mode = 'lsgan'  # lsgan | vanilla | hinge | wgangp
  c.loss.lambda_cycle = 10.0
  c.loss.lambda_identity = 0.5  # times lambda_cycle, as in the reference
  c.loss.lambda_gp = 10.0  # gradient penalty weight, gan_mode=wgangp only
  c.loss.real_label = 1.0  # < 1: one-sided label smoothing (vanilla, lsgan)

  c.eval = ml_collections.ConfigDict()
  c.eval.every = 10000  # steps between FID/KID of G(testA) vs testB, F(testB) vs testA; 0: off
  c.eval.num_images = 500  # first N test images per domain (0: all)
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


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  c = base_config()
  if variant == 'demo':
    # Learns the synthetic colour map visibly in a few minutes on 2 CPU cores.
    c.data.source = 'synthetic'
    c.data.image_size = 32
    c.data.load_size = 36
    c.data.batch_size = 4
    c.data.synthetic_size = 256
    c.model.generator = 'resnet_6blocks'
    c.model.ngf = 16
    c.model.ndf = 16
    c.train.epochs = 12
    c.train.epochs_decay = 12
    c.train.log_every = 50
    c.train.sample_every = 256
    c.train.checkpoint_every = 512
    # The synthetic B is the negative of A, so G(b) should be -b: the identity loss
    # (G(b) ~ b) fights the true map. Measured with experiments/score_synthetic.py
    # after 1536 steps: MAE 47.9 grey levels with lambda_identity 0.5, 24.7 without.
    c.loss.lambda_identity = 0.0
    c.eval.every = 0  # the demo needs nothing beyond the repository
  elif variant == 'smoke':
    c.data.source = 'synthetic'
    c.data.image_size = 32
    c.data.load_size = 32
    c.data.batch_size = 2
    c.data.synthetic_size = 8
    c.model.generator = 'resnet_6blocks'
    c.model.ngf = 8
    c.model.ndf = 8
    c.train.num_steps = 4
    c.train.epochs = 1
    c.train.epochs_decay = 1
    c.train.log_every = 1
    c.train.sample_every = 2
    c.train.sample_size = 2
    c.train.checkpoint_every = 2
    c.train.pool_size = 3
    c.eval.every = 0
    c.eval.num_images = 8
    c.eval.batch_size = 4
  return c
