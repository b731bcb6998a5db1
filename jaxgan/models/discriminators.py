"""Discriminators: PatchGAN (`basic`, `n_layers`) and the 1x1 `pixel` GAN.

Ports of `NLayerDiscriminator` and `PixelDiscriminator` from
junyanz/pytorch-CycleGAN-and-pix2pix `models/networks.py`. Both return raw
logits of shape (N, h, w, 1) in float32.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.models import layers

Array = jax.Array
Dtype = Any

MAX_MULT = 8


class NLayerDiscriminator(nn.Module):
  """PatchGAN; n_layers=3 is the 70x70 receptive-field `basic` discriminator."""
  ndf: int = 64
  n_layers: int = 3
  norm: str = 'instance'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    layers.check_norm(self.norm)
    use_bias = layers.uses_bias(self.norm)

    x = layers.conv(self.ndf, 4, 2, 1, use_bias=True, dtype=self.dtype,
                    name='conv_0')(x)
    x = nn.leaky_relu(x, 0.2)
    for n in range(1, self.n_layers + 1):
      # The last of these keeps the resolution (stride 1) before the logits.
      stride = 2 if n < self.n_layers else 1
      x = layers.conv(self.ndf * min(2 ** n, MAX_MULT), 4, stride, 1,
                      use_bias=use_bias, dtype=self.dtype, name=f'conv_{n}')(x)
      x = layers.norm_layer(self.norm, self.dtype, name=f'norm_{n}')(x, train)
      x = nn.leaky_relu(x, 0.2)
    x = layers.conv(1, 4, 1, 1, use_bias=True, dtype=self.dtype,
                    name=f'conv_{self.n_layers + 1}')(x)
    return x.astype(jnp.float32)


class PixelDiscriminator(nn.Module):
  """1x1 PatchGAN: classifies every pixel independently."""
  ndf: int = 64
  norm: str = 'instance'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    layers.check_norm(self.norm)
    use_bias = layers.uses_bias(self.norm)
    x = layers.conv(self.ndf, 1, use_bias=True, dtype=self.dtype,
                    name='conv_0')(x)
    x = nn.leaky_relu(x, 0.2)
    x = layers.conv(self.ndf * 2, 1, use_bias=use_bias, dtype=self.dtype,
                    name='conv_1')(x)
    x = layers.norm_layer(self.norm, self.dtype, name='norm_1')(x, train)
    x = nn.leaky_relu(x, 0.2)
    # The reference gives the logit conv bias=use_bias too (unlike NLayer's).
    x = layers.conv(1, 1, use_bias=use_bias, dtype=self.dtype,
                    name='conv_2')(x)
    return x.astype(jnp.float32)
