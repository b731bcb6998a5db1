"""MUNIT configs (Huang et al. 2018): NVlabs/MUNIT's edges2shoes defaults, a CPU demo
and a smoke test.

Reference run on a folder in the unaligned layout (PATH/trainA, trainB, testA, testB;
edges2shoes split into its two halves):
  python -m jaxgan.main --experiment munit --workdir runs/e2s \
      --config.data.source=folder:/data/edges2shoes
CPU demo on coloured MNIST (`colour_mnist:PATH`: gray digits -> digits in any palette,
both as RGB) from the IDX files in ../shared/datasets/mnist, at 32², narrow networks
(8000 steps at lr 4e-4, halved at 4000; ~19 minutes on the 2-core dev VM, 2026-12-04;
BUILD_NOTES):
  python -m jaxgan.main --experiment munit:demo --workdir runs/munit_demo
  python experiments/style_benchmark.py --workdir runs/munit_demo
  python -m jaxgan.translate --workdir runs/munit_demo --direction AtoB \
      --input DIGITS/ --output out/ --num-styles 4
  python -m jaxgan.sample --workdir runs/munit_demo --style-grid DIGITS/ --output grid.png
Smallest run, for tests:
  python -m jaxgan.main --experiment munit:smoke --workdir /tmp/munit_smoke

Adam's weight_decay 1e-4 is torch's coupled L2 (`optimizer.weight_decay`), the step
policy x0.5 every 100k iterations is `optimizer.schedule=step_decay`. Not matched:
  * vgg_w (the domain-invariant perceptual loss): 0 in these configs as in the
    reference's, and not implemented (no VGG-16 weights in the repository).
"""

import ml_collections

from jaxgan.configs import common

SHARED_COLOUR_MNIST = 'colour_mnist:../shared/datasets/mnist'


def base_config() -> ml_collections.ConfigDict:
  """Defaults of NVlabs/MUNIT configs/edges2shoes_folder.yaml."""
  c = common.base_config('munit')
  common.optimizer_groups(c, 'gen', 'disc')  # (G_A, G_B), (D_A, D_B)
  c.data.source = ''  # no default dataset: a folder:PATH in the unaligned layout
  c.data.load_size = 256  # new_size: the reference resizes, then crops 256x256
  c.data.image_size = 256
  c.data.batch_size = 1

  c.train.num_steps = 1_000_000  # max_iter
  c.train.log_every = 10
  c.train.sample_every = 10000  # image_save_iter
  c.train.checkpoint_every = 10000  # snapshot_save_iter

  c.model = ml_collections.ConfigDict()
  c.model.dim = 64  # gen.dim: the generators' first conv width
  c.model.mlp_dim = 256
  c.model.style_dim = 8
  c.model.n_downsample = 2  # content encoder; the style encoder always has 4
  c.model.n_res = 4  # residual blocks of the content encoder and of the decoder
  c.model.dis_dim = 64
  c.model.dis_n_layer = 4  # stride-2 convs per scale
  c.model.dis_num_scales = 3
  # N(0, 0.02), as the reference's trainer re-initialises its discriminators; or
  # kaiming (what its generators and its `init: kaiming` key use).
  c.model.dis_init = 'gaussian'

  c.loss.gan_mode = 'lsgan'
  c.loss.gan_w = 1.0
  c.loss.recon_x_w = 10.0  # |dec(enc(x)) - x|, within each domain
  c.loss.recon_s_w = 1.0  # |style of a translation - the random style it was given|
  c.loss.recon_c_w = 1.0  # |content of a translation - the content it was given|
  c.loss.recon_x_cyc_w = 0.0  # explicit style-augmented cycle |x_aba - x_a| (0: off)

  c.optimizer.lr = 1e-4
  c.optimizer.b1 = 0.5
  c.optimizer.b2 = 0.999
  c.optimizer.weight_decay = 1e-4
  c.optimizer.schedule = 'step_decay'  # lr_policy step: x gamma 0.5 every step_size 100k
  c.optimizer.decay_every = 100_000
  c.optimizer.decay_factor = 0.5
  c.eval.every = 10000  # FID/KID of AtoB(testA) vs testB and BtoA(testB) vs testA
  return c


def _demo(c: ml_collections.ConfigDict) -> None:
  c.data.source = SHARED_COLOUR_MNIST
  c.data.image_size = 32
  c.data.load_size = 32
  c.data.flip = False  # digits are not mirror-symmetric
  c.data.batch_size = 4
  c.model.dim = 16
  c.model.mlp_dim = 64
  c.model.n_res = 2
  c.model.dis_dim = 16
  # 32² with 3 scales allows 3 layers per scale (`models.munit.min_image_size`).
  c.model.dis_n_layer = 3
  # 4x the reference's rate at batch 4 and narrow nets, halved at the midpoint (the
  # reference's step policy): at 1e-4 the random-style outputs were still smeared
  # after 3000 steps (BUILD_NOTES).
  c.optimizer.lr = 4e-4
  c.optimizer.decay_every = 4000
  c.train.num_steps = 8000
  c.train.log_every = 50
  c.train.sample_every = 500
  c.train.checkpoint_every = 1000
  c.eval.every = 0  # the demo needs nothing beyond the repository


def _smoke(c: ml_collections.ConfigDict) -> None:
  c.data.source = 'synthetic'
  c.data.image_size = 16
  c.data.load_size = 16
  c.data.batch_size = 2
  c.data.synthetic_size = 8
  c.model.dim = 4
  c.model.mlp_dim = 8
  c.model.style_dim = 4
  c.model.n_res = 1
  c.model.dis_dim = 4
  # The smallest 3-scale discriminator a 16² image allows (min_image_size).
  c.model.dis_n_layer = 2
  # At 4 channels N(0, 0.02) leaves D's outputs at ~1e-3: every loss then sits at
  # its value for D(x) = 0, where knobs such as label smoothing change nothing that
  # a smoke test could see. Kaiming keeps them O(1).
  c.model.dis_init = 'kaiming'
  common.smoke_run(c)


# name -> the function that turns the base config into that variant
VARIANTS = {'demo': _demo, 'smoke': _smoke}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return common.variant(base_config(), VARIANTS, variant)
