"""What every GAN task shares: config checks, the two optimizers and the stability knobs.

A task subclasses `GANTask`, builds its networks into `self.modules` (name -> Flax
module), names them in `GENERATORS` / `DISCRIMINATORS` (the two optimizer groups), and
writes its `train_step` with the helpers here, so that `optimizer.*`, `loss.real_label`,
`loss.lambda_gp` and `train.instance_noise*` act the same way in every GAN.
"""

import jax
import jax.numpy as jnp
import optax

from jaxgan import losses, optim
from jaxgan.errors import JaxganError
from jaxgan.state import GANState
from jaxgan.tasks.nets import compute_dtype, init_variables

CHANNELS = (1, 3)


class GANTask:
  """Base of the tasks; see `jaxgan.tasks` for the interface the loop uses."""

  GENERATORS: tuple[str, ...] = ()
  DISCRIMINATORS: tuple[str, ...] = ()
  data_mode = 'unpaired'  # 'unpaired' | 'paired' | 'single' (one domain, 'a' only)
  evaluator = 'translation'  # jaxgan.evaluation.EVALUATORS key
  directions: dict[str, str] = {}

  def __init__(self, config, steps_per_epoch: int):
    self.config = config
    c, o, t = config.loss, config.optimizer, config.train
    losses.check_mode(c.gan_mode)
    self.dtype = compute_dtype(config.dtype)
    self.channels = config.data.channels
    if self.channels not in CHANNELS:
      raise JaxganError(f'data.channels={self.channels} must be 1 or 3')
    if o.lr <= 0:
      raise JaxganError(f'optimizer.lr={o.lr} must be > 0')
    if o.lr_d < 0 or t.instance_noise < 0 or t.instance_noise_steps < 0:
      raise JaxganError('optimizer.lr_d, train.instance_noise and '
                        'train.instance_noise_steps must be >= 0')
    if c.lambda_gp < 0:
      raise JaxganError(f'loss.lambda_gp={c.lambda_gp} must be >= 0')
    if not 0 < c.real_label <= 1:
      raise JaxganError(f'loss.real_label={c.real_label} must be in (0, 1]')
    if config.data.load_size < config.data.image_size:
      raise JaxganError(f'data.load_size={config.data.load_size} is smaller than '
                        f'data.image_size={config.data.image_size}')
    self.schedule = optim.lr_schedule(o.lr, t.epochs, t.epochs_decay, steps_per_epoch)
    self.schedule_d = optim.lr_schedule(o.lr_d or o.lr, t.epochs, t.epochs_decay,
                                        steps_per_epoch)
    self.optimizers = {'gen': optim.make_optimizer(o, self.schedule),
                       'disc': optim.make_optimizer(o, self.schedule_d)}
    self.modules = {}

  def check_size_multiple(self, multiple: int, what: str) -> None:
    size = self.config.data.image_size
    if size % multiple:
      raise JaxganError(f'data.image_size={size} must be a multiple of {multiple} '
                        f'for {what}')

  # -- state -----------------------------------------------------------------------

  def new_state(self, rng: jax.Array, input_shapes: dict, aux=None) -> GANState:
    """Initial state: each module of `input_shapes` (name -> input shape) initialised
    from its own key, both optimizers' states, and the task's `aux` arrays."""
    init_rng, state_rng = jax.random.split(rng)
    params, stats = {}, {}
    keys = jax.random.split(init_rng, len(input_shapes))
    for (name, shape), key in zip(input_shapes.items(), keys):
      params[name], stats[name] = init_variables(self.modules[name], key, shape)
    return GANState(
        step=jnp.zeros((), jnp.int32), rng=state_rng, params=params, batch_stats=stats,
        opt_state={'gen': self.optimizers['gen'].init(self.group(params, 'gen')),
                   'disc': self.optimizers['disc'].init(self.group(params, 'disc'))},
        aux=aux if aux is not None else {})

  def group(self, params, which: str) -> dict:
    """The params of one optimizer group: 'gen' or 'disc'."""
    names = self.GENERATORS if which == 'gen' else self.DISCRIMINATORS
    return {k: params[k] for k in names}

  def update(self, which: str, grads, state: GANState, params):
    """(new params of the group, its new optimizer state)."""
    updates, opt = self.optimizers[which].update(grads, state.opt_state[which], params)
    return optax.apply_updates(params, updates), opt

  def step_metrics(self, state: GANState, grads_g, grads_d, noise_std) -> dict:
    """The metrics every task logs besides its losses."""
    return {'grad_norm_G': optax.global_norm(grads_g),
            'grad_norm_D': optax.global_norm(grads_d),
            'lr': self.schedule(state.step),
            'lr_D': self.schedule_d(state.step),
            'instance_noise': noise_std}

  # -- stability knobs ---------------------------------------------------------------

  def instance_noise(self, state: GANState, key: jax.Array):
    """(noisy(x, draw), std): Gaussian noise on a D input with this step's annealed std
    (a no-op when train.instance_noise is 0); each D input of the step passes its own
    `draw` number so that no two share a noise sample."""
    t = self.config.train
    std = optim.instance_noise_std(state.step, t.instance_noise, t.instance_noise_steps)

    def noisy(x, draw: int):
      if not t.instance_noise:
        return x
      noise = jax.random.normal(jax.random.fold_in(key, draw), x.shape, x.dtype)
      return x + std * noise

    return noisy, std

  def discriminator_loss(self, nets, name: str, real, fake, gp_key):
    """(loss on real + loss on fake, gradient penalty or None) of discriminator `name`;
    the penalty (wgangp only) is already added to the loss, times loss.lambda_gp."""
    c = self.config.loss
    loss = losses.discriminator_loss(c.gan_mode, nets(name, real), nets(name, fake),
                                     real_label=c.real_label)
    if c.gan_mode != 'wgangp':
      return loss, None
    gp = losses.gradient_penalty(lambda x: nets.frozen(name, x), real, fake, gp_key)
    return loss + c.lambda_gp * gp, gp
