"""pix2pix configs (Isola et al. 2017): the reference defaults, a CPU demo, a smoke test.

PixelGAN is the same experiment with the 1x1 discriminator:
--config.model.discriminator=pixel.

Reference run on aligned data (PATH/train, PATH/val; each file A|B side by side):
  python -m jaxgan.main --experiment pix2pix --workdir runs/maps \
      --config.data.source=aligned:../shared/datasets/maps
CPU demo on built-in synthetic pairs at 64² (a few minutes):
  python -m jaxgan.main --experiment pix2pix:demo --workdir runs/pix2pix_demo
The demo's settings on the real maps (aerial -> map):
  python -m jaxgan.main --experiment pix2pix:demo --workdir runs/pix2pix_maps \
      --config.data.source=aligned:../shared/datasets/maps
"""

import ml_collections

from jaxgan.configs import common



def base_config() -> ml_collections.ConfigDict:
  """Defaults of the PyTorch reference's pix2pix model (train.py --model pix2pix)."""
  c = common.base_config('pix2pix')
  common.optimizer_groups(c, 'gen', 'disc')  # generators, discriminators
  # No default dataset: pix2pix data is aligned pairs in a folder (there is no
  # tensorflow-datasets builder for them).
  c.data.source = ''
  c.data.direction = 'AtoB'  # AtoB: learn A -> B (left half -> right half); or BtoA

  c.model = ml_collections.ConfigDict()
  c.model.generator = 'unet_256'
  c.model.discriminator = 'basic'  # basic (70x70 PatchGAN) | n_layers | pixel (PixelGAN)
  c.model.n_layers = 3  # for discriminator 'n_layers'
  c.model.ngf = 64
  c.model.ndf = 64
  c.model.norm = 'batch'
  c.model.use_dropout = True  # dropout 0.5 in the innermost decoder blocks
  # How the generator runs at test time (translate, evaluation). True, as the reference
  # test script and the paper do: batch norm uses each image's own statistics and
  # dropout stays on (with a fixed key, so outputs are reproducible). False: running
  # averages and no dropout (the reference's --eval).
  c.model.test_batch_stats = True

  c.loss.gan_mode = 'vanilla'
  c.loss.lambda_l1 = 100.0
  c.eval.every = 10000  # FID, L1, PSNR and SSIM of G(A) against B on the val split
  return c


def _demo(c: ml_collections.ConfigDict) -> None:
  # Learns the synthetic colour map in a few minutes on 2 CPU cores; also runs on
  # real aligned data with data.source=aligned:PATH (the maps figure in BUILD_NOTES).
  c.data.source = 'synthetic'
  c.data.image_size = 64
  c.data.load_size = 72
  c.data.synthetic_size = 256
  c.model.generator = 'unet_64'
  c.model.ngf = 32
  c.model.ndf = 32
  c.train.epochs = 5  # 256 pairs per epoch: 2560 steps, ~20 steps/s on 2 CPU cores
  c.train.epochs_decay = 5
  c.train.log_every = 50
  c.train.sample_every = 256
  c.train.checkpoint_every = 512
  c.eval.every = 0  # the demo needs nothing beyond the repository


def _smoke(c: ml_collections.ConfigDict) -> None:
  c.data.source = 'synthetic'
  c.data.image_size = 64  # unet_64: the smallest U-Net with a dropout block
  c.data.load_size = 64
  c.data.batch_size = 2
  c.data.synthetic_size = 8
  c.model.generator = 'unet_64'
  c.model.ngf = 8
  c.model.ndf = 8
  common.smoke_run(c)


# name -> the function that turns the base config into that variant
VARIANTS = {'demo': _demo, 'smoke': _smoke}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return common.variant(base_config(), VARIANTS, variant)
