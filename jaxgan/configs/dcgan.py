"""DCGAN configs (Radford et al. 2016) on MNIST: the reference settings, a CPU demo and
a smoke test.

Full run (28x28 digits resized to 32x32, 25 epochs, FID of 10,000 samples against the
MNIST test set every 5000 steps):
  python -m jaxgan.main --experiment dcgan --workdir runs/mnist \
      --config.data.source=mnist:../shared/datasets/mnist
(the default source, tfds:mnist, needs tensorflow-datasets' prepared MNIST.)
CPU demo on the MNIST IDX files in ../shared/datasets/mnist (a few minutes):
  python -m jaxgan.main --experiment dcgan:demo --workdir runs/dcgan_demo
FID of a checkpoint (10,000 samples vs the 10,000 test digits):
  python -m jaxgan.evaluate --workdir runs/dcgan_demo
"""

import ml_collections

from jaxgan.configs import common


SHARED_MNIST = 'mnist:../shared/datasets/mnist'


def base_config() -> ml_collections.ConfigDict:
  """DCGAN paper / PyTorch examples' dcgan settings, at MNIST's scale."""
  c = common.base_config('dcgan')
  common.optimizer_groups(c, 'gen', 'disc')  # generators, discriminators
  c.data.source = 'tfds:mnist'  # offline: mnist:PATH (the four IDX files, .gz or not)
  c.data.image_size = 32  # a power of two: the nets halve/double it down to 4x4
  c.data.load_size = 32  # the 28x28 digits are resized (bicubic) to 32x32
  c.data.channels = 1
  c.data.flip = False  # digits are not mirror-symmetric
  c.data.batch_size = 128

  c.model = ml_collections.ConfigDict()
  c.model.latent_dim = 100  # z ~ N(0, I) in R^latent_dim
  c.model.ngf = 64
  c.model.ndf = 64

  c.train.epochs = 25  # the PyTorch example's niter
  c.train.epochs_decay = 0  # constant learning rate
  c.train.sample_every = 500
  c.train.sample_size = 8  # the fixed-noise grid is sample_size x sample_size

  c.loss.gan_mode = 'vanilla'  # non-saturating BCE
  c.eval.every = 5000
  c.eval.num_images = 10000  # samples, against as many test digits (0: all)
  return c


def _demo(c: ml_collections.ConfigDict) -> None:
  c.data.source = SHARED_MNIST
  c.data.batch_size = 64
  c.model.ngf = 32
  c.model.ndf = 32
  c.train.num_steps = 3000  # 3.5-7 min on 2 CPU cores; digits appear by ~1000
  c.train.log_every = 50
  c.train.sample_every = 250
  c.train.checkpoint_every = 1000
  c.eval.every = 0  # FID afterwards: python -m jaxgan.evaluate --workdir ...


def _smoke(c: ml_collections.ConfigDict) -> None:
  c.data.source = 'synthetic'  # one domain of it (A); no files needed
  c.data.image_size = 16
  c.data.load_size = 16
  c.data.batch_size = 4
  c.data.synthetic_size = 8
  c.model.latent_dim = 8
  c.model.ngf = 8
  c.model.ndf = 8
  common.smoke_run(c)


# name -> the function that turns the base config into that variant
VARIANTS = {'demo': _demo, 'smoke': _smoke}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return common.variant(base_config(), VARIANTS, variant)
