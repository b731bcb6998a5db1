"""Augmentation of the discriminator's inputs (`augment.*` in the config): the policy's
augmentation function, DiffAugment's operations, and the control rule of ADA's
strength p.

Every policy is a pure function `fn(images, p, key) -> images` (NHWC in [-1, 1]), so a
step stays a pure function of (state, batch) and gradients flow through it to G:
  none         no augmentation (`make` returns None).
  diffaugment  DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for
               Data-Efficient GAN Training"), the ops of augment.diffaugment in order;
               p is not used.
  ada          stylegan2-ada's pipeline, `jaxgan.ada.augment`, each transform applied
               with probability p; p is adapted during training (Karras et al. 2020,
               "Training Generative Adversarial Networks with Limited Data") from the
               sign of D's outputs on reals: `sign_counts` and `adjusted_p` here, the
               state and the steps in `jaxgan.tasks.base`.

DiffAugment's magnitudes are those of the authors' code, which works on images in
[-1, 1] as jaxgan does (DiffAugment-stylegan2-pytorch scales its reals by
x / 127.5 - 1 before augmenting): brightness + U(-0.5, 0.5); saturation x U(0, 2)
around each pixel's mean over the channels (a no-op on one channel); contrast
x U(0.5, 1.5) around the image's mean; translation by an integer shift of up to 1/8
of each side, zeros shifted in; cutout of a square of half the side, zeroed, its
centre anywhere in the image (the square is cropped at the border). Every parameter
is drawn per image.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from jaxgan.errors import JaxganError

POLICIES = ('none', 'ada', 'diffaugment')
DIFFAUGMENT_OPS = ('color', 'translation', 'cutout')
TRANSLATION_RATIO = 0.125  # largest shift / side
CUTOUT_RATIO = 0.5  # cutout side / image side

Augment = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


# -- config ---------------------------------------------------------------------------


def diffaugment_ops(text: str) -> tuple[str, ...]:
  """'color,translation' -> ('color', 'translation'); an unknown op is an error."""
  ops = tuple(op.strip() for op in text.split(',') if op.strip())
  for op in ops:
    if op not in DIFFAUGMENT_OPS:
      raise JaxganError(f"unknown augment.diffaugment op '{op}'; valid: "
                        f"{', '.join(DIFFAUGMENT_OPS)}")
  return ops


def check(a, gan_mode: str) -> None:
  """Raises JaxganError (one line) on the first bad value of `a`, a config's `augment`
  group, for a task trained with loss.gan_mode `gan_mode`."""
  if a.policy not in POLICIES:
    raise JaxganError(f"unknown augment.policy '{a.policy}'; valid: {', '.join(POLICIES)}")
  if a.policy == 'diffaugment' and not diffaugment_ops(a.diffaugment):
    raise JaxganError('augment.diffaugment is empty: name at least one of '
                      f"{', '.join(DIFFAUGMENT_OPS)} (or augment.policy=none)")
  diffaugment_ops(a.diffaugment)
  if not 0 <= a.ada_target <= 1:
    raise JaxganError(f'augment.ada_target={a.ada_target} must be in [0, 1] (0: p fixed '
                      'at augment.p_init)')
  if a.ada_interval < 1:
    raise JaxganError(f'augment.ada_interval={a.ada_interval} must be >= 1')
  if not a.ada_kimg > 0:
    raise JaxganError(f'augment.ada_kimg={a.ada_kimg} must be > 0')
  if not 0 <= a.p_init <= 1:
    raise JaxganError(f'augment.p_init={a.p_init} must be in [0, 1]')
  if a.policy == 'ada' and a.ada_target > 0 and gan_mode == 'wgangp':
    raise JaxganError("augment.policy=ada adapts p from the sign of D's outputs on reals, "
                      "which a WGAN critic's loss leaves without a fixed zero "
                      '(loss.gan_mode=wgangp): use a fixed p (augment.ada_target=0) or '
                      'diffaugment')


def make(a) -> Augment | None:
  """The `fn(images, p, key) -> images` of `a` (a config's `augment` group); None for
  policy 'none'."""
  if a.policy == 'diffaugment':
    ops = diffaugment_ops(a.diffaugment)
    return lambda images, p, key: diffaugment(images, key, ops)
  if a.policy == 'ada':
    from jaxgan import ada  # imported only where the policy is used
    return ada.augment
  return None


def per_image(fn: Callable[[jax.Array], jax.Array], x: jax.Array,
              channels: int) -> jax.Array:
  """`fn` applied to each image of `x` stacked on the channel axis (pix2pix's D input
  is [input, output], 2 x `channels`), then stacked back. A pure function of (images,
  key) draws its parameters from the key and the shape alone, so the same `fn` (same
  key) gives every image the same transform."""
  if x.shape[-1] == channels:
    return fn(x)
  if x.shape[-1] % channels:
    raise JaxganError(f'a D input of {x.shape[-1]} channels is not a stack of '
                      f'{channels}-channel images')
  parts = jnp.split(x, x.shape[-1] // channels, axis=-1)
  return jnp.concatenate([fn(part) for part in parts], axis=-1)


# -- DiffAugment ---------------------------------------------------------------------


def _per_sample(v: jax.Array, dtype) -> jax.Array:
  return v.astype(dtype)[:, None, None, None]


def brightness(x: jax.Array, offset: jax.Array) -> jax.Array:
  """x + offset[n] per image."""
  return x + _per_sample(offset, x.dtype)


def saturation(x: jax.Array, factor: jax.Array) -> jax.Array:
  """Each pixel's distance from its mean over the channels scaled by factor[n]."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  return (x - mean) * _per_sample(factor, x.dtype) + mean


def contrast(x: jax.Array, factor: jax.Array) -> jax.Array:
  """Each image's distance from its mean (over pixels and channels) scaled by factor[n]."""
  mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
  return (x - mean) * _per_sample(factor, x.dtype) + mean


def translate(x: jax.Array, dy: jax.Array, dx: jax.Array) -> jax.Array:
  """out[n, i, j] = x[n, i + dy[n], j + dx[n]], zero where that lies outside the image
  (integer shifts [N])."""
  _, h, w, _ = x.shape
  rows = jnp.arange(h)[None, :] + dy[:, None]  # [N, H]
  cols = jnp.arange(w)[None, :] + dx[:, None]  # [N, W]
  out = jnp.take_along_axis(x, jnp.clip(rows, 0, h - 1)[:, :, None, None], axis=1)
  out = jnp.take_along_axis(out, jnp.clip(cols, 0, w - 1)[:, None, :, None], axis=2)
  inside = (((rows >= 0) & (rows < h))[:, :, None, None]
            & ((cols >= 0) & (cols < w))[:, None, :, None])
  return jnp.where(inside, out, jnp.zeros((), x.dtype))


def cutout(x: jax.Array, top: jax.Array, left: jax.Array,
           size: tuple[int, int]) -> jax.Array:
  """x with rows [top[n], top[n] + size[0]) x columns [left[n], left[n] + size[1]) of
  each image set to 0 (the part inside the image; top and left may be negative)."""
  _, h, w, _ = x.shape
  i = jnp.arange(h)[None, :] - top[:, None]
  j = jnp.arange(w)[None, :] - left[:, None]
  cut = (((i >= 0) & (i < size[0]))[:, :, None, None]
         & ((j >= 0) & (j < size[1]))[:, None, :, None])
  return x * (~cut).astype(x.dtype)


def _color(x, key):
  n = x.shape[0]
  k_b, k_s, k_c = jax.random.split(key, 3)
  x = brightness(x, jax.random.uniform(k_b, (n,)) - 0.5)
  x = saturation(x, jax.random.uniform(k_s, (n,)) * 2)
  return contrast(x, jax.random.uniform(k_c, (n,)) + 0.5)


def _translation(x, key):
  n, h, w, _ = x.shape
  # The shift bound rounds half up (int(side / 8 + 0.5)), as the authors' code does.
  sy, sx = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
  k_y, k_x = jax.random.split(key)
  return translate(x, jax.random.randint(k_y, (n,), -sy, sy + 1),
                   jax.random.randint(k_x, (n,), -sx, sx + 1))


def _cutout(x, key):
  n, h, w, _ = x.shape
  size = (int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5))
  k_y, k_x = jax.random.split(key)
  # The square's centre (of an even side: the pixel after the middle) is uniform over
  # the positions that leave the same share of it inside at both borders.
  cy = jax.random.randint(k_y, (n,), 0, h + 1 - size[0] % 2)
  cx = jax.random.randint(k_x, (n,), 0, w + 1 - size[1] % 2)
  return cutout(x, cy - size[0] // 2, cx - size[1] // 2, size)


_OPS = {'color': _color, 'translation': _translation, 'cutout': _cutout}


def diffaugment(x: jax.Array, key: jax.Array, ops=DIFFAUGMENT_OPS) -> jax.Array:
  """DiffAugment's `ops` (names of DIFFAUGMENT_OPS) applied in order to images x
  [N, H, W, C], each op's parameters drawn per image from its own key."""
  for op, k in zip(ops, jax.random.split(key, len(ops))):
    x = _OPS[op](x, k)
  return x


# -- ADA's control of p --------------------------------------------------------------


def sign_threshold(gan_mode: str, real_label: float) -> float:
  """The output at which D's judgement of an image turns from fake to real: 0 for a
  logit (vanilla) or a hinge score; halfway between the targets 0 and real_label for
  the least-squares loss. (A WGAN critic has none: `check` refuses adaptive p.)"""
  return real_label / 2 if gan_mode == 'lsgan' else 0.0


def sign_counts(outputs, threshold: float) -> tuple[jax.Array, jax.Array]:
  """(sum of sign(output - threshold), number of outputs) over every element of
  `outputs` (an array, or a list of a multi-scale D's arrays; a patch D's map counts
  each patch), int32 and exact. Under jit with the batch split over devices the sums
  span the global batch."""
  leaves = [jnp.asarray(o, jnp.float32) for o in jax.tree.leaves(outputs)]
  above = sum(jnp.sum(o > threshold, dtype=jnp.int32) for o in leaves)
  below = sum(jnp.sum(o < threshold, dtype=jnp.int32) for o in leaves)
  return above - below, jnp.asarray(sum(o.size for o in leaves), jnp.int32)


def adjusted_p(p, signs, count, *, target: float, batch_size: int, interval: int,
               kimg: float) -> jax.Array:
  """ADA's update of p after an interval of `interval` steps of `batch_size` images
  whose reals' sign sum is `signs` over `count` outputs: p moves by
  sign(signs / count - target) x batch_size x interval / (kimg x 1000), so it can cross
  [0, 1] in kimg thousand images (stylegan2-ada-pytorch's training_loop.py), and is
  kept in [0, 1] (the reference clamps at 0 only; above 1 every transform is applied
  already, and a p beyond it would only delay the way back). Unchanged when count is
  0 (no statistics yet)."""
  rate = signs.astype(jnp.float32) / jnp.maximum(count, 1).astype(jnp.float32)
  step = jnp.sign(rate - target) * (batch_size * interval / (kimg * 1000))
  new = jnp.clip(p + step, 0.0, 1.0).astype(jnp.asarray(p).dtype)
  return jnp.where(count > 0, new, p)
