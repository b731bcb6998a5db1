"""A PyTorch baseline of jaxgan's training iteration, for A/B speed comparisons.

  python experiments/torch_baseline.py --experiment cyclegan --size 64 --batch 1 \
      --steps 5 --warmup 1 [--threads N] [--device cpu|cuda] \
      [--dtype float32|bfloat16] [--channels-last] [--json]
  python experiments/torch_baseline.py --experiment stylegan:demo --reference-dir PATH \
      [--size 32] [--batch 16] [--config.KEY=VALUE ...] --steps 5 --warmup 1 [--json]

A re-implementation, from the papers and from junyanz/pytorch-CycleGAN-and-pix2pix
(models/networks.py, models/cycle_gan_model.py, models/pix2pix_model.py,
util/image_pool.py) and pytorch/examples dcgan/main.py, of one training iteration
exactly as those references run it:

  cyclegan  two ResNet-9-block generators (reflect padding, InstanceNorm2d without
            affine or running statistics, no dropout, ConvTranspose2d upsampling),
            two 70x70 PatchGANs (instance norm), LSGAN (MSELoss), cycle weight 10,
            identity weight 0.5 * 10, image pools of 50; `optimize_parameters`:
            forward G and F, G/F step with the discriminators frozen, then D_A and
            D_B on pooled fakes, each loss halved.
  pix2pix   U-Net generator (batch norm, dropout 0.5 in the ngf*8 middle blocks),
            conditional 70x70 PatchGAN on (input, output) pairs, vanilla GAN loss
            (BCEWithLogitsLoss), L1 weight 100; D step first, then G.
  dcgan     the PyTorch examples' netG/netD (nz 100, ngf = ndf = 64, batch norm,
            sigmoid + BCELoss), generalised from 64x64 to any power-of-two size >= 8
            the way jaxgan's DCGAN is (one stride-2 stage more or less per doubling).
  stylegan  not a port: NVlabs stylegan2-ada-pytorch's own training/networks.py
            Generator and Discriminator and training/loss.py StyleGAN2Loss, imported
            from the clone --reference-dir names (never copied here), at jaxgan's
            config stylegan[:VARIANT] with --config overrides (mapped by
            `stylegan_reference_kwargs`), run as its training/training_loop.py runs
            a batch: the phases Gmain, Greg (every pl_every), Dmain, Dreg (every
            gp_every) with its lazy Adam correction, nan_to_num and optimizer steps,
            then the G_ema update. CPU and float32 only (its CUDA plugins are never
            built; the CPU takes its reference paths). Timed as
            experiments/bench_step.py times jaxgan: each step function (main = Gmain
            + Dmain, g_reg, d_reg, ema) apart, and the iteration amortized, the
            medians over their intervals summed (the JSON's `phases` has each); the
            JSON also has the reference's commit and kwargs, its loss statistics and
            any warnings raised while it ran.

The first three use Adam(lr 2e-4, betas (0.5, 0.999)) and the references' N(0, 0.02)
init. Data are random tensors in [-1, 1] made once (as jaxgan's
experiments/bench_step.py), so no input pipeline is timed. pix2pix picks the U-Net by
size as jaxgan's configs do (unet_256 at 256 and its multiples, unet_32/64/128 below;
--generator overrides).

Before timing, the parameter count of every network is checked against jaxgan's for
the same settings (`jaxgan.params.counts`); a mismatch is a one-line error. Then
--warmup iterations (not timed) and --steps timed ones (torch.cuda.synchronize after
each on a GPU); the script prints the median / min / max seconds per iteration and
images/s, or with --json one JSON line of the same figures, plus first_s (the first
warm-up iteration's seconds, timed apart: cuDNN autotuning and allocator growth),
peak_mb (torch.cuda.max_memory_allocated, reset before the model is built; null on the
CPU), the device name, CUDA and cuDNN versions and the TF32 switches. --dtype bfloat16 runs the
forward passes and losses under torch.autocast(dtype=torch.bfloat16) (AMP; parameters
and optimizer state stay float32, as jaxgan's dtype=bfloat16).

Importable without side effects (the functions are used by
tests/test_torch_baseline.py and experiments/bench_compare.py). Needs PyTorch:
pip install -e '.[bench]'.
"""

import argparse
import contextlib
import copy
import dataclasses
import functools
import importlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import time
import types
import warnings

try:
  import torch
  from torch import nn
except ImportError:  # The module still imports; `require_torch` says how to install.
  torch = nn = None

PROG = 'torch_baseline'
EXPERIMENTS = ('cyclegan', 'pix2pix', 'dcgan')
DTYPES = ('float32', 'bfloat16')
RESNETS = {'resnet_6blocks': 6, 'resnet_9blocks': 9}
UNETS = {'unet_32': 5, 'unet_64': 6, 'unet_128': 7, 'unet_256': 8}
DCGAN_MIN_SIZE = 8

# Base class of the networks: nn.Module, or `object` when torch is missing (the
# classes are then defined but never built: `require_torch` fails first).
_Module = nn.Module if nn is not None else object


class BaselineError(Exception):
  """Bad settings; the CLI turns it into a one-line `torch_baseline: error: ...`."""


def require_torch():
  if torch is None:
    raise SystemExit(f"{PROG}: error: PyTorch is not installed; pip install -e '.[bench]' "
                     '(CPU only: pip install torch --index-url '
                     'https://download.pytorch.org/whl/cpu)')


# -- settings ----------------------------------------------------------------------


def default_generator(experiment: str, size: int) -> str:
  """The generator jaxgan's config uses for `experiment` at `size` (pix2pix: the
  U-Net whose 1x1 bottleneck the size reaches, unet_256 at 256 and above)."""
  if experiment == 'cyclegan':
    return 'resnet_9blocks'
  if experiment == 'pix2pix':
    for name in ('unet_256', 'unet_128', 'unet_64', 'unet_32'):
      if size % 2 ** UNETS[name] == 0:
        return name
    raise BaselineError(f'pix2pix needs --size a multiple of 32 (U-Nets unet_32 .. '
                        f'unet_256 halve it 5 to 8 times); got {size}')
  return ''


@dataclasses.dataclass
class Settings:
  """One benchmark configuration; defaults are the references' (full-size nets)."""
  experiment: str = 'cyclegan'
  size: int = 64
  batch: int = 1
  channels: int = 3
  ngf: int = 64
  ndf: int = 64
  generator: str = ''  # '' = default_generator(experiment, size)
  latent_dim: int = 100  # dcgan's nz
  pool_size: int = 50  # cyclegan's image pools
  lambda_cycle: float = 10.0  # cyclegan's lambda_A = lambda_B
  lambda_identity: float = 0.5  # times lambda_cycle
  lambda_l1: float = 100.0  # pix2pix
  lr: float = 2e-4
  beta1: float = 0.5

  def __post_init__(self):
    if self.experiment not in EXPERIMENTS:
      raise BaselineError(f'unknown experiment {self.experiment!r}; valid: '
                          + ', '.join(EXPERIMENTS))
    for key in ('size', 'batch', 'channels', 'ngf', 'ndf', 'latent_dim'):
      if getattr(self, key) < 1:
        raise BaselineError(f'{key}={getattr(self, key)} must be >= 1')
    if not self.generator:
      self.generator = default_generator(self.experiment, self.size)
    if self.experiment == 'cyclegan':
      if self.generator not in RESNETS:
        raise BaselineError(f'cyclegan generator {self.generator!r}; valid: '
                            + ', '.join(RESNETS))
      if self.size % 4:
        raise BaselineError(f'cyclegan needs --size a multiple of 4 (two stride-2 '
                            f'levels); got {self.size}')
    elif self.experiment == 'pix2pix':
      if self.generator not in UNETS:
        raise BaselineError(f'pix2pix generator {self.generator!r}; valid: '
                            + ', '.join(UNETS))
      multiple = 2 ** UNETS[self.generator]
      if self.size % multiple:
        raise BaselineError(f'pix2pix {self.generator} needs --size a multiple of '
                            f'{multiple}; got {self.size}')
    elif self.size < DCGAN_MIN_SIZE or self.size & (self.size - 1):
      raise BaselineError(f'dcgan needs --size a power of two >= {DCGAN_MIN_SIZE}; '
                          f'got {self.size}')


