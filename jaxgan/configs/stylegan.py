"""StyleGAN configs: StyleGAN2 (modulated convolution) or StyleGAN1 (AdaIN, NVlabs
stylegan's synthesis network without progressive growing) synthesis, with the
defaults of NVlabs' stylegan2-ada-pytorch `auto` preset (for both).

Any one-domain source works (mnist:PATH, tfds:NAME, folder:PATH with trainA/, the A
halves of aligned:PATH); images are resized to `data.image_size`, a power of two:
  python -m jaxgan.main --experiment stylegan --workdir runs/sg \
      --config.data.source=mnist:../shared/datasets/mnist --config.data.image_size=32
AdaIN synthesis instead of modulated convolution: --config.model.synthesis=adain
(StyleGAN1's synthesis network; the mapping, D and objective stay these).
CPU demo on the MNIST IDX files in ../shared/datasets/mnist (small channels, 32x32;
6000 iterations of 32 images, about 20 minutes on one core of the 2-core dev VM):
  python -m jaxgan.main --experiment stylegan:demo --workdir runs/stylegan_demo
It covers MNIST's ten digits (python experiments/mode_coverage.py --workdir W): the
reference's `cifar` preset at small widths, with ADA, R1 gamma 1 and D at twice G's
learning rate (see `_demo`; BUILD_NOTES.md, "StyleGAN on CPU (issue 20)", has the
trials: with cifar's gamma 0.01 or the `auto` settings these widths collapse to one or
two digits). The same recipe with StyleGAN1's synthesis:
  python -m jaxgan.main --experiment stylegan:demo --workdir runs/adain_demo \
      --config.model.synthesis=adain
Augmentation of D's inputs: augment.policy=ada (the demo's) | diffaugment | none
(configs/common.py).
The aerial halves of the maps at 64x64:
  python -m jaxgan.main --experiment stylegan:maps --workdir runs/stylegan_maps
Samples, truncation and the style-mixing figure from a checkpoint:
  python -m jaxgan.sample --workdir runs/stylegan_demo --seeds 0-63 --output grid.png
Parameter counts: python -m jaxgan.params --experiment stylegan
"""

import ml_collections

from jaxgan.configs import common


SHARED_MNIST = 'mnist:../shared/datasets/mnist'
SHARED_MAPS = 'aligned:../shared/datasets/maps'


def base_config() -> ml_collections.ConfigDict:
  """stylegan2-ada-pytorch's `auto` preset (map 2, channel_base 16384, batch 32)."""
  c = common.base_config('stylegan')
  common.optimizer_groups(c, 'gen', 'disc')
  c.data.source = ''  # a one-domain source is required (no default dataset)
  c.data.image_size = 64  # a power of two; images are resized (no crop)
  c.data.load_size = 64
  c.data.flip = False  # the reference's --mirror is off by default
  c.data.batch_size = 32

  c.model = ml_collections.ConfigDict()
  c.model.synthesis = 'modulated'  # modulated (StyleGAN2) | adain (StyleGAN1)
  c.model.z_dim = 512
  c.model.w_dim = 512
  c.model.map_layers = 2  # 8 in the papers' configs
  c.model.channel_base = 16384  # channels min(channel_base / res, channel_max)
  c.model.channel_max = 512
  c.model.architecture = 'resnet'  # the discriminator: resnet | orig
  c.model.mbstd_group_size = 4
  c.model.style_mixing = 0.9  # probability of mixing two z's styles in training
  c.model.w_avg_beta = 0.995  # running average of w, for truncation
  c.model.noise_mode = 'const'  # at sampling and evaluation: random | const | none
  c.model.truncation_psi = 1.0  # at sampling and evaluation (1: no truncation)
  # Clamp every conv's output to +-conv_clamp (the reference's conv_clamp, 256 in its
  # fp16 configs; 0: off). Set by an imported snapshot (jaxgan.convert), usable in
  # training too.
  c.model.conv_clamp = 0.0
  # The synthesis buffers: 'default' (const noise from a fixed seed, the [1, 3, 3, 1]
  # resampling filters) | 'stored' (kept in the state's aux, as an imported snapshot's).
  c.model.buffers = 'default'

  c.loss.gan_mode = 'vanilla'  # the non-saturating logistic loss
  c.loss.gp = 'r1'  # R1 on reals, lazily every 16 D steps
  c.loss.gp_every = 16
  c.loss.lambda_gp = 0.0  # R1 gamma; 0 with r1_gamma_auto: 0.0002 * res^2 / batch
  c.loss.r1_gamma_auto = True
  c.loss.pl_weight = 2.0  # path-length regularisation (0: off)
  c.loss.pl_every = 4
  c.loss.pl_decay = 0.01
  c.loss.pl_batch_shrink = 2

  c.optimizer.lr = 0.0025
  c.optimizer.b1 = 0.0
  c.optimizer.b2 = 0.99
  c.optimizer.eps = 1e-8
  c.optimizer.schedule = 'constant'

  c.ema.half_life_images = 10000.0  # the reference's ema_kimg = batch * 10 / 32
  c.ema.rampup = 0.05

  c.train.num_steps = 100000
  c.train.sample_every = 1000
  c.train.sample_size = 8  # an 8x8 grid of fixed z
  c.eval.every = 10000
  c.eval.num_images = 10000  # FID of N EMA samples against N real images
  return c


