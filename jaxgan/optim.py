"""Optimizer groups, learning-rate schedules and learning-rate multipliers (Optax).

A task names its optimizer groups and the networks each holds (`GANTask.GROUPS`, e.g.
CycleGAN's gen = (G, F), disc = (D_A, D_B)). The config's `optimizer` group holds the
settings every group inherits; `optimizer.groups.<group>.<key>` overrides one of them
for one group (unset = inherit). The keys (`GROUP_KEYS`):

  name        adam | sgd
  lr          base learning rate
  b1, b2, eps Adam's betas and epsilon
  momentum    SGD's momentum (0: plain SGD)
  clip_norm   global-norm gradient clipping of the group (0: off)
  weight_decay  L2 weight decay added to the gradient before Adam's moments (or SGD's
              momentum), as torch's Adam(weight_decay=...) applies it (0: off)
  schedule    constant | linear_decay (the reference's per-epoch rule: train.epochs
              constant, then train.epochs_decay linear to 0) | cosine (to 0 over the run)
              | step_decay (x decay_factor every decay_every steps, torch's StepLR)
  decay_every, decay_factor  step_decay's interval (steps) and factor
  lr_mult     ('REGEX=FACTOR', ...): updates of parameters whose path 'NET/.../name'
              fully matches REGEX are scaled by FACTOR (the first matching pattern);
              e.g. ('G/mapping/.*=0.01',) for a mapping network at 0.01x the rate

A group updated by a lazy regulariser every k steps (besides its main update) gets the
reference's correction (Karras et al. 2020): lr x c, Adam's betas ^ c (SGD's momentum
^ c) with c = k / (k + 1). Its schedule is read at the training step, not at the count
of the group's updates (which the lazy steps advance too; Adam's bias correction does
count every update, as the reference's shared optimizer does).
"""

import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxgan.errors import JaxganError

OPTIMIZERS = ('adam', 'sgd')
SCHEDULES = ('constant', 'linear_decay', 'cosine', 'step_decay')
GROUP_KEYS = ('name', 'lr', 'b1', 'b2', 'eps', 'momentum', 'clip_norm', 'weight_decay',
              'schedule', 'decay_every', 'decay_factor', 'lr_mult')


def linear_decay_factor(epoch, epochs: int, epochs_decay: int):
  """The reference's `lambda_rule`: 1 for the first `epochs` epochs (0-based epoch
  index), then 1 - (epoch + 1 - epochs) / (epochs_decay + 1), reaching 1/(epochs_decay+1)
  in the last epoch, exactly as pytorch-CycleGAN-and-pix2pix's 'linear' policy."""
  return 1.0 - jnp.maximum(0, epoch + 1 - epochs) / float(epochs_decay + 1)


def linear_decay_schedule(lr: float, epochs: int, epochs_decay: int, steps_per_epoch: int):
  """Optax schedule: step -> lr, constant per epoch like the reference's per-epoch
  scheduler (epoch = step // steps_per_epoch)."""
  steps_per_epoch = max(1, int(steps_per_epoch))

  def schedule(step):
    epoch = jnp.asarray(step) // steps_per_epoch
    return lr * jnp.maximum(0.0, linear_decay_factor(epoch, epochs, epochs_decay))

  return schedule


