"""MUNIT's networks (Huang et al. 2018; NVlabs/MUNIT `networks.py`), written for Flax.

Owns the per-domain AdaIN auto-encoder (`AdaINGenerator`: style encoder, content
encoder, decoder with AdaIN residual blocks, and the MLP that turns a style code into
every AdaIN mean and std), the multi-scale discriminator (`MsImageDis`), and the two
normalisations of the reference that no other network here uses: `adain` (the
reference's AdaptiveInstanceNorm2d) and `layer_norm` (its own LayerNorm, which divides
by the unbiased std + eps, not by sqrt(var + eps)).

Fixed as the reference's published configs have them: activation relu in the
generator and LeakyReLU 0.2 in the discriminator, reflection padding everywhere, no
normalisation in the style encoder or the discriminator. Initialisation follows the
reference's trainer: Kaiming normal (fan_in, gain sqrt 2) for the generators' conv and
linear weights, then N(0, 0.02) for the discriminators' (its trainer re-initialises
dis_a and dis_b with 'gaussian' after applying 'kaiming' to everything; `weight_init`
can make them Kaiming too); biases 0;
LayerNorm gamma ~ U(0, 1), beta 0 (the module's own init, which weights_init skips).

Images are NHWC; style codes are [N, style_dim] (the reference's [N, style_dim, 1, 1]
flattened, as its MLP does first).
"""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.errors import JaxganError
from jaxgan.models import cpu_conv
from jaxgan.models import layers

Array = jax.Array
Dtype = Any

EPS = 1e-5  # both of the reference's norms
LRELU_SLOPE = 0.2
# The reference's StyleEncoder(4, ...): four stride-2 convs, whatever n_downsample is.
STYLE_DOWNSAMPLES = 4
# Channels double in the style encoder's first two downsamplings only.
STYLE_DOUBLINGS = 2
MLP_BLOCKS = 3

# kaiming_normal_(a=0, mode='fan_in'): std = sqrt(2 / fan_in), an untruncated normal.
kaiming_init = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')
# The discriminators' weight inits by the reference's names: 'gaussian' N(0, 0.02)
# (what its trainer applies to dis_a and dis_b), 'kaiming' as the generators'.
DIS_INITS = {'gaussian': layers.kernel_init, 'kaiming': kaiming_init}


# ----------------------------------------------------------------------------- norms


def instance_norm(x: Array) -> Array:
  """Per-sample, per-channel normalisation, biased variance, eps inside the sqrt (as
  nn.InstanceNorm2d and the batch-norm-over-a-reshape of AdaIN)."""
  x32 = x.astype(jnp.float32)
  mean = x32.mean(axis=(1, 2), keepdims=True)
  var = jnp.square(x32 - mean).mean(axis=(1, 2), keepdims=True)
  return (x32 - mean) * jax.lax.rsqrt(var + EPS)


def adain(x: Array, mean: Array, std: Array) -> Array:
  """The reference's AdaptiveInstanceNorm2d on NHWC `x`: instance-normalised, times
  `std` [N, C] plus `mean` [N, C] (the MLP's outputs, used as they are: no +1)."""
  y = instance_norm(x) * std[:, None, None, :] + mean[:, None, None, :]
  return y.astype(x.dtype)


def layer_norm(x: Array, gamma: Array, beta: Array) -> Array:
  """The reference's LayerNorm on NHWC `x`: each sample normalised by the mean and the
  *unbiased* std of all its C*H*W values (torch's Tensor.std), as (x - mean) /
  (std + eps), then the per-channel affine gamma, beta [C]."""
  x32 = x.astype(jnp.float32)
  flat = x32.reshape(x.shape[0], -1)
  mean = flat.mean(axis=1)[:, None, None, None]
  std = flat.std(axis=1, ddof=1)[:, None, None, None]
  return ((x32 - mean) / (std + EPS) * gamma + beta).astype(x.dtype)


class LayerNorm(nn.Module):
  """`layer_norm` with its parameters (gamma ~ U(0, 1) as the reference's init)."""

  @nn.compact
  def __call__(self, x: Array) -> Array:
    c = x.shape[-1]
    gamma = self.param('gamma', nn.initializers.uniform(1.0), (c,), jnp.float32)
    beta = self.param('beta', nn.initializers.zeros, (c,), jnp.float32)
    return layer_norm(x, gamma, beta)