def _demo(c: ml_collections.ConfigDict) -> None:
  """The CPU recipe that covers MNIST's ten digits (BUILD_NOTES.md, "StyleGAN on CPU
  (issue 20)"): the reference's `cifar` preset (its per-GPU batch of 32, minibatch
  stddev over it, 'orig' D, no path length, no style mixing, G EMA of 500k images
  capped at 5% of the images seen) at small widths, with ADA, R1 gamma 1 (at cifar's
  0.01 the tiny nets hop between one or two digits) and D at twice G's learning
  rate."""
  c.data.source = SHARED_MNIST
  c.data.image_size = c.data.load_size = 32
  c.data.channels = 1
  c.data.batch_size = 32
  c.model.z_dim = c.model.w_dim = 64
  c.model.channel_base = 512  # 16 channels at 32x32, 64 (max) at 8x8 and 4x4
  c.model.channel_max = 64
  c.model.architecture = 'orig'
  c.model.mbstd_group_size = 32
  c.model.style_mixing = 0.0
  c.loss.pl_weight = 0.0  # G keeps its lazy Adam correction (pl_every), as the reference
  c.loss.lambda_gp = 1.0
  c.optimizer.groups.disc.lr = 0.005
  c.augment.policy = 'ada'
  c.augment.ada_kimg = 100.0  # p moves up to 1 per 100k images (the reference's: 500k)
  c.ema.half_life_images = 500000.0  # cifar's ema_kimg 500, capped by the rampup
  # ~0.2 s per iteration on one core of the 2-core dev VM: 6000 iterations (192k
  # images) in 20 minutes.
  c.train.num_steps = 6000
  c.train.log_every = 50
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  c.eval.every = 0  # FID afterwards: python -m jaxgan.evaluate --workdir ...


def _maps(c: ml_collections.ConfigDict) -> None:
  c.data.source = SHARED_MAPS  # the aerial photos (the A halves)
  c.data.image_size = c.data.load_size = 64
  c.data.batch_size = 16
  c.model.channel_base = 4096
  c.model.channel_max = 256
  c.ema.half_life_images = 5000.0
  c.train.num_steps = 20000
  c.eval.num_images = 1000


def _smoke(c: ml_collections.ConfigDict) -> None:
  c.data.source = 'synthetic'  # one domain of it (A); no files needed
  c.data.image_size = c.data.load_size = 16
  c.data.batch_size = 4
  c.data.synthetic_size = 8
  c.model.z_dim = c.model.w_dim = 8
  c.model.channel_base = 64
  c.model.channel_max = 16
  c.model.mbstd_group_size = 2
  c.loss.gp_every = 2
  c.loss.pl_every = 2
  c.ema.half_life_images = 40.0
  common.smoke_run(c)


# name -> the function that turns the base config into that variant
VARIANTS = {'demo': _demo, 'maps': _maps, 'smoke': _smoke}


def get_config(variant: str = '') -> ml_collections.ConfigDict:
  return common.variant(base_config(), VARIANTS, variant)
