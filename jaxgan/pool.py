"""The image pool of past fakes (Shrivastava et al. 2017), as fixed-size arrays.

The reference keeps a Python list and draws with Python's unseeded `random`; here the
pool is part of the train state, driven by `jax.random`, so a run is reproducible and a
resumed run continues with the same pool. Semantics per image, in batch order, exactly
as the reference's `ImagePool.query`:
  * while the pool holds fewer than `size` images: store the image and return it;
  * otherwise with probability 1/2 return a uniformly chosen stored image and store
    the new one in its place, else return the new image.
"""

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ImagePool:
  images: jax.Array  # [size, H, W, C] float32
  count: jax.Array  # int32 scalar: how many slots are filled


def init_pool(size: int, image_shape) -> ImagePool:
  return ImagePool(images=jnp.zeros((size,) + tuple(image_shape), jnp.float32),
                   count=jnp.zeros((), jnp.int32))


def query(pool: ImagePool, images: jax.Array, rng: jax.Array):
  """Returns (new_pool, images to show D) for a batch `images` [B, H, W, C]."""
  size = pool.images.shape[0]
  images = images.astype(jnp.float32)
  if size == 0:
    return pool, images

  def one(carry, inputs):
    stored, count = carry
    image, key = inputs
    key_swap, key_slot = jax.random.split(key)
    filling = count < size
    swap = jax.random.uniform(key_swap) > 0.5
    slot = jnp.where(filling, count, jax.random.randint(key_slot, (), 0, size))
    old = stored[slot]
    write = filling | swap
    stored = stored.at[slot].set(jnp.where(write, image, old))
    out = jnp.where(filling | ~swap, image, old)
    return (stored, count + filling.astype(jnp.int32)), out

  keys = jax.random.split(rng, images.shape[0])
  (stored, count), out = jax.lax.scan(one, (pool.images, pool.count), (images, keys))
  return ImagePool(images=stored, count=count), out
