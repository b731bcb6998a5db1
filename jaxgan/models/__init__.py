"""Network registries and factories: the only entry point the trainers use.

`NETWORKS` maps every network's name to its factory, whatever the network's inputs
(image -> image, z -> image, image -> logits, ...): `make(name, **kwargs)` builds one,
each factory taking its own keyword arguments. `GENERATORS` and `DISCRIMINATORS` are
the image-to-image families a config chooses from (`model.generator`,
`model.discriminator`), with `make_generator` / `make_discriminator` checking names
and norms, `size_multiple` giving a generator's input-size constraint.
Parameter counting is here too. The architectures live in the sibling modules.
"""

import functools
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgan.errors import JaxganError
from jaxgan.models import dcgan
from jaxgan.models import layers
from jaxgan.models import munit
from jaxgan.models import stylegan
from jaxgan.models.discriminators import NLayerDiscriminator
from jaxgan.models.discriminators import PixelDiscriminator
from jaxgan.models.resnet import N_DOWNSAMPLING
from jaxgan.models.resnet import ResnetGenerator
from jaxgan.models.unet import UnetGenerator

NORMS = layers.NORMS

# Each factory takes (*, ngf, norm, out_channels, use_dropout, dtype); the input's
# channels come from the input (Flax infers them).
GENERATORS: dict[str, Callable[..., nn.Module]] = {
    # resnet_2blocks: the same ResNet with 2 residual blocks (not a reference name;
    # cyclegan:smoke's, configs/cyclegan.py says why).
    'resnet_2blocks': functools.partial(ResnetGenerator, n_blocks=2),
    'resnet_6blocks': functools.partial(ResnetGenerator, n_blocks=6),
    'resnet_9blocks': functools.partial(ResnetGenerator, n_blocks=9),
    # unet_32/64: the same U-Net with 5/6 levels, for small images (demos, tests).
    'unet_32': functools.partial(UnetGenerator, num_downs=5),
    'unet_64': functools.partial(UnetGenerator, num_downs=6),
    'unet_128': functools.partial(UnetGenerator, num_downs=7),
    'unet_256': functools.partial(UnetGenerator, num_downs=8),
}

# Input H and W must divide by these: every stride-2 level halves them, and the
# generators must hand back the input's size exactly.
_SIZE_MULTIPLES = {
    'resnet_2blocks': 2 ** N_DOWNSAMPLING,
    'resnet_6blocks': 2 ** N_DOWNSAMPLING,
    'resnet_9blocks': 2 ** N_DOWNSAMPLING,
    'unet_32': 2 ** 5,
    'unet_64': 2 ** 6,
    'unet_128': 2 ** 7,
    'unet_256': 2 ** 8,
}


def _basic(*, ndf, norm, n_layers, dtype):
  del n_layers  # 'basic' is the 70x70 PatchGAN whatever n_layers says.
  return NLayerDiscriminator(ndf=ndf, n_layers=3, norm=norm, dtype=dtype)


def _n_layers(*, ndf, norm, n_layers, dtype):
  return NLayerDiscriminator(ndf=ndf, n_layers=n_layers, norm=norm, dtype=dtype)


def _pixel(*, ndf, norm, n_layers, dtype):
  del n_layers
  return PixelDiscriminator(ndf=ndf, norm=norm, dtype=dtype)


# Each factory takes (*, ndf, norm, n_layers, dtype).
DISCRIMINATORS: dict[str, Callable[..., nn.Module]] = {
    'basic': _basic,
    'n_layers': _n_layers,
    'pixel': _pixel,
}


def _check_name(kind: str, name: str, valid) -> None:
  if name not in valid:
    raise JaxganError(f"unknown {kind} {name!r}; valid: {', '.join(valid)}")


def make_generator(name: str, *, ngf: int = 64, norm: str = 'instance',
                   out_channels: int = 3, use_dropout: bool = False,
                   dtype: Any = jnp.float32) -> nn.Module:
  """The named generator; call as `apply(variables, x_nhwc, train=...)`."""
  _check_name('generator', name, GENERATORS)
  layers.check_norm(norm)
  return GENERATORS[name](ngf=ngf, norm=norm, out_channels=out_channels,
                          use_dropout=use_dropout, dtype=dtype)


def make_discriminator(name: str, *, ndf: int = 64, norm: str = 'instance',
                       n_layers: int = 3,
                       dtype: Any = jnp.float32) -> nn.Module:
  """The named discriminator; returns float32 logits of shape (N, h, w, 1)."""
  _check_name('discriminator', name, DISCRIMINATORS)
  layers.check_norm(norm)
  return DISCRIMINATORS[name](ndf=ndf, norm=norm, n_layers=n_layers,
                              dtype=dtype)


def size_multiple(generator_name: str) -> int:
  """Input H and W for this generator must be multiples of the returned value."""
  _check_name('generator', generator_name, GENERATORS)
  return _SIZE_MULTIPLES[generator_name]


def count_params(params) -> int:
  """Number of scalars in a pytree of arrays (or `jax.ShapeDtypeStruct`s)."""
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))


def make_dcgan_generator(*, image_size: int, channels: int, ngf: int = 64,
                         dtype: Any = jnp.float32) -> nn.Module:
  """DCGAN G; `apply(variables, z [N, latent_dim], train=...)` -> [N, S, S, C]."""
  return dcgan.DCGANGenerator(image_size=image_size, channels=channels, ngf=ngf,
                              dtype=dtype)


def make_dcgan_discriminator(*, image_size: int, ndf: int = 64,
                             dtype: Any = jnp.float32) -> nn.Module:
  """DCGAN D; `apply(variables, x [N, S, S, C], train=...)` -> logits [N, 1, 1, 1]."""
  return dcgan.DCGANDiscriminator(image_size=image_size, ndf=ndf, dtype=dtype)


# Every network by name; a new GAN registers its networks here.
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    **{name: functools.partial(make_generator, name) for name in GENERATORS},
    **{name: functools.partial(make_discriminator, name) for name in DISCRIMINATORS},
    'dcgan_generator': make_dcgan_generator,
    'dcgan_discriminator': make_dcgan_discriminator,
    'stylegan_generator': stylegan.make_stylegan_generator,
    'stylegan_discriminator': stylegan.make_stylegan_discriminator,
    'munit_generator': munit.make_munit_generator,
    'munit_discriminator': munit.make_munit_discriminator,
}


def make(name: str, **kwargs) -> nn.Module:
  """The network `name` of `NETWORKS`, built from its factory's keyword arguments."""
  _check_name('network', name, NETWORKS)
  return NETWORKS[name](**kwargs)