# ---------------------------------------------------------------------------- blocks


class Conv(nn.Module):
  """The reference's Conv2dBlock convolution: reflection padding `padding`, then a
  `kernel` x `kernel` conv with bias; `kernel_init` is the network's init."""
  features: int
  kernel: int
  stride: int = 1
  padding: int = 0
  kernel_init: Callable = kaiming_init
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel
    w = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features),
                   jnp.float32)
    b = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    if self.padding:
      x = layers.reflect_pad(x, self.padding)
    y = cpu_conv.conv2d(x.astype(self.dtype), w.astype(self.dtype), self.stride,
                        ((0, 0), (0, 0)))
    return y + b.astype(self.dtype)


class ResBlock(nn.Module):
  """Two 3x3 convs with instance norm (relu between) and an identity skip."""
  dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = Conv(self.dim, 3, 1, 1, dtype=self.dtype, name='conv_0')(x)
    y = nn.relu(instance_norm(y)).astype(self.dtype)
    y = Conv(self.dim, 3, 1, 1, dtype=self.dtype, name='conv_1')(y)
    return x + instance_norm(y).astype(self.dtype)


class AdaINResBlock(nn.Module):
  """ResBlock with AdaIN in place of instance norm; `params` [N, 4 * dim] holds
  (mean, std) of its first norm, then (mean, std) of its second."""
  dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, params: Array) -> Array:
    d = self.dim
    y = Conv(d, 3, 1, 1, dtype=self.dtype, name='conv_0')(x)
    y = nn.relu(adain(y, params[:, :d], params[:, d:2 * d]))
    y = Conv(d, 3, 1, 1, dtype=self.dtype, name='conv_1')(y)
    return x + adain(y, params[:, 2 * d:3 * d], params[:, 3 * d:4 * d])


# -------------------------------------------------------------------------- generator


class StyleEncoder(nn.Module):
  """7x7 conv, four 4x4 stride-2 convs (channels doubled in the first two), relu and no
  norm after each, global average pooling, 1x1 conv to the style code [N, style_dim]."""
  dim: int
  style_dim: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    dim = self.dim
    x = nn.relu(Conv(dim, 7, 1, 3, dtype=self.dtype, name='conv_in')(x))
    for i in range(STYLE_DOWNSAMPLES):
      dim = dim * 2 if i < STYLE_DOUBLINGS else dim
      x = nn.relu(Conv(dim, 4, 2, 1, dtype=self.dtype, name=f'down_{i}')(x))
    x = x.astype(jnp.float32).mean(axis=(1, 2), keepdims=True)
    x = Conv(self.style_dim, 1, dtype=jnp.float32, name='conv_out')(x)
    return x.reshape(x.shape[0], self.style_dim)


class ContentEncoder(nn.Module):
  """7x7 conv, n_downsample 4x4 stride-2 convs doubling the channels, n_res residual
  blocks; instance norm (no affine) and relu throughout."""
  dim: int
  n_downsample: int
  n_res: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    dim = self.dim
    x = Conv(dim, 7, 1, 3, dtype=self.dtype, name='conv_in')(x)
    x = nn.relu(instance_norm(x)).astype(self.dtype)
    for i in range(self.n_downsample):
      dim *= 2
      x = Conv(dim, 4, 2, 1, dtype=self.dtype, name=f'down_{i}')(x)
      x = nn.relu(instance_norm(x)).astype(self.dtype)
    for i in range(self.n_res):
      x = ResBlock(dim, self.dtype, name=f'res_{i}')(x)
    return x


