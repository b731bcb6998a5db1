"""GAN objectives (lsgan, vanilla, hinge, wgangp), gradient penalties and L1.

Every function takes raw discriminator outputs (logits) and returns a float32 scalar
averaged over all elements, as the reference's `GANLoss` does. Discriminator losses are
returned un-halved: the task applies the reference's factor 1/2.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from jaxgan.errors import JaxganError

GAN_MODES = ('lsgan', 'vanilla', 'hinge', 'wgangp')


def check_mode(mode: str) -> None:
  if mode not in GAN_MODES:
    raise JaxganError(f"unknown loss.gan_mode '{mode}'; valid: {', '.join(GAN_MODES)}")


def _f32(x):
  return jnp.asarray(x, jnp.float32)


def generator_loss(mode: str, fake_logits: jax.Array) -> jax.Array:
  """Loss of a generator whose outputs D scored as `fake_logits`."""
  f = _f32(fake_logits)
  if mode == 'lsgan':
    return jnp.mean(jnp.square(f - 1.0))
  if mode == 'vanilla':
    return jnp.mean(jax.nn.softplus(-f))  # BCE with target 1
  if mode in ('hinge', 'wgangp'):
    return -jnp.mean(f)
  check_mode(mode)


def discriminator_loss(mode: str, real_logits: jax.Array, fake_logits: jax.Array,
                       real_label: float = 1.0) -> jax.Array:
  """Loss on real plus loss on fake (not halved). `real_label` < 1 is one-sided
  label smoothing for the vanilla and lsgan losses."""
  r, f = _f32(real_logits), _f32(fake_logits)
  if mode == 'lsgan':
    return jnp.mean(jnp.square(r - real_label)) + jnp.mean(jnp.square(f))
  if mode == 'vanilla':
    # BCE(r, t) = t * softplus(-r) + (1 - t) * softplus(r), stable for any logit.
    real = real_label * jax.nn.softplus(-r) + (1.0 - real_label) * jax.nn.softplus(r)
    return jnp.mean(real) + jnp.mean(jax.nn.softplus(f))
  if mode == 'hinge':
    return jnp.mean(jax.nn.relu(1.0 - r)) + jnp.mean(jax.nn.relu(1.0 + f))
  if mode == 'wgangp':
    return jnp.mean(f) - jnp.mean(r)
  check_mode(mode)


def gradient_penalty(d_fn: Callable[[jax.Array], jax.Array], real: jax.Array,
                     fake: jax.Array, rng: jax.Array) -> jax.Array:
  """WGAN-GP penalty: mean over samples of (||grad_x D(x_hat)||_2 - 1)^2 with x_hat a
  per-sample random interpolation of real and fake (Gulrajani et al. 2017)."""
  real, fake = _f32(real), _f32(fake)
  eps = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1))
  x_hat = eps * real + (1.0 - eps) * fake
  # D's outputs are summed: each sample's output depends only on its own input, so
  # the gradient of the sum is the per-sample gradient.
  grads = jax.grad(lambda x: jnp.sum(_f32(d_fn(x))))(x_hat)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1) + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))


def squared_gradient_norm(d_fn: Callable[[jax.Array], jax.Array],
                          x: jax.Array) -> jax.Array:
  """R1 / R2 penalty (Mescheder et al. 2018) before its gamma / 2: the mean over
  samples of ||grad_x D(x)||^2, at real images (R1) or fakes (R2)."""
  x = _f32(x)
  grads = jax.grad(lambda v: jnp.sum(_f32(d_fn(v))))(x)
  return jnp.mean(jnp.sum(jnp.square(grads.reshape(grads.shape[0], -1)), axis=1))


def l1(x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.mean(jnp.abs(_f32(x) - _f32(y)))