# -- networks (models/networks.py of the CycleGAN/pix2pix reference) ---------------


def get_norm_layer(norm_type):
  """The reference's get_norm_layer: batch (affine, running stats) or instance
  (no affine, no running statistics)."""
  if norm_type == 'batch':
    return lambda n: nn.BatchNorm2d(n, affine=True, track_running_stats=True)
  if norm_type == 'instance':
    return lambda n: nn.InstanceNorm2d(n, affine=False, track_running_stats=False)
  raise BaselineError(f'norm {norm_type!r}')


class ResnetBlock(_Module):

  def __init__(self, dim, norm_layer, use_dropout, use_bias):
    super().__init__()
    block = [nn.ReflectionPad2d(1),
             nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
             norm_layer(dim), nn.ReLU(True)]
    if use_dropout:
      block += [nn.Dropout(0.5)]
    block += [nn.ReflectionPad2d(1),
              nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
              norm_layer(dim)]
    self.conv_block = nn.Sequential(*block)

  def forward(self, x):
    return x + self.conv_block(x)


class ResnetGenerator(_Module):
  """c7s1-ngf, two stride-2 convs, n_blocks ResnetBlocks, two ConvTranspose2d (3x3,
  stride 2, output_padding 1), c7s1-output_nc, tanh; reflect padding."""

  def __init__(self, input_nc, output_nc, ngf=64, norm='instance', use_dropout=False,
               n_blocks=9):
    super().__init__()
    norm_layer = get_norm_layer(norm)
    use_bias = norm == 'instance'
    model = [nn.ReflectionPad2d(3),
             nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
             norm_layer(ngf), nn.ReLU(True)]
    n_downsampling = 2
    for i in range(n_downsampling):
      mult = 2 ** i
      model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1,
                          bias=use_bias),
                norm_layer(ngf * mult * 2), nn.ReLU(True)]
    mult = 2 ** n_downsampling
    for _ in range(n_blocks):
      model += [ResnetBlock(ngf * mult, norm_layer, use_dropout, use_bias)]
    for i in range(n_downsampling):
      mult = 2 ** (n_downsampling - i)
      model += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3,
                                   stride=2, padding=1, output_padding=1, bias=use_bias),
                norm_layer(int(ngf * mult / 2)), nn.ReLU(True)]
    model += [nn.ReflectionPad2d(3),
              nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0),
              nn.Tanh()]
    self.model = nn.Sequential(*model)

  def forward(self, x):
    return self.model(x)


class UnetSkipConnectionBlock(_Module):
  """X -> [down -> submodule -> up] concatenated with X (except the outermost).

  As in the reference, the LeakyReLU opening a non-outermost block is in place, so
  the skip connection carries leaky_relu(X)."""

  def __init__(self, outer_nc, inner_nc, input_nc=None, submodule=None, outermost=False,
               innermost=False, norm='batch', use_dropout=False):
    super().__init__()
    self.outermost = outermost
    norm_layer = get_norm_layer(norm)
    use_bias = norm == 'instance'
    if input_nc is None:
      input_nc = outer_nc
    downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1,
                         bias=use_bias)
    downrelu = nn.LeakyReLU(0.2, True)
    downnorm = norm_layer(inner_nc)
    uprelu = nn.ReLU(True)
    upnorm = norm_layer(outer_nc)
    if outermost:
      upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2,
                                  padding=1)
      model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
    elif innermost:
      upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2,
                                  padding=1, bias=use_bias)
      model = [downrelu, downconv, uprelu, upconv, upnorm]
    else:
      upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2,
                                  padding=1, bias=use_bias)
      model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
      if use_dropout:
        model += [nn.Dropout(0.5)]
    self.model = nn.Sequential(*model)

  def forward(self, x):
    if self.outermost:
      return self.model(x)
    return torch.cat([x, self.model(x)], 1)


class UnetGenerator(_Module):
  """num_downs stride-2 levels (1x1 bottleneck at 2**num_downs input); the
  num_downs - 5 ngf*8 middle blocks get dropout when use_dropout."""

  def __init__(self, input_nc, output_nc, num_downs, ngf=64, norm='batch',
               use_dropout=False):
    super().__init__()
    if num_downs < 5:
      raise BaselineError(f'U-Net num_downs={num_downs} must be >= 5')
    block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, norm=norm, innermost=True)
    for _ in range(num_downs - 5):
      block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm,
                                      use_dropout=use_dropout)
    block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
    block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
    block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm=norm)
    self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc,
                                         submodule=block, outermost=True, norm=norm)

  def forward(self, x):
    return self.model(x)


class NLayerDiscriminator(_Module):
  """PatchGAN; n_layers=3 is the 70x70 one. Returns logits (no sigmoid)."""

  def __init__(self, input_nc, ndf=64, n_layers=3, norm='batch'):
    super().__init__()
    norm_layer = get_norm_layer(norm)
    use_bias = norm == 'instance'
    kw, padw = 4, 1
    sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
                nn.LeakyReLU(0.2, True)]
    nf_mult = 1
    for n in range(1, n_layers):
      nf_mult_prev, nf_mult = nf_mult, min(2 ** n, 8)
      sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2,
                             padding=padw, bias=use_bias),
                   norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
    nf_mult_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
    sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1,
                           padding=padw, bias=use_bias),
                 norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True),
                 nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
    self.model = nn.Sequential(*sequence)

  def forward(self, x):
    return self.model(x)


def init_weights(net, gain=0.02):
  """The reference's init_weights(net, 'normal', 0.02) (= the DCGAN example's
  weights_init): conv weights N(0, gain), biases 0, batch-norm scale N(1, gain)."""

  def init_func(m):
    classname = m.__class__.__name__
    if hasattr(m, 'weight') and (classname.find('Conv') != -1
                                 or classname.find('Linear') != -1):
      nn.init.normal_(m.weight.data, 0.0, gain)
      if getattr(m, 'bias', None) is not None:
        nn.init.constant_(m.bias.data, 0.0)
    elif classname.find('BatchNorm2d') != -1:
      nn.init.normal_(m.weight.data, 1.0, gain)
      nn.init.constant_(m.bias.data, 0.0)

  net.apply(init_func)
  return net


# -- DCGAN (pytorch/examples dcgan/main.py, any power-of-two size) ----------------


def dcgan_stages(size: int) -> int:
  """Stride-2 stages between 4x4 and size (4 at the example's 64x64)."""
  return int(size).bit_length() - 3