class Decoder(nn.Module):
  """n_res AdaIN residual blocks, then n_downsample x (nearest upsampling x2, 5x5 conv
  halving the channels, the reference's LayerNorm, relu), then a 7x7 conv to
  `out_channels` and tanh. `adain_params` [N, 4 * dim * n_res] in the reference's
  assign_adain_params order: block by block, norm by norm, mean then std."""
  n_downsample: int
  n_res: int
  out_channels: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, adain_params: Array) -> Array:
    dim = x.shape[-1]
    adain_params = adain_params.astype(jnp.float32)
    for i in range(self.n_res):
      block = adain_params[:, 4 * dim * i:4 * dim * (i + 1)]
      x = AdaINResBlock(dim, self.dtype, name=f'res_{i}')(x, block)
    for i in range(self.n_downsample):
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nn.Upsample(2), nearest
      dim //= 2
      x = Conv(dim, 5, 1, 2, dtype=self.dtype, name=f'up_{i}')(x)
      x = nn.relu(LayerNorm(name=f'up_{i}_norm')(x))
    x = Conv(self.out_channels, 7, 1, 3, dtype=self.dtype, name='conv_out')(x)
    # tanh in float32: the losses consume this output in float32 anyway.
    return jnp.tanh(x.astype(jnp.float32))


class MLP(nn.Module):
  """style [N, style_dim] -> mlp_dim -> mlp_dim -> out_dim, relu between (none at the
  end): every AdaIN mean and std of the decoder."""
  mlp_dim: int
  out_dim: int

  @nn.compact
  def __call__(self, style: Array) -> Array:
    x = style.astype(jnp.float32)
    for i in range(MLP_BLOCKS - 1):
      x = nn.relu(nn.Dense(self.mlp_dim, kernel_init=kaiming_init, name=f'fc_{i}')(x))
    return nn.Dense(self.out_dim, kernel_init=kaiming_init,
                    name=f'fc_{MLP_BLOCKS - 1}')(x)


class AdaINGenerator(nn.Module):
  """One domain's auto-encoder (the reference's AdaINGen): `encode(x)` -> (content
  [N, H/2^d, W/2^d, dim*2^d], style [N, style_dim]), `decode(content, style)` ->
  images [N, H, W, channels] in [-1, 1]; calling it reconstructs x (decode(encode(x))).
  Params: 'style_encoder', 'content_encoder', 'decoder', 'mlp'. `train` is accepted
  for the loop's calling convention: nothing here behaves differently in training."""
  channels: int = 3
  dim: int = 64
  style_dim: int = 8
  n_downsample: int = 2
  n_res: int = 4
  mlp_dim: int = 256
  dtype: Dtype = jnp.float32

  @property
  def content_dim(self) -> int:
    return self.dim * 2 ** self.n_downsample

  @property
  def num_adain_params(self) -> int:
    # Two AdaIN layers per residual block, a mean and a std per channel each.
    return 4 * self.content_dim * self.n_res

  def setup(self):
    self.style_encoder = StyleEncoder(self.dim, self.style_dim, self.dtype)
    self.content_encoder = ContentEncoder(self.dim, self.n_downsample, self.n_res,
                                          self.dtype)
    self.decoder = Decoder(self.n_downsample, self.n_res, self.channels, self.dtype)
    self.mlp = MLP(self.mlp_dim, self.num_adain_params)

  def __call__(self, x: Array, train: bool = False) -> Array:
    content, style = self.encode(x, train=train)
    return self.decode(content, style, train=train)

  def encode(self, x: Array, train: bool = False) -> tuple[Array, Array]:
    del train
    return self.content_encoder(x), self.style_encoder(x)

  def decode(self, content: Array, style: Array, train: bool = False) -> Array:
    del train
    return self.decoder(content, self.mlp(style))


# ---------------------------------------------------------------------- discriminator


def avg_pool_3x3_s2(x: Array) -> Array:
  """nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False): each window's mean
  over its pixels inside the image only."""
  window, strides = (1, 3, 3, 1), (1, 2, 2, 1)
  pad = ((0, 0), (1, 1), (1, 1), (0, 0))
  total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, strides, pad)
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, strides, pad)
  return total / count


