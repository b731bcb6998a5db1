"""U-Net generators (`unet_128`, `unet_256`).

A port of `UnetGenerator` / `UnetSkipConnectionBlock` from
junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py`. The reference builds
the nest inside-out by passing submodules in; here each block knows its depth
(`level`, 0 = outermost) and creates the next block itself, which gives the
same layers and a params tree `outer/inner/inner/...`.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import layers

Array = jax.Array
Dtype = Any

# Channel multipliers stop growing at ngf * 8 (the reference's five fixed blocks).
MAX_MULT = 8
# Blocks at levels [DROPOUT_FROM, num_downs - 1) are the reference's
# (num_downs - 5) "ngf*8 -> ngf*8" middle blocks, the only ones given dropout.
DROPOUT_FROM = 4


class UnetSkipConnectionBlock(nn.Module):
  """One down/up pair of the U-Net; all but the outermost concat their input."""
  level: int
  num_downs: int
  ngf: int
  out_channels: int
  norm: str
  use_dropout: bool
  dtype: Dtype

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    outermost = self.level == 0
    innermost = self.level == self.num_downs - 1
    use_bias = layers.uses_bias(self.norm)
    inner_nc = self.ngf * min(2 ** self.level, MAX_MULT)
    outer_nc = (self.out_channels if outermost
                else self.ngf * min(2 ** (self.level - 1), MAX_MULT))

    # The reference's LeakyReLU here is in-place, so its skip actually carries
    # leaky_relu(x); the only consumer is the parent's ReLU, and
    # relu(leaky_relu(x)) == relu(x), so concatenating x is equivalent.
    y = x if outermost else nn.leaky_relu(x, 0.2)
    y = layers.conv(inner_nc, 4, 2, 1, use_bias=use_bias, dtype=self.dtype,
                    name='down_conv')(y)
    if not (outermost or innermost):
      y = layers.norm_layer(self.norm, self.dtype, name='down_norm')(y, train)
    if not innermost:
      y = UnetSkipConnectionBlock(
          self.level + 1, self.num_downs, self.ngf, self.out_channels,
          self.norm, self.use_dropout, self.dtype, name='inner')(y, train)

    y = nn.relu(y)
    y = layers.conv_transpose(outer_nc, 4, 2, 1, use_bias=outermost or use_bias,
                              dtype=self.dtype, name='up_conv')(y)
    if outermost:
      return jnp.tanh(y.astype(jnp.float32))
    y = layers.norm_layer(self.norm, self.dtype, name='up_norm')(y, train)
    if self.use_dropout and DROPOUT_FROM <= self.level < self.num_downs - 1:
      y = nn.Dropout(0.5, deterministic=not train)(y)
    return jnp.concatenate([x.astype(y.dtype), y], axis=-1)


class UnetGenerator(nn.Module):
  """U-Net with num_downs stride-2 levels: 1x1 bottleneck at 2**num_downs input."""
  num_downs: int
  ngf: int = 64
  norm: str = 'instance'
  out_channels: int = 3
  use_dropout: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    layers.check_norm(self.norm)
    return UnetSkipConnectionBlock(
        0, self.num_downs, self.ngf, self.out_channels, self.norm,
        self.use_dropout, self.dtype, name='outer')(x, train)
