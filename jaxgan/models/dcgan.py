"""DCGAN generator and discriminator (Radford et al. 2016), NHWC.

Owns `DCGANGenerator` and `DCGANDiscriminator`: the PyTorch examples' dcgan/main.py
`netG` / `netD`, generalised from 64x64 to any power-of-two image size >= 8 by
adding or removing the stride-2 stages (each halves or doubles H and W and
doubles or halves the features). No layer has a bias (the reference's
bias=False); batch norm uses PyTorch's defaults, and the initialisation (kernels
N(0, 0.02), batch-norm scale N(1, 0.02)) is the reference's `weights_init`, both
taken from `layers`.
"""

import numbers
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.errors import JaxganError
from jaxgan.models import layers

Array = jax.Array
Dtype = Any

MIN_IMAGE_SIZE = 8
KERNEL = 4


def num_stages(image_size: int) -> int:
  """Stride-2 stages between 4x4 and image_size: log2(image_size) - 2.

  Raises JaxganError unless image_size is a power of two >= 8.
  """
  if (not _is_int(image_size) or image_size < MIN_IMAGE_SIZE
      or int(image_size) & (int(image_size) - 1)):
    raise JaxganError(f'DCGAN image_size={image_size!r} must be a power of two '
                      f'>= {MIN_IMAGE_SIZE}')
  return int(image_size).bit_length() - 3


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_width(name: str, value: int) -> None:
  if not _is_int(value) or value < 1:
    raise JaxganError(f'DCGAN {name}={value!r} must be an integer >= 1')


class DCGANGenerator(nn.Module):
  """z [N, latent_dim] -> float32 images [N, S, S, channels] in [-1, 1] (tanh).

  With n = log2(S) - 2: a 4x4 stride-1 transposed conv turns the 1x1 latent into
  4x4 with ngf * 2**(n-1) features, then n - 1 stride-2 transposed convs halve the
  features while doubling H and W (each of these n layers followed by batch norm
  and ReLU), then a last stride-2 transposed conv to `channels` and tanh. Params
  `conv_0`..`conv_n`, `norm_0`..`norm_{n-1}`; running statistics in
  'batch_stats'.
  """
  image_size: int
  channels: int = 3
  ngf: int = 64
  dtype: Dtype = jnp.float32

  def __post_init__(self):
    # Bad settings fail at construction, not at the first init/apply.
    num_stages(self.image_size)
    _check_width('channels', self.channels)
    _check_width('ngf', self.ngf)
    super().__post_init__()

  @nn.compact
  def __call__(self, z: Array, train: bool = False) -> Array:
    n = num_stages(self.image_size)
    if z.ndim != 2:
      raise JaxganError(f'DCGAN generator input has shape {z.shape}; expected '
                        '[batch, latent_dim]')
    x = z.reshape(z.shape[0], 1, 1, z.shape[1])
    for i in range(n):
      # Layer 0 projects 1x1 -> 4x4 (kernel 4, stride 1, padding 0); the rest
      # double H and W (kernel 4, stride 2, padding 1).
      stride, padding = (1, 0) if i == 0 else (2, 1)
      x = layers.conv_transpose(self.ngf * 2 ** (n - 1 - i), KERNEL, stride,
                                padding, use_bias=False, dtype=self.dtype,
                                name=f'conv_{i}')(x)
      x = layers.norm_layer('batch', self.dtype, name=f'norm_{i}')(x, train)
      x = nn.relu(x)
    x = layers.conv_transpose(self.channels, KERNEL, 2, 1, use_bias=False,
                              dtype=self.dtype, name=f'conv_{n}')(x)
    return jnp.tanh(x.astype(jnp.float32))


class DCGANDiscriminator(nn.Module):
  """Images [N, S, S, C] -> float32 logits [N, 1, 1, 1] (no sigmoid).

  With n = log2(S) - 2: a stride-2 conv to ndf features (LeakyReLU 0.2, no batch
  norm), then n - 1 stride-2 convs doubling the features down to 4x4 (each with
  batch norm and LeakyReLU 0.2), then a 4x4 valid conv to one logit. Params
  `conv_0`..`conv_n`, `norm_1`..`norm_{n-1}`; running statistics in
  'batch_stats'.
  """
  image_size: int
  ndf: int = 64
  dtype: Dtype = jnp.float32

  def __post_init__(self):
    num_stages(self.image_size)
    _check_width('ndf', self.ndf)
    super().__post_init__()

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    n = num_stages(self.image_size)
    size = int(self.image_size)
    if x.ndim != 4 or x.shape[1:3] != (size, size):
      raise JaxganError(f'DCGAN discriminator input has shape {x.shape}; '
                        f'expected [batch, {size}, {size}, channels]')
    x = layers.conv(self.ndf, KERNEL, 2, 1, use_bias=False, dtype=self.dtype,
                    name='conv_0')(x)
    x = nn.leaky_relu(x, 0.2)
    for i in range(1, n):
      x = layers.conv(self.ndf * 2 ** i, KERNEL, 2, 1, use_bias=False,
                      dtype=self.dtype, name=f'conv_{i}')(x)
      x = layers.norm_layer('batch', self.dtype, name=f'norm_{i}')(x, train)
      x = nn.leaky_relu(x, 0.2)
    x = layers.conv(1, KERNEL, 1, 0, use_bias=False, dtype=self.dtype,
                    name=f'conv_{n}')(x)
    return x.astype(jnp.float32)