class DCGANGenerator(_Module):
  """z [N, nz, 1, 1] -> [N, nc, S, S]: ConvTranspose 4x4 to ngf*2**(n-1) at 4x4,
  then stride-2 ConvTransposes halving the features (BN + ReLU after each), then to
  nc and tanh. No biases. At S = 64 this is the example's netG."""

  def __init__(self, nz=100, ngf=64, nc=3, size=64):
    super().__init__()
    n = dcgan_stages(size)
    layers = [nn.ConvTranspose2d(nz, ngf * 2 ** (n - 1), 4, 1, 0, bias=False),
              nn.BatchNorm2d(ngf * 2 ** (n - 1)), nn.ReLU(True)]
    for i in range(1, n):
      layers += [nn.ConvTranspose2d(ngf * 2 ** (n - i), ngf * 2 ** (n - 1 - i), 4, 2, 1,
                                    bias=False),
                 nn.BatchNorm2d(ngf * 2 ** (n - 1 - i)), nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
    self.main = nn.Sequential(*layers)

  def forward(self, z):
    return self.main(z)


class DCGANDiscriminator(_Module):
  """[N, nc, S, S] -> probabilities [N]: stride-2 convs doubling the features from
  ndf (BN after all but the first, LeakyReLU 0.2), a 4x4 valid conv, sigmoid. No
  biases. At S = 64 this is the example's netD."""

  def __init__(self, ndf=64, nc=3, size=64):
    super().__init__()
    n = dcgan_stages(size)
    layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
    for i in range(1, n):
      layers += [nn.Conv2d(ndf * 2 ** (i - 1), ndf * 2 ** i, 4, 2, 1, bias=False),
                 nn.BatchNorm2d(ndf * 2 ** i), nn.LeakyReLU(0.2, inplace=True)]
    layers += [nn.Conv2d(ndf * 2 ** (n - 1), 1, 4, 1, 0, bias=False), nn.Sigmoid()]
    self.main = nn.Sequential(*layers)

  def forward(self, x):
    return self.main(x).view(-1, 1).squeeze(1)


# -- training pieces ---------------------------------------------------------------


class ImagePool:
  """util/image_pool.py's ImagePool: while fewer than pool_size images are stored,
  store and return each image; then with probability 1/2 return a uniformly chosen
  stored image and store the new one in its place, else return the new image.
  `rng` defaults to Python's `random` module, as the reference's."""

  def __init__(self, pool_size, rng=None):
    self.pool_size = pool_size
    self.rng = rng if rng is not None else random
    self.num_imgs = 0
    self.images = []

  def query(self, images):
    if self.pool_size == 0:
      return images
    return_images = []
    for image in images:
      image = torch.unsqueeze(image.data, 0)
      if self.num_imgs < self.pool_size:
        self.num_imgs += 1
        self.images.append(image)
        return_images.append(image)
      elif self.rng.uniform(0, 1) > 0.5:
        random_id = self.rng.randint(0, self.pool_size - 1)  # inclusive
        tmp = self.images[random_id].clone()
        self.images[random_id] = image
        return_images.append(tmp)
      else:
        return_images.append(image)
    return torch.cat(return_images, 0)


class GANLoss(_Module):
  """networks.GANLoss for 'lsgan' (MSELoss) and 'vanilla' (BCEWithLogitsLoss)."""

  def __init__(self, gan_mode, target_real_label=1.0, target_fake_label=0.0):
    super().__init__()
    self.register_buffer('real_label', torch.tensor(target_real_label))
    self.register_buffer('fake_label', torch.tensor(target_fake_label))
    if gan_mode == 'lsgan':
      self.loss = nn.MSELoss()
    elif gan_mode == 'vanilla':
      self.loss = nn.BCEWithLogitsLoss()
    else:
      raise BaselineError(f'gan_mode {gan_mode!r}')

  def forward(self, prediction, target_is_real):
    target = self.real_label if target_is_real else self.fake_label
    return self.loss(prediction, target.expand_as(prediction))


def set_requires_grad(nets, requires_grad):
  for net in nets:
    for param in net.parameters():
      param.requires_grad = requires_grad


def count_params(net) -> int:
  """Trainable parameters (buffers such as batch-norm running statistics excluded)."""
  return sum(p.numel() for p in net.parameters())


class Model:
  """Shared plumbing: device, AMP context, memory format, random data."""
  networks: dict  # jaxgan's network name -> nn.Module

  def __init__(self, settings: Settings, device='cpu', dtype='float32',
               channels_last=False):
    require_torch()
    if dtype not in DTYPES:
      raise BaselineError(f'dtype {dtype!r}; valid: ' + ', '.join(DTYPES))
    self.s = settings
    self.device = torch.device(device)
    self.bf16 = dtype == 'bfloat16'
    self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

  def _place(self, *nets):
    for net in nets:
      init_weights(net)
      net.to(self.device, memory_format=self.memory_format)
      net.train()
    return nets

  def autocast(self):
    if not self.bf16:
      return contextlib.nullcontext()
    return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

  def images(self, generator, channels=None):
    """Random images in [-1, 1] of the configured shape, on the device."""
    s = self.s
    shape = (s.batch, channels or s.channels, s.size, s.size)
    x = torch.rand(shape, generator=generator) * 2 - 1
    return x.to(self.device).contiguous(memory_format=self.memory_format)

  def counts(self) -> dict[str, int]:
    return {name: count_params(net) for name, net in self.networks.items()}

  def losses(self) -> dict[str, float]:
    """The last iteration's losses as floats (synchronises)."""
    return {k[5:]: float(v.detach()) for k, v in vars(self).items()
            if k.startswith('loss_') and torch.is_tensor(v)}


class CycleGANModel(Model):
  """models/cycle_gan_model.py's CycleGANModel, training part. Reference names:
  netG_A = jaxgan G (A -> B), netG_B = F, netD_A judges B (jaxgan D_B), netD_B
  judges A (jaxgan D_A)."""

  def __init__(self, settings: Settings, **kwargs):
    super().__init__(settings, **kwargs)
    s = settings
    c, n_blocks = s.channels, RESNETS[s.generator]
    self.netG_A, self.netG_B = self._place(
        ResnetGenerator(c, c, s.ngf, 'instance', False, n_blocks),
        ResnetGenerator(c, c, s.ngf, 'instance', False, n_blocks))
    self.netD_A, self.netD_B = self._place(NLayerDiscriminator(c, s.ndf, 3, 'instance'),
                                           NLayerDiscriminator(c, s.ndf, 3, 'instance'))
    self.networks = {'G': self.netG_A, 'F': self.netG_B, 'D_A': self.netD_B,
                     'D_B': self.netD_A}
    self.fake_A_pool = ImagePool(s.pool_size)
    self.fake_B_pool = ImagePool(s.pool_size)
    self.criterionGAN = GANLoss('lsgan').to(self.device)
    self.criterionCycle = nn.L1Loss()
    self.criterionIdt = nn.L1Loss()
    betas = (s.beta1, 0.999)
    self.optimizer_G = torch.optim.Adam(
        list(self.netG_A.parameters()) + list(self.netG_B.parameters()), lr=s.lr,
        betas=betas)
    self.optimizer_D = torch.optim.Adam(
        list(self.netD_A.parameters()) + list(self.netD_B.parameters()), lr=s.lr,
        betas=betas)

  def set_input(self, generator):
    self.real_A = self.images(generator)
    self.real_B = self.images(generator)

  def forward(self):
    self.fake_B = self.netG_A(self.real_A)
    self.rec_A = self.netG_B(self.fake_B)
    self.fake_A = self.netG_B(self.real_B)
    self.rec_B = self.netG_A(self.fake_A)

  def backward_D_basic(self, netD, real, fake):
    with self.autocast():
      loss_D_real = self.criterionGAN(netD(real), True)
      loss_D_fake = self.criterionGAN(netD(fake.detach()), False)
      loss_D = (loss_D_real + loss_D_fake) * 0.5
    loss_D.backward()
    return loss_D

  def backward_D_A(self):
    fake_B = self.fake_B_pool.query(self.fake_B)
    self.loss_D_A = self.backward_D_basic(self.netD_A, self.real_B, fake_B)

  def backward_D_B(self):
    fake_A = self.fake_A_pool.query(self.fake_A)
    self.loss_D_B = self.backward_D_basic(self.netD_B, self.real_A, fake_A)

  def backward_G(self):
    s = self.s
    lambda_idt, lambda_A, lambda_B = s.lambda_identity, s.lambda_cycle, s.lambda_cycle
    with self.autocast():
      if lambda_idt > 0:
        self.idt_A = self.netG_A(self.real_B)
        self.loss_idt_A = self.criterionIdt(self.idt_A, self.real_B) * lambda_B * lambda_idt
        self.idt_B = self.netG_B(self.real_A)
        self.loss_idt_B = self.criterionIdt(self.idt_B, self.real_A) * lambda_A * lambda_idt
      else:
        self.loss_idt_A = self.loss_idt_B = 0
      self.loss_G_A = self.criterionGAN(self.netD_A(self.fake_B), True)
      self.loss_G_B = self.criterionGAN(self.netD_B(self.fake_A), True)
      self.loss_cycle_A = self.criterionCycle(self.rec_A, self.real_A) * lambda_A
      self.loss_cycle_B = self.criterionCycle(self.rec_B, self.real_B) * lambda_B
      self.loss_G = (self.loss_G_A + self.loss_G_B + self.loss_cycle_A + self.loss_cycle_B
                     + self.loss_idt_A + self.loss_idt_B)
    self.loss_G.backward()

  def optimize_parameters(self):
    with self.autocast():
      self.forward()
    set_requires_grad([self.netD_A, self.netD_B], False)
    self.optimizer_G.zero_grad()
    self.backward_G()
    self.optimizer_G.step()
    set_requires_grad([self.netD_A, self.netD_B], True)
    self.optimizer_D.zero_grad()
    self.backward_D_A()
    self.backward_D_B()
    self.optimizer_D.step()


class Pix2PixModel(Model):
  """models/pix2pix_model.py's Pix2PixModel, training part (no image pool: the
  reference's pix2pix default pool_size is 0)."""

  def __init__(self, settings: Settings, **kwargs):
    super().__init__(settings, **kwargs)
    s = settings
    c = s.channels
    (self.netG,) = self._place(UnetGenerator(c, c, UNETS[s.generator], s.ngf, 'batch',
                                             use_dropout=True))
    (self.netD,) = self._place(NLayerDiscriminator(2 * c, s.ndf, 3, 'batch'))
    self.networks = {'G': self.netG, 'D': self.netD}
    self.criterionGAN = GANLoss('vanilla').to(self.device)
    self.criterionL1 = nn.L1Loss()
    betas = (s.beta1, 0.999)
    self.optimizer_G = torch.optim.Adam(self.netG.parameters(), lr=s.lr, betas=betas)
    self.optimizer_D = torch.optim.Adam(self.netD.parameters(), lr=s.lr, betas=betas)

  def set_input(self, generator):
    self.real_A = self.images(generator)
    self.real_B = self.images(generator)

  def forward(self):
    self.fake_B = self.netG(self.real_A)

  def backward_D(self):
    with self.autocast():
      fake_AB = torch.cat((self.real_A, self.fake_B), 1)
      self.loss_D_fake = self.criterionGAN(self.netD(fake_AB.detach()), False)
      real_AB = torch.cat((self.real_A, self.real_B), 1)
      self.loss_D_real = self.criterionGAN(self.netD(real_AB), True)
      self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
    self.loss_D.backward()

  def backward_G(self):
    with self.autocast():
      fake_AB = torch.cat((self.real_A, self.fake_B), 1)
      self.loss_G_GAN = self.criterionGAN(self.netD(fake_AB), True)
      self.loss_G_L1 = self.criterionL1(self.fake_B, self.real_B) * self.s.lambda_l1
      self.loss_G = self.loss_G_GAN + self.loss_G_L1
    self.loss_G.backward()

  def optimize_parameters(self):
    with self.autocast():
      self.forward()
    set_requires_grad([self.netD], True)
    self.optimizer_D.zero_grad()
    self.backward_D()
    self.optimizer_D.step()
    set_requires_grad([self.netD], False)
    self.optimizer_G.zero_grad()
    self.backward_G()
    self.optimizer_G.step()


class DCGANModel(Model):
  """pytorch/examples dcgan/main.py's training loop body."""

  real_label, fake_label = 1.0, 0.0

  def __init__(self, settings: Settings, **kwargs):
    super().__init__(settings, **kwargs)
    s = settings
    self.netG, = self._place(DCGANGenerator(s.latent_dim, s.ngf, s.channels, s.size))
    self.netD, = self._place(DCGANDiscriminator(s.ndf, s.channels, s.size))
    self.networks = {'G': self.netG, 'D': self.netD}
    self.criterion = nn.BCELoss()
    betas = (s.beta1, 0.999)
    self.optimizerD = torch.optim.Adam(self.netD.parameters(), lr=s.lr, betas=betas)
    self.optimizerG = torch.optim.Adam(self.netG.parameters(), lr=s.lr, betas=betas)

  def set_input(self, generator):
    self.real = self.images(generator)

  def _bce(self, output, label):
    # BCELoss is unsafe under autocast: the probabilities go to it in float32.
    with torch.autocast(device_type=self.device.type, enabled=False):
      return self.criterion(output.float(), label)

  def optimize_parameters(self):
    s = self.s
    # (1) Update D: maximize log(D(x)) + log(1 - D(G(z))).
    self.netD.zero_grad()
    batch_size = self.real.size(0)
    label = torch.full((batch_size,), self.real_label, dtype=torch.float32,
                       device=self.device)
    with self.autocast():
      self.loss_D_real = self._bce(self.netD(self.real), label)
    self.loss_D_real.backward()
    noise = torch.randn(batch_size, s.latent_dim, 1, 1, device=self.device)
    noise = noise.contiguous(memory_format=self.memory_format)
    with self.autocast():
      fake = self.netG(noise)
      label = torch.full_like(label, self.fake_label)
      self.loss_D_fake = self._bce(self.netD(fake.detach()), label)
    self.loss_D_fake.backward()
    self.loss_D = self.loss_D_real + self.loss_D_fake
    self.optimizerD.step()
    # (2) Update G: maximize log(D(G(z))).
    self.netG.zero_grad()
    label = torch.full_like(label, self.real_label)
    with self.autocast():
      self.loss_G = self._bce(self.netD(fake), label)
    self.loss_G.backward()
    self.optimizerG.step()


MODELS = {'cyclegan': CycleGANModel, 'pix2pix': Pix2PixModel, 'dcgan': DCGANModel}


def build(settings: Settings, device='cpu', dtype='float32', channels_last=False,
          seed=0) -> Model:
  """The experiment's model, initialised from `seed`, with its random input set."""
  require_torch()
  torch.manual_seed(seed)
  random.seed(seed)
  model = MODELS[settings.experiment](settings, device=device, dtype=dtype,
                                      channels_last=channels_last)
  model.set_input(torch.Generator().manual_seed(seed))
  return model


def jax_on_cpu() -> None:
  """Keeps jaxgan's side of the baseline (configs, shapes, parameter counts) on the
  CPU: JAX_PLATFORMS=cpu unless jax is imported already."""
  if 'jax' not in sys.modules:
    os.environ['JAX_PLATFORMS'] = 'cpu'


# -- jaxgan's counts ---------------------------------------------------------------


def jaxgan_config(settings: Settings):
  """jaxgan's config for the same experiment, size and widths as `settings`."""
  from jaxgan import config as config_lib
  s = settings
  config = config_lib.get_experiment(s.experiment)
  config.data.image_size = config.data.load_size = s.size
  config.data.batch_size = s.batch
  config.data.channels = s.channels
  config.model.ngf, config.model.ndf = s.ngf, s.ndf
  if s.experiment == 'dcgan':
    config.model.latent_dim = s.latent_dim
  else:
    config.model.generator = s.generator
  return config


def jaxgan_counts(settings: Settings) -> dict[str, int]:
  """jaxgan's per-network trainable parameter counts (jaxgan.params.counts)."""
  from jaxgan import params
  return params.counts(jaxgan_config(settings))


def check_counts(torch_counts: dict, jax_counts: dict) -> None:
  """Raises BaselineError (one line) at the first network whose counts differ."""
  if set(torch_counts) != set(jax_counts):
    raise BaselineError(f'networks differ: torch {sorted(torch_counts)}, jaxgan '
                        f'{sorted(jax_counts)}')
  for name, n in jax_counts.items():
    if torch_counts[name] != n:
      raise BaselineError(f'parameter count of {name}: torch {torch_counts[name]:,} != '
                          f'jaxgan {n:,}')


# -- StyleGAN: NVlabs stylegan2-ada-pytorch's own code ----------------------------
#
# Unlike the baselines above (our ports), the StyleGAN baseline imports the reference
# itself from the checkout --reference-dir names; nothing of it is copied here. It
# reads jaxgan's config (stylegan[:VARIANT] and --config.KEY=VALUE overrides) and maps
# it to the reference's training_loop() keyword arguments.

STYLEGAN = 'stylegan'
REFERENCE_URL = 'github.com/NVlabs/stylegan2-ada-pytorch'
# What the baseline imports from --reference-dir (torch_utils imports dnnlib).
REFERENCE_FILES = ('training/networks.py', 'training/loss.py', 'torch_utils/misc.py',
                   'torch_utils/training_stats.py', 'torch_utils/custom_ops.py',
                   'torch_utils/ops/bias_act.py', 'torch_utils/ops/upfirdn2d.py',
                   'torch_utils/ops/conv2d_gradfix.py', 'dnnlib/__init__.py')
REFERENCE_MODULES = ('dnnlib', 'torch_utils.custom_ops', 'torch_utils.misc',
                     'torch_utils.training_stats', 'torch_utils.ops.bias_act',
                     'torch_utils.ops.upfirdn2d', 'torch_utils.ops.conv2d_gradfix',
                     'training.networks', 'training.loss')


def split_experiment(spec: str) -> tuple[str, str]:
  """(name, variant) of --experiment NAME[:VARIANT]. Only stylegan takes a variant
  (one of jaxgan's config variants): its baseline reads jaxgan's config, the others
  have their own flags."""
  name, _, variant = spec.partition(':')
  if name not in EXPERIMENTS + (STYLEGAN,):
    raise BaselineError(f'unknown experiment {spec!r}; valid: '
                        + ', '.join(EXPERIMENTS + (f'{STYLEGAN}[:VARIANT]',)))
  if variant and name != STYLEGAN:
    raise BaselineError(f'experiment {spec!r}: only {STYLEGAN} takes a :VARIANT (the '
                        f'{name} baseline has its own flags)')
  return name, variant


def stylegan_config(spec: str, overrides=(), size=None, batch=None, channels=None):
  """jaxgan's config `spec` (stylegan[:VARIANT]) with the (key, value) overrides, then
  the benchmark's size, batch and channels where given (None: the config's), in
  experiments/bench_step.py's order."""
  from jaxgan import config as config_lib
  from jaxgan.errors import JaxganError
  try:
    config = config_lib.get_experiment(spec)
    for key, value in overrides:
      config_lib.apply_override(config, key, value)
  except JaxganError as e:
    raise BaselineError(str(e)) from None
  if size is not None:
    config.data.image_size = config.data.load_size = size
  if batch is not None:
    config.data.batch_size = batch
  if channels is not None:
    config.data.channels = channels
  return config


def _reference_interval(k):
  """A lazy interval as the reference's G_reg_interval / D_reg_interval: None (its
  'Gboth' / 'Dboth' phase, no lazy correction) where jaxgan has none or k = 1."""
  return k if k and k > 1 else None


def stylegan_reference_kwargs(config) -> dict:
  """The reference's training_loop() keyword arguments, under its names, for jaxgan's
  StyleGAN `config`; a BaselineError names the first setting it has no equivalent
  for. No torch needed. The R1 gamma (the auto rule 0.0002 res^2 / batch unless
  loss.lambda_gp is set), the lazy intervals and the optimizer groups are read from
  jaxgan's task, so both sides interpret the config one way.

  Differs from the reference's `auto` preset where our config does: num_fp16_res 0
  and conv_clamp None (float32; model.conv_clamp where set), ema_kimg =
  ema.half_life_images / 1000, no augmentation. A lazy interval of 1 (pl_every or
  gp_every 1) becomes the reference's un-lazy 'Gboth' / 'Dboth' phase, one optimizer
  step where jaxgan takes two."""
  from jaxgan.errors import JaxganError
  from jaxgan.tasks import make_task
  if config.task != STYLEGAN:
    raise BaselineError(f'config task {config.task!r} is not {STYLEGAN}')
  try:
    task = make_task(config)  # checks the config as training would
  except JaxganError as e:
    raise BaselineError(str(e)) from None
  m, loss, data, ema = config.model, config.loss, config.data, config.ema
  unsupported = [
      (m.synthesis != 'modulated', f'model.synthesis={m.synthesis!r}: the reference '
       "has StyleGAN2's modulated synthesis only"),
      (loss.gan_mode != 'vanilla', f'loss.gan_mode={loss.gan_mode!r}: the reference '
       'has the non-saturating logistic loss only (vanilla)'),
      (task.penalty_kind not in ('r1', 'none'), f'loss.gp={loss.gp!r}: the reference '
       'has R1 only'),
      (loss.real_label != 1, f'loss.real_label={loss.real_label}: the reference has no '
       'label smoothing'),
      (config.train.instance_noise > 0, 'train.instance_noise: the reference has no '
       'instance noise'),
      (config.augment.policy != 'none', f'augment.policy={config.augment.policy!r}: '
       'the baseline runs the reference without augmentation; compare both without '
       'it (--config.augment.policy=none)'),
      (config.dtype != 'float32', f'dtype={config.dtype!r}: the baseline runs the '
       'reference in float32 (num_fp16_res 0)'),
      (not ema.half_life_images > 0, 'ema.half_life_images=0: the reference\'s G_ema '
       'has a half-life (ema_kimg)'),
      (tuple(ema.networks) not in ((), ('G',)), f'ema.networks={tuple(ema.networks)}: '
       'the reference averages G only'),
  ]
  for group, s in task.group_settings.items():
    where = f'optimizer ({group})'
    unsupported += [
        (s['name'] != 'adam', f"{where} name={s['name']!r}: the reference uses Adam"),
        (s['schedule'] != 'constant', f"{where} schedule={s['schedule']!r}: the "
         'reference keeps the rate constant'),
        (bool(s['clip_norm'] or s['weight_decay'] or s['lr_mult']), f'{where}: '
         'clip_norm, weight_decay and lr_mult have no equivalent in the reference'),
    ]
  for bad, message in unsupported:
    if bad:
      raise BaselineError(f'no stylegan2-ada-pytorch equivalent of {message}')
  gen, disc = task.group_settings['gen'], task.group_settings['disc']
  lazy = task.lazy_intervals()
  res, channels = data.image_size, data.channels
  conv_clamp = m.conv_clamp or None
  return dict(
      G_kwargs=dict(z_dim=m.z_dim, c_dim=0, w_dim=m.w_dim, img_resolution=res,
                    img_channels=channels,
                    mapping_kwargs=dict(num_layers=m.map_layers, w_avg_beta=m.w_avg_beta),
                    synthesis_kwargs=dict(channel_base=m.channel_base,
                                          channel_max=m.channel_max, num_fp16_res=0,
                                          conv_clamp=conv_clamp)),
      D_kwargs=dict(c_dim=0, img_resolution=res, img_channels=channels,
                    architecture=m.architecture, channel_base=m.channel_base,
                    channel_max=m.channel_max, num_fp16_res=0, conv_clamp=conv_clamp,
                    epilogue_kwargs=dict(mbstd_group_size=m.mbstd_group_size,
                                         mbstd_num_channels=1)),
      loss_kwargs=dict(style_mixing_prob=m.style_mixing,
                       r1_gamma=task.r1_gamma if task.penalty_kind == 'r1' else 0.0,
                       pl_batch_shrink=loss.pl_batch_shrink, pl_decay=loss.pl_decay,
                       pl_weight=loss.pl_weight),
      G_opt_kwargs=dict(lr=gen['lr'], betas=[gen['b1'], gen['b2']], eps=gen['eps']),
      D_opt_kwargs=dict(lr=disc['lr'], betas=[disc['b1'], disc['b2']], eps=disc['eps']),
      G_reg_interval=_reference_interval(lazy.get('gen')),
      D_reg_interval=_reference_interval(lazy.get('disc')),
      batch_size=data.batch_size, ema_kimg=ema.half_life_images / 1000,
      ema_rampup=ema.rampup or None)


def reference_phases(kwargs) -> list[tuple[str, str, int]]:
  """The training loop's phases in its order, (name, network, interval): 'Gmain' and
  'Greg' every G_reg_interval ('Gboth' when that is None), then D's likewise."""
  phases = []
  for net in ('G', 'D'):
    k = kwargs[f'{net}_reg_interval']
    phases += [(net + 'both', net, 1)] if k is None else [(net + 'main', net, 1),
                                                         (net + 'reg', net, k)]
  return phases


def reference_adam_kwargs(kwargs, net: str) -> dict:
  """Network `net`'s Adam settings as the training loop builds them: with lazy
  regularisation every k steps, lr x r and each beta ^ r, r = k / (k + 1) (its
  mb_ratio); one optimizer serves the network's main and regularisation phases."""
  opt = dict(kwargs[f'{net}_opt_kwargs'])
  k = kwargs[f'{net}_reg_interval']
  if k is not None:
    r = k / (k + 1)
    opt.update(lr=opt['lr'] * r, betas=[beta ** r for beta in opt['betas']])
  return opt


def check_reference_dir(path: str) -> None:
  """One-line BaselineError unless `path` holds the reference files the baseline
  imports."""
  if not path:
    raise BaselineError(f'{STYLEGAN} needs --reference-dir PATH, a clone of '
                        f'{REFERENCE_URL} (its training/ and torch_utils/ are imported '
                        'from there)')
  if not os.path.isdir(path):
    raise BaselineError(f'--reference-dir {path}: no such directory (a clone of '
                        f'{REFERENCE_URL})')
  missing = [f for f in REFERENCE_FILES if not os.path.isfile(os.path.join(path, f))]
  if missing:
    raise BaselineError(f'--reference-dir {path} is not a clone of {REFERENCE_URL}: '
                        f"missing {', '.join(missing)}")


def reference_commit(path: str) -> str | None:
  """The commit checked out at `path` ('-dirty' appended when tracked files differ
  from it), or None where `path` is not the top of a git checkout or git fails."""

  def git(*args):
    return subprocess.run(['git', '-C', path, *args], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()

  try:
    if os.path.realpath(git('rev-parse', '--show-toplevel')) != os.path.realpath(path):
      return None
    commit = git('rev-parse', 'HEAD')
    dirty = git('status', '--porcelain', '--untracked-files=no')
  except (OSError, subprocess.SubprocessError):
    return None
  return commit + ('-dirty' if dirty else '')


def load_reference(path: str) -> types.SimpleNamespace:
  """The reference's modules (REFERENCE_MODULES, by their last name: networks, loss,
  misc, ...) imported from the checkout at `path`, which goes first on sys.path.

  Its CUDA plugins are never built: CPU tensors take its reference paths, and its
  plugin builder is replaced by one that fails, so a call would surface as the
  reference's own 'Failed to build CUDA kernels' warning (and `check_no_plugins`)
  instead of a compiler run."""
  check_reference_dir(path)
  require_torch()
  root = os.path.realpath(path)
  if root not in sys.path:
    sys.path.insert(0, root)
  modules = {}
  try:
    for name in REFERENCE_MODULES:
      modules[name] = importlib.import_module(name)
  except Exception as e:  # pylint: disable=broad-except  (any failure of its code)
    raise BaselineError(f'importing {name} from --reference-dir {path} failed: '
                        f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                        ) from None
  for name, module in modules.items():
    where = os.path.realpath(getattr(module, '__file__', '') or '')
    if not where.startswith(root + os.sep):
      raise BaselineError(f'{name} comes from {where or "nowhere"}, not --reference-dir '
                          f'{path} (another module of that name was imported first)')

  def refuse(module_name, *_, **__):
    raise RuntimeError(f'{PROG} does not build the reference plugin {module_name}')

  modules['torch_utils.custom_ops'].get_plugin = refuse
  return types.SimpleNamespace(**{name.rpartition('.')[2]: module
                                  for name, module in modules.items()})


class StyleGANReference:
  """The reference's training loop (training/training_loop.py) for batches of
  `batch_size` images, run with its own networks and StyleGAN2Loss.

  Each phase: the optimizer's zero_grad(set_to_none=True), the phase's network made
  trainable, loss.accumulate_gradients(phase, ..., sync=True, gain=interval) in one
  round (batch_gpu = batch, one device), the network frozen again, misc.nan_to_num on
  its gradients, opt.step(). After the phases of a batch, G_ema <- lerp(G, G_ema,
  beta) with the half-life ema_kimg (capped at ema_rampup x images seen), its buffers
  copied. No augmentation (augment_pipe None) and no labels (c_dim 0). As jaxgan's
  bench: the reals are random images in [-1, 1] made once, no data loading; each
  phase draws its z, as the loop does per phase."""

  def __init__(self, ref: types.SimpleNamespace, kwargs: dict, seed: int = 0):
    self.ref, self.kwargs = ref, kwargs
    torch.manual_seed(seed)
    ref.conv2d_gradfix.enabled = True  # as the loop sets it (its custom op is CUDA-only)
    ref.training_stats._counters.clear()  # pylint: disable=protected-access  (this run's)
    self.G = ref.networks.Generator(**kwargs['G_kwargs']).train().requires_grad_(False)
    self.D = ref.networks.Discriminator(**kwargs['D_kwargs']).train().requires_grad_(
        False)
    self.G_ema = copy.deepcopy(self.G).eval()
    self.loss = ref.loss.StyleGAN2Loss(
        device=torch.device('cpu'), G_mapping=self.G.mapping,
        G_synthesis=self.G.synthesis, D=self.D, augment_pipe=None,
        **kwargs['loss_kwargs'])
    self.networks = {'G': self.G, 'D': self.D}
    self.optimizers = {net: torch.optim.Adam(module.parameters(),
                                             **reference_adam_kwargs(kwargs, net))
                       for net, module in self.networks.items()}
    self.phases = reference_phases(kwargs)
    self.batch = kwargs['batch_size']
    g = kwargs['G_kwargs']
    shape = [self.batch, g['img_channels'], g['img_resolution'], g['img_resolution']]
    generator = torch.Generator().manual_seed(seed)
    self.real_img = torch.rand(shape, generator=generator) * 2 - 1
    self.no_labels = torch.zeros([self.batch, 0])
    self.cur_nimg = 0

  def run_phase(self, name: str, net: str, interval: int) -> None:
    module, opt = self.networks[net], self.optimizers[net]
    gen_z = torch.randn([self.batch, self.G.z_dim])
    opt.zero_grad(set_to_none=True)
    module.requires_grad_(True)
    self.loss.accumulate_gradients(phase=name, real_img=self.real_img,
                                   real_c=self.no_labels, gen_z=gen_z,
                                   gen_c=self.no_labels, sync=True, gain=interval)
    module.requires_grad_(False)
    for param in module.parameters():
      if param.grad is not None:
        self.ref.misc.nan_to_num(param.grad, nan=0, posinf=1e5, neginf=-1e5,
                                 out=param.grad)
    opt.step()

  def update_ema(self) -> None:
    ema_nimg = self.kwargs['ema_kimg'] * 1000
    if self.kwargs['ema_rampup'] is not None:
      ema_nimg = min(ema_nimg, self.cur_nimg * self.kwargs['ema_rampup'])
    ema_beta = 0.5 ** (self.batch / max(ema_nimg, 1e-8))
    for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
      p_ema.copy_(p.lerp(p_ema, ema_beta))
    for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
      b_ema.copy_(b)
    self.cur_nimg += self.batch

  def iteration(self, batch_idx: int) -> None:
    """One batch of the loop: the phases due at `batch_idx`, then the EMA."""
    for name, net, interval in self.phases:
      if batch_idx % interval == 0:
        self.run_phase(name, net, interval)
    self.update_ema()

  def step_functions(self) -> dict:
    """name -> (callable, interval) in experiments/bench_step.py's terms: 'main' (the
    phases of every batch), 'g_reg' and 'd_reg' (the lazy phases), 'ema'."""
    every_batch = [p for p in self.phases if p[2] == 1]
    units = {'main': (lambda: [self.run_phase(*p) for p in every_batch], 1)}
    for name, net, interval in self.phases:
      if interval > 1:
        units[f'{net.lower()}_reg'] = (functools.partial(self.run_phase, name, net,
                                                         interval), interval)
    units['ema'] = (self.update_ema, 1)
    return units

  def counts(self) -> dict[str, int]:
    return {name: count_params(net) for name, net in self.networks.items()}

  def losses(self) -> dict[str, float]:
    """The mean of every 'Loss/...' statistic the reference reported (its
    training_stats counters: count, sum, sum of squares)."""
    means = {}
    counters = self.ref.training_stats._counters  # pylint: disable=protected-access
    for name, by_device in counters.items():
      if name.startswith('Loss/') and by_device:
        count, total, _ = sum(by_device.values()).tolist()
        means[name] = total / count if count else float('nan')
    return means

  def check_no_plugins(self) -> None:
    """A BaselineError where the reference tried to build a CUDA plugin."""
    # pylint: disable-next=protected-access
    tried = [m for m in ('bias_act', 'upfirdn2d') if getattr(self.ref, m)._inited]
    if tried:
      raise BaselineError(f"the reference tried to build its CUDA plugin(s) "
                          f"{', '.join(tried)}; the baseline runs its CPU paths only")


def time_step_functions(units: dict, steps: int, warmup: int) -> dict[str, dict]:
  """experiments/bench_step.py's method: per step function, `warmup` untimed calls,
  then `steps` timed ones; its median, min and max seconds and its interval."""
  timed = {}
  for name, (fn, every) in units.items():
    for _ in range(warmup):
      fn()
    times = []
    for _ in range(steps):
      t0 = time.perf_counter()
      fn()
      times.append(time.perf_counter() - t0)
    timed[name] = dict(every=every, step_s=statistics.median(times), min_s=min(times),
                       max_s=max(times))
  return timed


def amortize(timed: dict[str, dict]) -> dict[str, float]:
  """bench_step's 'iteration (amortized)': each figure summed over the step functions,
  each divided by its interval."""
  return {key: sum(t[key] / t['every'] for t in timed.values())
          for key in ('step_s', 'min_s', 'max_s')}


def _warning_text(w) -> str:
  message = str(w.message).strip().splitlines()
  return (f'{w.category.__name__}: {message[0] if message else ""} '
          f'({os.path.basename(w.filename)}:{w.lineno})')


def run_stylegan(args) -> dict:
  """Builds the reference at jaxgan's config, checks its parameter counts against
  jaxgan's, times its step functions; returns the result record."""
  if args.device != 'cpu' or args.dtype != 'float32' or args.channels_last:
    raise BaselineError(f'the {STYLEGAN} baseline runs the reference on the CPU in '
                        'float32 (--device cpu --dtype float32, no --channels-last): its '
                        'CUDA plugins are not built here')
  check_reference_dir(args.reference_dir)
  jax_on_cpu()
  config = stylegan_config(args.experiment, parse_config_args(args.config_args),
                           args.size, args.batch, args.channels)
  kwargs = stylegan_reference_kwargs(config)
  jax_counts = None
  if not args.skip_count_check:
    from jaxgan import params
    jax_counts = params.counts(config)
  threads = args.threads or available_cpus()
  torch.set_num_threads(threads)
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter('always')
    model = StyleGANReference(load_reference(args.reference_dir), kwargs, args.seed)
    counts = model.counts()
    if jax_counts is not None:
      check_counts(counts, jax_counts)
    # The first iteration (every phase is due at batch 0) apart, as the other
    # baselines' first warm-up iteration; it counts as one warm-up of every function.
    first_s, warmup = None, args.warmup
    if warmup:
      t0 = time.perf_counter()
      model.iteration(0)
      first_s, warmup = time.perf_counter() - t0, warmup - 1
    timed = time_step_functions(model.step_functions(), args.steps, warmup)
    losses = model.losses()
  model.check_no_plugins()
  iteration = amortize(timed)
  g = kwargs['G_kwargs']
  return dict(side='torch', experiment=args.experiment, generator='',
              size=g['img_resolution'], batch=model.batch, channels=g['img_channels'],
              dtype='float32', device='cpu', channels_last=False, threads=threads,
              steps=args.steps, warmup=args.warmup, row='iteration (amortized)',
              **iteration, img_s=model.batch / iteration['step_s'], phases=timed,
              params=counts, count_checked=jax_counts is not None,
              finite=bool(losses) and all(math.isfinite(v) for v in losses.values()),
              losses=losses, first_s=first_s,
              warnings=list(dict.fromkeys(_warning_text(w) for w in caught)),
              reference_dir=os.path.realpath(args.reference_dir),
              reference_commit=reference_commit(args.reference_dir),
              reference_kwargs=kwargs, **torch_environment(cuda=False))


# -- timing ------------------------------------------------------------------------


def time_steps(model: Model, steps: int, warmup: int) -> list[float]:
  """Seconds of each of `steps` iterations after `warmup` untimed ones."""
  cuda = model.device.type == 'cuda'

  def sync():
    if cuda:
      torch.cuda.synchronize(model.device)

  for _ in range(warmup):
    model.optimize_parameters()
  sync()
  times = []
  for _ in range(steps):
    t0 = time.perf_counter()
    model.optimize_parameters()
    sync()
    times.append(time.perf_counter() - t0)
  return times


def available_cpus() -> int:
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    return os.cpu_count() or 1


def parse_args(argv):
  p = argparse.ArgumentParser(
      prog='python experiments/torch_baseline.py', description=__doc__.split('\n')[0],
      epilog='stylegan also takes jaxgan config overrides, --config.KEY=VALUE.')
  p.add_argument('--experiment', default='cyclegan',
                 help=f"{', '.join(EXPERIMENTS)} or {STYLEGAN}[:VARIANT] (jaxgan's "
                 'config, e.g. stylegan:demo; the reference from --reference-dir)')
  p.add_argument('--size', type=int, default=None,
                 help="image size (default 64; stylegan: the config's)")
  p.add_argument('--batch', type=int, default=None,
                 help="batch size (default 1; stylegan: the config's)")
  p.add_argument('--steps', type=int, default=5, help='timed iterations')
  p.add_argument('--warmup', type=int, default=1, help='untimed iterations first')
  p.add_argument('--threads', type=int, default=0,
                 help='torch.set_num_threads (0: the CPUs this process may use)')
  p.add_argument('--device', default='cpu', choices=('cpu', 'cuda'))
  p.add_argument('--dtype', default='float32', choices=DTYPES)
  p.add_argument('--channels-last', action='store_true')
  p.add_argument('--channels', type=int, default=None,
                 help="image channels (default 3; stylegan: the config's)")
  p.add_argument('--generator', default='',
                 help='pix2pix: unet_32|64|128|256, cyclegan: resnet_6blocks|'
                 'resnet_9blocks (default: what jaxgan uses at --size)')
  p.add_argument('--ngf', type=int, default=64)
  p.add_argument('--ndf', type=int, default=64)
  p.add_argument('--reference-dir', default='',
                 help=f'stylegan: a clone of {REFERENCE_URL}, whose training/ and '
                 'torch_utils/ are imported')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--skip-count-check', action='store_true',
                 help="don't compare the parameter counts with jaxgan's")
  p.add_argument('--json', action='store_true', help='print one JSON line of results')
  args, args.config_args = p.parse_known_args(argv)
  return args


def parse_config_args(config_args) -> list[tuple[str, str]]:
  """The (key, value) pairs of `--config.KEY=VALUE` arguments (jaxgan's syntax)."""
  from jaxgan import config as config_lib
  from jaxgan.errors import JaxganError
  try:
    return config_lib.parse_overrides(config_args)
  except JaxganError as e:
    raise BaselineError(str(e)) from None


def torch_environment(cuda: bool) -> dict:
  """The record's torch fields: versions, the device, its peak memory, TF32 switches."""
  return dict(torch=torch.__version__,
              peak_mb=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
              device_name=torch.cuda.get_device_name() if cuda else 'cpu',
              cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
              cudnn_tf32=torch.backends.cudnn.allow_tf32,
              matmul_tf32=torch.backends.cuda.matmul.allow_tf32)


def run(args) -> dict:
  """Builds, checks and times one configuration; returns the result record."""
  require_torch()
  if args.steps < 1 or args.warmup < 0 or args.threads < 0:
    raise BaselineError('--steps must be >= 1, --warmup and --threads >= 0')
  if args.device == 'cuda' and not torch.cuda.is_available():
    raise BaselineError('--device cuda but torch.cuda.is_available() is False '
                        f'(torch {torch.__version__})')
  name, _ = split_experiment(args.experiment)
  if name == STYLEGAN:
    return run_stylegan(args)
  if args.config_args:
    raise BaselineError(f"unrecognized arguments: {' '.join(args.config_args)} "
                        f'(--config.KEY=VALUE overrides are for {STYLEGAN} only)')
  given = dict(size=args.size, batch=args.batch, channels=args.channels)
  settings = Settings(experiment=name, ngf=args.ngf, ndf=args.ndf,
                      generator=args.generator,
                      **{k: v for k, v in given.items() if v is not None})
  threads = args.threads or available_cpus()
  torch.set_num_threads(threads)
  if args.device == 'cuda':
    torch.backends.cudnn.benchmark = True  # as both references set it
    torch.cuda.reset_peak_memory_stats()
  model = build(settings, args.device, args.dtype, args.channels_last, args.seed)
  counts = model.counts()
  if not args.skip_count_check:
    jax_on_cpu()
    check_counts(counts, jaxgan_counts(settings))
  # The first warm-up iteration apart: it holds cuDNN's autotuning (benchmark mode)
  # and the allocator's growth, the baseline's analogue of jaxgan's compile time.
  first_s, warmup = None, args.warmup
  if warmup:
    t0 = time.perf_counter()
    model.optimize_parameters()
    if args.device == 'cuda':
      torch.cuda.synchronize()
    first_s, warmup = time.perf_counter() - t0, warmup - 1
  times = time_steps(model, args.steps, warmup)
  losses = model.losses()
  median = statistics.median(times)
  return dict(side='torch', experiment=settings.experiment, generator=settings.generator,
              size=settings.size, batch=settings.batch, channels=settings.channels,
              dtype=args.dtype, device=args.device, channels_last=args.channels_last,
              threads=threads, steps=args.steps, warmup=args.warmup, step_s=median,
              min_s=min(times), max_s=max(times), img_s=settings.batch / median,
              params=counts, count_checked=not args.skip_count_check,
              finite=all(math.isfinite(v) for v in losses.values()), first_s=first_s,
              **torch_environment(args.device == 'cuda'))


def main(argv):
  args = parse_args(argv)
  try:
    r = run(args)
  except BaselineError as e:
    raise SystemExit(f'{PROG}: error: {e}') from None
  if args.json:
    print(json.dumps(r), flush=True)
    return
  nets = ', '.join(f'{k} {v:,}' for k, v in r['params'].items())
  what = r['generator'] or 'dcgan'
  if 'reference_dir' in r:
    what = f"NVlabs stylegan2-ada-pytorch {r['reference_commit'] or r['reference_dir']}"
  print(f"# torch {r['torch']} {r['experiment']} ({what}) "
        f"{r['size']}x{r['size']}x{r['channels']} batch {r['batch']} {r['dtype']} on "
        f"{r['device']} ({r['threads']} threads"
        f"{', channels_last' if r['channels_last'] else ''}); parameters {nets}"
        f"{' (= jaxgan)' if r['count_checked'] else ''}")
  parts = ''
  if 'phases' in r:
    parts = ' amortized (' + ', '.join(
        f"{name} {t['step_s']:.4f}" + (f" / {t['every']}" if t['every'] > 1 else '')
        for name, t in r['phases'].items()) + ')'
  print(f"median {r['step_s']:.4f} s/iteration{parts} (min {r['min_s']:.4f}, max "
        f"{r['max_s']:.4f}) over {r['steps']} steps after {r['warmup']} warm-up; "
        f"{r['img_s']:.2f} img/s" + ('' if r['finite'] else '; NON-FINITE losses'))
  for warning in r.get('warnings', ()):
    print(f'warning: {warning}')


if __name__ == '__main__':
  main(sys.argv[1:])