def make_schedule(kind: str, lr: float, *, epochs: int, epochs_decay: int,
                  steps_per_epoch: int, total_steps: int, decay_every: int = 0,
                  decay_factor: float = 1.0) -> Callable:
  """step -> learning rate for schedule `kind` (see the module docstring)."""
  if kind == 'step_decay':
    every = max(1, int(decay_every))
    return lambda step: lr * jnp.power(jnp.float32(decay_factor),
                                       jnp.asarray(step) // every).astype(jnp.float32)
  if kind == 'constant':
    return lambda step: jnp.full((), lr, jnp.float32)
  if kind == 'linear_decay':
    return linear_decay_schedule(lr, epochs, epochs_decay, steps_per_epoch)
  if kind == 'cosine':
    return optax.cosine_decay_schedule(lr, decay_steps=max(1, int(total_steps)))
  raise JaxganError(f"unknown optimizer schedule '{kind}'; valid: {', '.join(SCHEDULES)}")


def resolve_groups(opt_cfg, group_names) -> dict[str, dict[str, Any]]:
  """{group: its settings}, each key from `optimizer.groups.<group>` where set, else
  from `optimizer`; checks every value (one-line errors naming the key)."""
  overrides = opt_cfg.get('groups') or {}
  unknown = sorted(set(overrides) - set(group_names))
  if unknown:
    raise JaxganError(f"unknown optimizer group(s) {', '.join(unknown)}; this task's "
                      f"groups: {', '.join(group_names)}")
  resolved = {}
  for group in group_names:
    own = overrides.get(group) or {}
    settings = {k: own[k] if own.get(k) is not None else opt_cfg[k] for k in GROUP_KEYS}
    _check(settings, lambda k: f'optimizer.groups.{group}.{k}' if own.get(k) is not None
           else f'optimizer.{k}')
    resolved[group] = settings
  return resolved


def _check(s: dict, where: Callable[[str], str]) -> None:
  """Checks one group's settings; `where(key)` names the config key a value came from."""
  if s['name'] not in OPTIMIZERS:
    raise JaxganError(f"unknown {where('name')} '{s['name']}'; valid: "
                      f"{', '.join(OPTIMIZERS)}")
  if s['schedule'] not in SCHEDULES:
    raise JaxganError(f"unknown {where('schedule')} '{s['schedule']}'; valid: "
                      f"{', '.join(SCHEDULES)}")
  if s['lr'] <= 0:
    raise JaxganError(f"{where('lr')}={s['lr']} must be > 0")
  if s['weight_decay'] < 0:
    raise JaxganError(f"{where('weight_decay')}={s['weight_decay']} must be >= 0")
  if s['schedule'] == 'step_decay' and s['decay_every'] < 1:
    raise JaxganError(f"{where('decay_every')}={s['decay_every']} must be >= 1 for the "
                      "step_decay schedule")
  if not 0 < s['decay_factor'] <= 1:
    raise JaxganError(f"{where('decay_factor')}={s['decay_factor']} must be in (0, 1]")
  if s['clip_norm'] < 0:
    raise JaxganError(f"{where('clip_norm')}={s['clip_norm']} must be >= 0 (0: no "
                      "clipping)")
  for key in ('b1', 'b2', 'momentum'):
    if not 0 <= s[key] < 1:
      raise JaxganError(f'{where(key)}={s[key]} must be in [0, 1)')
  if s['eps'] < 0:
    raise JaxganError(f"{where('eps')}={s['eps']} must be >= 0")
  parse_lr_mult(s['lr_mult'], where('lr_mult'))


def parse_lr_mult(items, where: str = 'optimizer.lr_mult') -> list[tuple[re.Pattern, float]]:
  """('REGEX=FACTOR', ...) -> [(compiled regex, factor)]."""
  rules = []
  for item in items or ():
    pattern, sep, factor = str(item).rpartition('=')
    try:
      if not sep or not pattern:
        raise ValueError
      rules.append((re.compile(pattern), float(factor)))
    except (ValueError, re.error):
      raise JaxganError(f"bad {where} entry {item!r}: expected 'REGEX=FACTOR', "
                        "e.g. 'G/mapping/.*=0.01'") from None
  return rules


def param_path(path) -> str:
  """'NET/module/param' of a key path in a {net: params} tree."""
  return '/'.join(str(getattr(k, 'key', getattr(k, 'idx', k))) for k in path)


def scale_by_lr_mult(rules) -> optax.GradientTransformation:
  """Scales each update by the factor of the first rule whose regex fully matches the
  parameter's path (1 where none matches); a rule matching nothing is an error."""

  def factors(tree):
    paths = [param_path(p) for p, _ in jax.tree_util.tree_leaves_with_path(tree)]
    for regex, _ in rules:
      if not any(regex.fullmatch(p) for p in paths):
        raise JaxganError(f"optimizer lr_mult pattern '{regex.pattern}' matches no "
                          f"parameter (paths look like '{paths[0] if paths else ''}')")

    def factor(path, _):
      p = param_path(path)
      return next((f for regex, f in rules if regex.fullmatch(p)), 1.0)

    return jax.tree_util.tree_map_with_path(factor, tree)

  def init(params):
    factors(params)  # checks the patterns once, where the parameter paths are known
    return optax.EmptyState()

  def update(updates, state, params=None):
    del params
    return jax.tree.map(lambda u, f: u * f, updates, factors(updates)), state

  return optax.GradientTransformation(init, update)


def scale_by_rate(rate: Callable) -> optax.GradientTransformationExtraArgs:
  """Multiplies the updates by -rate(step), `step` the training step given to
  `update` (`update(..., step=state.step)`), not a count of this transform's own
  updates: a group updated by a lazy regulariser as well as by the main step gets
  more updates than steps, and its schedule must still follow the training step."""

  def init(params):
    del params
    return optax.EmptyState()

  def update(updates, state, params=None, *, step, **extra):
    del params, extra
    step_size = -rate(step)  # the value optax's scale_by_learning_rate would use
    return jax.tree.map(lambda u: jnp.array(step_size, dtype=u.dtype) * u, updates), state

  return optax.GradientTransformationExtraArgs(init, update)


def lazy_correction(lazy_interval: int) -> float:
  """c = k / (k + 1) for a group a lazy regulariser also updates every k > 1 steps
  (Karras et al. 2020); 1 otherwise."""
  return lazy_interval / (lazy_interval + 1.0) if lazy_interval > 1 else 1.0


def group_rate(schedule: Callable, lazy_interval: int = 1) -> Callable:
  """step -> the rate a group's update applies: the schedule, times the lazy
  correction (`lazy_correction`)."""
  if lazy_interval <= 1:
    return schedule
  c = lazy_correction(lazy_interval)
  return lambda step: c * schedule(step)


def make_optimizer(settings: dict, schedule: Callable,
                   lazy_interval: int = 1) -> optax.GradientTransformationExtraArgs:
  """The group's transform: [clip] -> [+ weight decay x params] -> Adam's moments |
  SGD's momentum -> -rate(step)
  -> [lr multipliers]; `update(grads, opt_state, params, step=STEP)` takes the
  training step the rate is read at (see `scale_by_rate`). `lazy_interval` k > 1
  applies the lazy-regularisation correction c = k / (k + 1) to the rate and to the
  betas (momentum). The same arithmetic as optax.adam / optax.sgd."""
  c = lazy_correction(lazy_interval)
  parts = []
  if settings['clip_norm']:
    parts.append(optax.clip_by_global_norm(settings['clip_norm']))
  if settings['weight_decay']:  # torch's coupled L2: wd * param joins the gradient
    parts.append(optax.add_decayed_weights(settings['weight_decay']))
  if settings['name'] == 'adam':
    parts.append(optax.scale_by_adam(b1=settings['b1'] ** c, b2=settings['b2'] ** c,
                                     eps=settings['eps']))
  elif settings['momentum']:
    parts.append(optax.trace(decay=settings['momentum'] ** c))
  else:
    parts.append(optax.identity())
  parts.append(scale_by_rate(group_rate(schedule, lazy_interval)))
  rules = parse_lr_mult(settings['lr_mult'])
  if rules:
    parts.append(scale_by_lr_mult(rules))
  return optax.chain(*parts)


def instance_noise_std(step, std: float, anneal_steps: int):
  """Std of the Gaussian noise added to D's inputs (Sønderby et al. 2016): `std`
  annealed linearly to 0 over `anneal_steps` steps (0: constant)."""
  if not anneal_steps:
    return jnp.asarray(std, jnp.float32)
  return std * jnp.maximum(0.0, 1.0 - jnp.asarray(step, jnp.float32) / anneal_steps)


def ema_beta(step, *, batch_size: int, decay: float, half_life_images: float,
             rampup: float):
  """This step's EMA factor beta (ema <- p + beta * (ema - p)).

  With `half_life_images` > 0, beta = 0.5 ** (batch / half-life), the half-life capped
  at `rampup` x the images seen before this step when rampup > 0 (StyleGAN2's ema_kimg
  and ema_rampup); otherwise the constant `decay`."""
  if half_life_images <= 0:
    return jnp.asarray(decay, jnp.float32)
  half_life = jnp.asarray(half_life_images, jnp.float32)
  if rampup > 0:
    seen = jnp.asarray(step, jnp.float32) * batch_size
    half_life = jnp.minimum(half_life, seen * rampup)
  return 0.5 ** (batch_size / jnp.maximum(half_life, 1e-8))
