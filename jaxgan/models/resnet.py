"""ResNet generators (`resnet_6blocks`, `resnet_9blocks`; `resnet_2blocks` for tests).

A line-for-line port of `ResnetGenerator` / `ResnetBlock` from
junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py` with
padding_type='reflect'.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import layers

Array = jax.Array
Dtype = Any

# Two stride-2 convolutions down, two conv-transposes back up.
N_DOWNSAMPLING = 2


class ResnetBlock(nn.Module):
  """Reflect-padded conv-norm-relu-(dropout)-conv-norm with an identity skip."""
  dim: int
  norm: str = 'instance'
  use_dropout: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    use_bias = layers.uses_bias(self.norm)
    y = layers.reflect_pad(x, 1)
    y = layers.conv(self.dim, 3, use_bias=use_bias, dtype=self.dtype,
                    name='conv_0')(y)
    y = layers.norm_layer(self.norm, self.dtype, name='norm_0')(y, train)
    y = nn.relu(y)
    if self.use_dropout:
      y = nn.Dropout(0.5, deterministic=not train)(y)
    y = layers.reflect_pad(y, 1)
    y = layers.conv(self.dim, 3, use_bias=use_bias, dtype=self.dtype,
                    name='conv_1')(y)
    y = layers.norm_layer(self.norm, self.dtype, name='norm_1')(y, train)
    return x + y


class ResnetGenerator(nn.Module):
  """c7s1-ngf, two stride-2 downsamplings, n_blocks ResnetBlocks, two up, c7s1-out."""
  n_blocks: int
  ngf: int = 64
  norm: str = 'instance'
  out_channels: int = 3
  use_dropout: bool = False
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    layers.check_norm(self.norm)
    use_bias = layers.uses_bias(self.norm)

    x = layers.reflect_pad(x, 3)
    x = layers.conv(self.ngf, 7, use_bias=use_bias, dtype=self.dtype,
                    name='in_conv')(x)
    x = layers.norm_layer(self.norm, self.dtype, name='in_norm')(x, train)
    x = nn.relu(x)

    for i in range(N_DOWNSAMPLING):
      x = layers.conv(self.ngf * 2 ** (i + 1), 3, 2, 1, use_bias=use_bias,
                      dtype=self.dtype, name=f'down_{i}_conv')(x)
      x = layers.norm_layer(self.norm, self.dtype, name=f'down_{i}_norm')(
          x, train)
      x = nn.relu(x)

    dim = self.ngf * 2 ** N_DOWNSAMPLING
    for i in range(self.n_blocks):
      x = ResnetBlock(dim, self.norm, self.use_dropout, self.dtype,
                      name=f'block_{i}')(x, train)

    for i in range(N_DOWNSAMPLING):
      x = layers.conv_transpose(dim // 2 ** (i + 1), 3, 2, 1, 1,
                                use_bias=use_bias, dtype=self.dtype,
                                name=f'up_{i}_conv')(x)
      x = layers.norm_layer(self.norm, self.dtype, name=f'up_{i}_norm')(
          x, train)
      x = nn.relu(x)

    x = layers.reflect_pad(x, 3)
    x = layers.conv(self.out_channels, 7, use_bias=True, dtype=self.dtype,
                    name='out_conv')(x)
    # tanh in float32: the losses consume this output in float32 anyway.
    return jnp.tanh(x.astype(jnp.float32))
