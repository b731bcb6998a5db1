"""Learning-rate schedule and optimizers (Optax), shared by every GAN task."""

import jax.numpy as jnp
import optax

from jaxgan.errors import JaxganError


def linear_decay_factor(epoch, epochs: int, epochs_decay: int):
  """The reference's `lambda_rule`: 1 for the first `epochs` epochs (0-based epoch
  index), then 1 - (epoch + 1 - epochs) / (epochs_decay + 1), reaching 1/(epochs_decay+1)
  in the last epoch, exactly as pytorch-CycleGAN-and-pix2pix's 'linear' policy."""
  return 1.0 - jnp.maximum(0, epoch + 1 - epochs) / float(epochs_decay + 1)


def lr_schedule(lr: float, epochs: int, epochs_decay: int, steps_per_epoch: int):
  """Optax schedule: step -> lr, constant per epoch like the reference's per-epoch
  scheduler (epoch = step // steps_per_epoch)."""
  steps_per_epoch = max(1, int(steps_per_epoch))

  def schedule(step):
    epoch = jnp.asarray(step) // steps_per_epoch
    return lr * jnp.maximum(0.0, linear_decay_factor(epoch, epochs, epochs_decay))

  return schedule


OPTIMIZERS = ('adam', 'sgd')


def make_optimizer(cfg, schedule) -> optax.GradientTransformation:
  """`cfg` is a config's `optimizer` group: name adam (b1, b2, eps) or sgd
  (momentum; 0 is plain SGD), after global-norm clipping to `clip_norm` (0: off)."""
  if cfg.name == 'adam':
    base = optax.adam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
  elif cfg.name == 'sgd':
    base = optax.sgd(schedule, momentum=cfg.momentum or None)
  else:
    raise JaxganError(f"unknown optimizer.name '{cfg.name}'; valid: {', '.join(OPTIMIZERS)}")
  if cfg.clip_norm < 0:
    raise JaxganError(f'optimizer.clip_norm={cfg.clip_norm} must be >= 0 (0: no clipping)')
  if cfg.clip_norm:
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), base)
  return base


def instance_noise_std(step, std: float, anneal_steps: int):
  """Std of the Gaussian noise added to D's inputs (Sønderby et al. 2016): `std`
  annealed linearly to 0 over `anneal_steps` steps (0: constant)."""
  if not anneal_steps:
    return jnp.asarray(std, jnp.float32)
  return std * jnp.maximum(0.0, 1.0 - jnp.asarray(step, jnp.float32) / anneal_steps)
