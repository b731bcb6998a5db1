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

from jaxgan.configs import common



def base_config() -> ml_collections.ConfigDict:
  """Defaults of the PyTorch reference (junyanz/pytorch-CycleGAN-and-pix2pix)."""
  c = common.base_config('cyclegan')
  common.optimizer_groups(c, 'gen', 'disc')  # generators, discriminators
  c.data.source = 'tfds:cycle_gan/horse2zebra'
  c.train.pool_size = 50  # image pool of past fakes shown to D; 0 disables it

  c.model = ml_collections.ConfigDict()
  c.model.generator = 'resnet_9blocks'
  c.model.discriminator = 'basic'
  c.model.n_layers = 3  # for discriminator 'n_layers'
  c.model.ngf = 64
  c.model.ndf = 64
  c.model.norm = 'instance'
  c.model.use_dropout = False

  c.loss.gan_mode = 'lsgan'
  c.loss.lambda_cycle = 10.0
  c.loss.lambda_identity = 0.5  # times lambda_cycle, as in the reference
  c.eval.every = 10000  # FID/KID of G(testA) vs testB and F(testB) vs testA
  return c


def _demo(c: ml_collections.ConfigDict) -> None:
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
  # (G(b) ~ b) fights the true map. Measured against the synthetic ground truth
  # after 1536 steps: MAE 47.9 grey levels with lambda_identity 0.5, 24.7 without
  # (l1_AtoB 0.38 vs 0.19 in `python -m jaxgan.evaluate`'s [-1, 1] units).
  c.loss.lambda_identity = 0.0
  c.eval.every = 0  # the demo needs nothing beyond the repository


def _smoke(c: ml_collections.ConfigDict) -> None:
  c.data.source = 'synthetic'
  c.data.image_size = 32
  c.data.load_size = 32
  c.data.batch_size = 2
  c.data.synthetic_size = 8
  # 2 residual blocks: the test suite builds this step dozens of times, and each
  # block is graph to trace, compile and load (6 -> 2: 9.0 -> 6.9 CPU-s for the
  # first step's compile). tests/test_golden.py pins the 6-block numbers of before.
  c.model.generator = 'resnet_2blocks'
  c.model.ngf = 8
  c.model.ndf = 8
  common.smoke_run(c)
  c.train.pool_size = 3


# name -> the function that turns the base config into that variant
VARIANTS = {'demo': _demo, 'smoke': _smoke}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return common.variant(base_config(), VARIANTS, variant)