class MsImageDis(nn.Module):
  """The reference's multi-scale discriminator: at each of `num_scales` scales (the
  image, then average-pooled by 2 each time) a 4x4 stride-2 conv to `dim`, n_layer - 1
  more doubling the channels (LeakyReLU 0.2, no norm), and a 1x1 conv to one output.

  `scales(x)` -> the per-scale maps (float32 [N, h_s, w_s, 1]) the losses average one
  by one and sum; calling it gives those maps flattened and concatenated, [N, P]: one
  array whose per-sample gradient is what a gradient penalty needs."""
  dim: int = 64
  n_layer: int = 4
  num_scales: int = 3
  weight_init: str = 'gaussian'  # a key of DIS_INITS ('init' is Module.init)
  dtype: Dtype = jnp.float32

  def setup(self):
    kernel_init = DIS_INITS[self.weight_init]
    self.nets = [_ScaleDis(self.dim, self.n_layer, kernel_init, self.dtype,
                           name=f'scale_{s}')
                 for s in range(self.num_scales)]

  def scales(self, x: Array, train: bool = False) -> tuple[Array, ...]:
    del train
    outs = []
    for s, net in enumerate(self.nets):
      if s:
        x = avg_pool_3x3_s2(x)
      outs.append(net(x))
    return tuple(outs)

  def __call__(self, x: Array, train: bool = False) -> Array:
    return jnp.concatenate([o.reshape(o.shape[0], -1) for o in self.scales(x, train)],
                           axis=1)


class _ScaleDis(nn.Module):
  dim: int
  n_layer: int
  kernel_init: Callable
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    dim = self.dim
    for i in range(self.n_layer):
      x = Conv(dim, 4, 2, 1, kernel_init=self.kernel_init, dtype=self.dtype,
               name=f'conv_{i}')(x)
      x = nn.leaky_relu(x, LRELU_SLOPE)
      dim *= 2
    x = Conv(1, 1, kernel_init=self.kernel_init, dtype=self.dtype, name='conv_out')(x)
    return x.astype(jnp.float32)


# ------------------------------------------------------------------------ constraints


def min_image_size(*, n_downsample: int, n_layer: int, num_scales: int) -> int:
  """The smallest side the reference can run: a reflection pad of p needs a side > p,
  so every 4x4 stride-2 conv (pad 1) must see at least 2 pixels, every 3x3 (pad 1)
  too, and the 7x7s (pad 3) 4. The tightest are the style encoder's last conv
  (side / 8), the content's residual blocks (side / 2^n_downsample) and the
  discriminator's last conv at its coarsest scale (side / 2^(num_scales - 1 +
  n_layer - 1))."""
  return max(4, 2 * 2 ** (STYLE_DOWNSAMPLES - 1), 2 * 2 ** n_downsample,
             2 * 2 ** (num_scales + n_layer - 2))


def check_settings(**positive: int) -> None:
  for name, value in positive.items():
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise JaxganError(f'model.{name}={value!r} must be an integer >= 1')


def make_munit_generator(*, channels: int = 3, dim: int = 64, style_dim: int = 8,
                         n_downsample: int = 2, n_res: int = 4, mlp_dim: int = 256,
                         dtype: Dtype = jnp.float32) -> AdaINGenerator:
  """One domain's MUNIT generator; `apply(v, x)` reconstructs, method='encode' /
  'decode' as `AdaINGenerator` says."""
  check_settings(dim=dim, style_dim=style_dim, n_downsample=n_downsample, n_res=n_res,
                 mlp_dim=mlp_dim)
  return AdaINGenerator(channels=channels, dim=dim, style_dim=style_dim,
                        n_downsample=n_downsample, n_res=n_res, mlp_dim=mlp_dim,
                        dtype=dtype)


def make_munit_discriminator(*, dim: int = 64, n_layer: int = 4, num_scales: int = 3,
                             init: str = 'gaussian',
                             dtype: Dtype = jnp.float32) -> MsImageDis:
  """MUNIT's multi-scale discriminator (see `MsImageDis`)."""
  check_settings(dis_dim=dim, dis_n_layer=n_layer, dis_num_scales=num_scales)
  if init not in DIS_INITS:
    raise JaxganError(f"unknown model.dis_init '{init}'; valid: {', '.join(DIS_INITS)}")
  return MsImageDis(dim=dim, n_layer=n_layer, num_scales=num_scales, weight_init=init,
                    dtype=dtype)
