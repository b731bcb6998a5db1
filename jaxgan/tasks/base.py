"""What every GAN task shares: config checks, optimizer groups, EMA, gradient
penalties, lazy regularisation steps and the stability knobs.

A task subclasses `GANTask` (which implements `jaxgan.tasks.Task`, the contract the
loop, the evaluators and the command-line tools use), builds its networks into
`self.modules` (name -> Flax module), names its optimizer groups in `GROUPS`, gives
each network's example inputs in `init_inputs`, and writes its main `train_step`,
`sample` and `predictors` with the helpers here (`step_keys`, `train_nets`,
`descend` / `apply_gradients`, `commit`, `step_metrics`), so that `optimizer.*`,
`ema.*`, `loss.gp*`, `loss.real_label`, `train.instance_noise*` and `augment.*` act the
same way in every GAN.

Every discriminator input of a step (reals and fakes, in the G and the D phase) goes
through the step's `DInputTransform` (`d_input_transform`): augmentation, then instance
noise. With augment.policy=ada each discriminator has its own strength p in
`state.aux['ada']`, adapted by the 'ada' step function (see `ada_step`).
"""

import dataclasses
import math
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from jaxgan import augment, losses, optim
from jaxgan.errors import JaxganError
from jaxgan.state import GANState, InferenceState
from jaxgan.tasks.nets import Nets, compute_dtype, init_variables

CHANNELS = (1, 3)
PENALTIES = ('none', 'wgangp', 'r1', 'r2')
# Folded into the step key of a lazy regulariser, so it draws apart from the main step.
_PENALTY_STREAM = 0x5E9
# Folded into a D input transform's key for the augmentation's draws (the instance
# noise keeps the key itself, so runs without augmentation keep their numbers).
_AUGMENT_STREAM = 0xA06


@dataclasses.dataclass(frozen=True)
class GroupUpdate:
  """One optimizer group's gradient step inside a step function: the group's new
  params and optimizer state, its gradients, and the objective's loss and aux."""
  group: str
  params: dict
  opt_state: Any
  grads: dict
  loss: Any = None
  aux: Any = None


@dataclasses.dataclass(frozen=True)
class DInputTransform:
  """What every discriminator input of one step goes through: `to_d(name, x, draw)`
  is image batch x as discriminator `name` is shown it, augmented (`augment`: the
  policy's fn(images, p, key), None for none; `p`: each discriminator's ADA strength,
  {} unless ADA), then with instance noise of std `noise_std` when `noise`. Each input
  of a step passes its own `draw` number, so no two inputs (a real and a fake, or the
  fakes of the G and the D phase) share an augmentation or a noise sample, as each of
  the reference's run_D calls draws its own. An input that stacks several images on
  the channel axis (pix2pix's [input, output] pair) gives each the same transform."""
  augment: Callable | None
  p: Mapping[str, jax.Array]
  channels: int
  key: jax.Array
  noise_std: Any
  noise: bool

  def __call__(self, name: str, x: jax.Array, draw: int) -> jax.Array:
    if self.augment is not None:
      key = jax.random.fold_in(jax.random.fold_in(self.key, _AUGMENT_STREAM), draw)
      p = self.p.get(name)
      x = augment.per_image(lambda images: self.augment(images, p, key), x, self.channels)
    if self.noise:
      noise = jax.random.normal(jax.random.fold_in(self.key, draw), x.shape, x.dtype)
      x = x + self.noise_std * noise
    return x

  def views(self, name: str, real_draw: int, fake_draw: int) -> tuple[Callable, Callable]:
    """(real -> D input, fake -> D input) of discriminator `name` with these draws:
    what `GANTask.discriminator_loss` and `penalty` take."""
    return (lambda x: self(name, x, real_draw)), (lambda x: self(name, x, fake_draw))


def _unchanged(x):
  return x


@dataclasses.dataclass(frozen=True)
class StyleControl:
  """The style input of a style-controlled translator (G(A, S) = B, MUNIT): styles
  are vectors [n, style_dim]. `random(rng, n)` draws n from the prior; `encode(model,
  y)` gives the styles of images y of the target domain (example-guided
  translation); `apply(model, x, styles)` translates images x in those styles (one
  style per image)."""
  style_dim: int
  random: Callable[[jax.Array, int], jax.Array]
  encode: Callable[[Any, jax.Array], jax.Array]
  apply: Callable[[Any, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Translator:
  """An image-to-image predictor: `fn(model, x)` maps [N, H, W, C] images in [-1, 1]
  of data domain `source` ('a' or 'b') to images of domain `target`; H and W must be
  multiples of `size_multiple`. `model` is a GANState or an InferenceState. A
  translator whose output also depends on a style has `style` (what `translate
  --style-*` and `sample --style-grid` use; `fn` then uses one fixed style)."""
  fn: Callable[[Any, jax.Array], jax.Array]
  source: str
  target: str
  size_multiple: int
  style: StyleControl | None = None


@dataclasses.dataclass(frozen=True)
class Sampler:
  """An unconditional predictor: `fn(model, rng, n)` -> n images [n, H, W, C] in
  [-1, 1] (what evaluation scores, under `suffix`: '' for the task's one sampler).

  For `jaxgan.sample`: `decode(model, z)` maps latents z [n, latent_dim] to images,
  deterministically; a style-based generator also gives `styles(model, z, psi,
  cutoff)` -> per-layer styles [n, num_ws, w_dim] (truncated towards the average w
  with psi, in the first `cutoff` layers, all if None) and `synthesize(model, ws)`."""
  fn: Callable[[Any, jax.Array, int], jax.Array]
  latent_dim: int
  decode: Callable[[Any, jax.Array], jax.Array]
  suffix: str = ''
  styles: Callable | None = None
  synthesize: Callable | None = None
  num_ws: int = 0


class GANTask:
  """Base of the tasks; see `jaxgan.tasks.Task` for the contract."""

  GENERATORS: tuple[str, ...] = ()
  DISCRIMINATORS: tuple[str, ...] = ()
  D_LOSS_SCALE = 1.0  # the factor on each discriminator's loss (the reference: 1/2)
  data_mode = 'unpaired'  # 'unpaired' | 'paired' | 'single' (one domain, 'a' only)
  size_multiple = 1

  def __init__(self, config, steps_per_epoch: int | None = None):
    """`steps_per_epoch` None: inference only (no optimizers are built)."""
    self.config = config
    c, t = config.loss, config.train
    losses.check_mode(c.gan_mode)
    self.dtype = compute_dtype(config.dtype)
    self.channels = config.data.channels
    if self.channels not in CHANNELS:
      raise JaxganError(f'data.channels={self.channels} must be 1 or 3')
    if t.instance_noise < 0 or t.instance_noise_steps < 0:
      raise JaxganError('train.instance_noise and train.instance_noise_steps must be >= 0')
    # The augment group (absent from the config.json of a run older than it: none).
    self.augment_config = config.augment if 'augment' in config else None
    self.augment_fn = None  # the policy's fn(images, p, key); None: no augmentation
    if self.augment_config is not None:
      augment.check(self.augment_config, c.gan_mode)
      self.augment_fn = augment.make(self.augment_config)
    if c.lambda_gp < 0:
      raise JaxganError(f'loss.lambda_gp={c.lambda_gp} must be >= 0')
    if c.gp not in PENALTIES + ('auto',):
      raise JaxganError(f"unknown loss.gp '{c.gp}'; valid: auto, {', '.join(PENALTIES)}")
    if c.gp_every < 1:
      raise JaxganError(f'loss.gp_every={c.gp_every} must be >= 1')
    if not 0 < c.real_label <= 1:
      raise JaxganError(f'loss.real_label={c.real_label} must be in (0, 1]')
    if config.data.load_size < config.data.image_size:
      raise JaxganError(f'data.load_size={config.data.load_size} is smaller than '
                        f'data.image_size={config.data.image_size}')
    e = config.ema
    if e.half_life_images < 0 or e.rampup < 0 or not 0 <= e.decay < 1:
      raise JaxganError('ema.half_life_images and ema.rampup must be >= 0 and ema.decay '
                        'in [0, 1)')
    self.penalty_kind = ('wgangp' if c.gan_mode == 'wgangp' else 'none'
                         ) if c.gp == 'auto' else c.gp
    self.group_settings = optim.resolve_groups(config.optimizer, tuple(self.GROUPS))
    # group -> step -> the schedule's rate; the rate its updates apply (with the lazy
    # correction); its optax transform (updated with step=state.step).
    self.schedules, self.rates, self.optimizers = {}, {}, {}
    if steps_per_epoch is not None:
      self.prepare_training(steps_per_epoch)
    self.modules = {}

  def prepare_training(self, steps_per_epoch: int) -> None:
    """Builds every group's schedule and optimizer for epochs of `steps_per_epoch`
    steps (the loop calls it once the data is open; `Task(config, steps_per_epoch)`
    calls it from the constructor, before the subclass's own __init__ body)."""
    t = self.config.train
    total = t.num_steps or (t.epochs + t.epochs_decay) * max(1, steps_per_epoch)
    lazy = self.lazy_intervals()
    for group, s in self.group_settings.items():
      self.schedules[group] = optim.make_schedule(
          s['schedule'], s['lr'], epochs=t.epochs, epochs_decay=t.epochs_decay,
          steps_per_epoch=steps_per_epoch, total_steps=total,
          decay_every=s['decay_every'], decay_factor=s['decay_factor'])
      self.rates[group] = optim.group_rate(self.schedules[group], lazy.get(group, 1))
      self.optimizers[group] = optim.make_optimizer(s, self.schedules[group],
                                                    lazy.get(group, 1))

  # -- the contract's members with a shared implementation -------------------------

  @property
  def GROUPS(self) -> Mapping[str, tuple[str, ...]]:  # noqa: N802 (a class constant)
    """Optimizer group -> the networks it holds (override for other groupings)."""
    return {'gen': self.GENERATORS, 'disc': self.DISCRIMINATORS}

  @property
  def ema_networks(self) -> tuple[str, ...]:
    """The networks with an EMA of their weights (() when EMA is off)."""
    e = self.config.ema
    if not (e.half_life_images > 0 or e.decay > 0):
      return ()
    names = tuple(e.networks) or self.GENERATORS
    unknown = [n for n in names if n not in self.modules]
    if unknown:
      raise JaxganError(f"ema.networks: unknown network(s) {', '.join(unknown)}; this "
                        f"task's: {', '.join(self.modules)}")
    return names

  @property
  def adaptive_augment(self) -> bool:
    """Whether the state keeps ADA's p and statistics (augment.policy=ada)."""
    return self.augment_config is not None and self.augment_config.policy == 'ada'

  @property
  def lazy_penalty(self) -> bool:
    return self.penalty_kind != 'none' and self.config.loss.gp_every > 1

  def lazy_intervals(self) -> dict[str, int]:
    """Optimizer group -> interval k of the lazy regulariser step that also updates
    it (its optimizer gets the lazy correction). Called before the subclass's
    __init__ body runs: read the config only. A task with its own lazy steps (e.g. a
    path-length step on 'gen') adds them here."""
    if not self.lazy_penalty:
      return {}
    return {self.group_of(self.DISCRIMINATORS): self.config.loss.gp_every}

  def step_functions(self) -> dict[str, tuple[Callable, int]]:
    """name -> (pure step fn(state, batch) -> (state, metrics), interval), in the
    order the loop runs them within one iteration: with ADA, 'ada' first (every
    augment.ada_interval steps: p adjusted from the statistics of the iterations
    before), 'main' (which advances `state.step`), the regularisers, and 'ema' last, so
    the average sees every update of the iteration, as the reference's G_ema does."""
    steps = {}
    if self.adaptive_augment:
      steps['ada'] = (self.ada_step, self.augment_config.ada_interval)
    steps.update({'main': (self.train_step, 1), **self.regularizer_steps()})
    if self.ema_networks:
      steps['ema'] = (self.ema_step, 1)
    return steps

  def regularizer_steps(self) -> dict[str, tuple[Callable, int]]:
    """The lazy regularisers' steps: 'd_reg' (the penalty, every loss.gp_every
    steps) when the penalty is lazy. A task adds its own (e.g. StyleGAN's g_reg)."""
    if not self.lazy_penalty:
      return {}
    return {'d_reg': (self.penalty_step, self.config.loss.gp_every)}

  def init_inference(self, rng: jax.Array) -> InferenceState:
    """The inference part of the state (its shapes give the restore target)."""
    params, stats = self._init_networks(jax.random.split(rng)[0])
    return InferenceState(params=params, batch_stats=stats,
                          ema_params=self._ema_init(params), aux=self.inference_aux())

  def inference_aux(self) -> dict:
    """The aux arrays inference needs, initialised (their keys are restored)."""
    return {}

  def init_inputs(self) -> dict[str, tuple]:
    """Network name -> its example positional inputs (arrays or jax.ShapeDtypeStruct;
    zeros of those shapes are used), in init order: a network with several inputs
    (content and style, say) lists them all."""
    raise NotImplementedError

  def image_spec(self, channels: int | None = None) -> jax.ShapeDtypeStruct:
    """One image of the training resolution: [1, S, S, channels (default the task's)]."""
    size = self.config.data.image_size
    return jax.ShapeDtypeStruct((1, size, size, channels or self.channels), jnp.float32)

  @staticmethod
  def grid_columns(images: jax.Array) -> tuple[jax.Array, ...]:
    """n * n images -> the n columns of an n x n sample grid (row-major)."""
    n = math.isqrt(images.shape[0])
    rows = images.reshape((n, n) + images.shape[1:])
    return tuple(rows[:, j] for j in range(n))

  def check_size_multiple(self, multiple: int, what: str) -> None:
    size = self.config.data.image_size
    if size % multiple:
      raise JaxganError(f'data.image_size={size} must be a multiple of {multiple} '
                        f'for {what}')

  # -- state -----------------------------------------------------------------------

  def _init_networks(self, rng: jax.Array):
    """Each network of `init_inputs` initialised from its own key, in order."""
    params, stats = {}, {}
    inputs = self.init_inputs()
    for (name, args), key in zip(inputs.items(), jax.random.split(rng, len(inputs))):
      params[name], stats[name] = init_variables(self.modules[name], key, args)
    return params, stats

  def _ema_init(self, params) -> dict:
    return {name: params[name] for name in self.ema_networks}

  def new_state(self, rng: jax.Array, aux=None) -> GANState:
    """Initial state: the networks, their EMA, every group's optimizer state, and the
    task's `aux` arrays (with ADA, also aux['ada']: discriminator -> its p, at
    augment.p_init, and its statistics, zero)."""
    if not self.optimizers:
      raise JaxganError('this task was built for inference (no steps_per_epoch): it '
                        'has no optimizers to initialise')
    init_rng, state_rng = jax.random.split(rng)
    params, stats = self._init_networks(init_rng)
    return GANState(
        step=jnp.zeros((), jnp.int32), rng=state_rng, params=params, batch_stats=stats,
        ema_params=self._ema_init(params),
        opt_state={g: self.optimizers[g].init(self.group(params, g)) for g in self.GROUPS},
        aux={**(aux or {}), **self._ada_init()})

  def group(self, params, which: str) -> dict:
    """The params of one optimizer group."""
    return {k: params[k] for k in self.GROUPS[which]}

  def group_of(self, names) -> str:
    """The optimizer group holding all the networks `names`."""
    for group, members in self.GROUPS.items():
      if set(names) <= set(members):
        return group
    raise JaxganError(f"no optimizer group holds all of {', '.join(names)}")

  # -- the step's scaffolding -------------------------------------------------------

  @staticmethod
  def step_keys(state: GANState, n: int) -> jax.Array:
    """n independent keys of this step: the state's key folded with the step, split."""
    return jax.random.split(jax.random.fold_in(state.rng, state.step), n)

  def train_nets(self, state: GANState, group_params=None, stats=None, **kwargs) -> Nets:
    """The networks in train mode on `state`'s params with `group_params` (a group's
    params being differentiated or just updated) in place, threading `stats` (default
    the state's batch statistics); `kwargs` as `Nets` takes them (rng, streams)."""
    return Nets(self.modules, {**state.params, **(group_params or {})},
                state.batch_stats if stats is None else stats, train=True, **kwargs)

  def descend(self, group: str, objective: Callable, state: GANState) -> GroupUpdate:
    """One gradient step of `group` on objective(group params) -> (loss, aux)."""
    params = self.group(state.params, group)
    (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(params)
    return self.apply_gradients(group, grads, state, loss=loss, aux=aux)

  def apply_gradients(self, group: str, grads, state: GANState, **outputs) -> GroupUpdate:
    """`group`'s optimizer applied to `grads` (of the group's params in `state`), its
    rate read at `state.step`; `outputs` (loss, aux) are carried along."""
    params = self.group(state.params, group)
    updates, opt = self.optimizers[group].update(grads, state.opt_state[group], params,
                                                 step=state.step)
    return GroupUpdate(group, optax.apply_updates(params, updates), opt, grads, **outputs)

  @staticmethod
  def commit(state: GANState, *updates: GroupUpdate, advance: bool = True,
             **fields) -> GANState:
    """`state` with each group's new params and optimizer state, any other field
    replaced from `fields` (batch_stats, aux), and the step advanced by one unless
    `advance` is False (a regulariser's step)."""
    params, opt = dict(state.params), dict(state.opt_state)
    for u in updates:
      params.update(u.params)
      opt[u.group] = u.opt_state
    step = state.step + 1 if advance else state.step
    return state.replace(step=step, params=params, opt_state=opt, **fields)

  def step_metrics(self, state: GANState, updates, to_d: DInputTransform,
                   real_outputs: Mapping[str, Any]) -> dict:
    """The metrics every task logs besides its losses: grad_norm_<group> of each
    update, lr_<group> (the rate applied at this step, with any lazy correction) of
    every group, the instance noise's std, and with ADA each discriminator's p and
    its mean sign of D(real) this step, ada_p and ada_rt (ada_p_<D> and ada_rt_<D>
    with several discriminators). `real_outputs`: discriminator -> its outputs on the
    step's reals (`discriminator_loss`'s third result)."""
    metrics = {**{f'grad_norm_{u.group}': optax.global_norm(u.grads) for u in updates},
               **{f'lr_{g}': rate(state.step) for g, rate in self.rates.items()},
               'instance_noise': to_d.noise_std}
    if self.adaptive_augment:
      threshold = self._sign_threshold()
      for name, out in real_outputs.items():
        suffix = '' if len(self.DISCRIMINATORS) == 1 else '_' + name
        signs, count = augment.sign_counts(out, threshold)
        metrics['ada_p' + suffix] = to_d.p[name]
        metrics['ada_rt' + suffix] = signs / count
    return metrics

  # -- EMA ---------------------------------------------------------------------------

  def ema_step(self, state: GANState, batch):
    """ema <- p + beta (ema - p) for each EMA network, at the end of an iteration
    (after 'main' advanced the step: the images seen before it are (step - 1) x
    batch, the reference's cur_nimg)."""
    del batch
    e = self.config.ema
    beta = optim.ema_beta(state.step - 1, batch_size=self.config.data.batch_size,
                          decay=e.decay, half_life_images=e.half_life_images,
                          rampup=e.rampup)
    ema = {name: jax.tree.map(lambda p, m: p + beta * (m - p), state.params[name],
                              state.ema_params[name])
           for name in self.ema_networks}
    return state.replace(ema_params=ema), {'ema_beta': beta}

  def inference_params(self, model) -> dict:
    """The params inference uses: the EMA weights in place of the live ones when the
    task keeps an EMA and ema.for_inference is on."""
    if self.config.ema.for_inference and model.ema_params:
      return {**model.params, **model.ema_params}
    return model.params

  def nets(self, model, *, train: bool = False, rng=None, **kwargs) -> Nets:
    """The networks of `model` (GANState or InferenceState) for inference."""
    return Nets(self.modules, self.inference_params(model), model.batch_stats,
                train=train, rng=rng, **kwargs)

  # -- the discriminators' inputs: augmentation and instance noise -------------------

  def d_input_transform(self, state: GANState, key: jax.Array, *,
                        noise: bool = True) -> DInputTransform:
    """This step's transform of every D input (`DInputTransform`), drawing from `key`:
    the augmentation of augment.policy (at each discriminator's p in the state, with
    ADA), then Gaussian noise with this step's annealed std (none when
    train.instance_noise is 0 or `noise` is False)."""
    t = self.config.train
    std = optim.instance_noise_std(state.step, t.instance_noise, t.instance_noise_steps)
    p = ({name: s['p'] for name, s in state.aux['ada'].items()}
         if self.adaptive_augment else {})
    return DInputTransform(self.augment_fn, p, self.channels, key, std,
                           noise and bool(t.instance_noise))

  def _sign_threshold(self) -> float:
    c = self.config.loss
    return augment.sign_threshold(c.gan_mode, c.real_label)

  def _ada_init(self) -> dict:
    if not self.adaptive_augment:
      return {}
    zero = jnp.zeros((), jnp.int32)
    return {'ada': {name: {'p': jnp.asarray(self.augment_config.p_init, jnp.float32),
                           'signs': zero, 'count': zero}
                    for name in self.DISCRIMINATORS}}

  def count_real_signs(self, aux: dict, real_outputs: Mapping[str, Any]) -> dict:
    """`aux` with each discriminator's sign(D(real)) sum and count of this step added
    to its ADA statistics (`aux` itself without ADA). `real_outputs`: discriminator
    -> its outputs on the step's reals, every element counted (the whole global
    batch; a patch D's every patch)."""
    if not self.adaptive_augment:
      return aux
    threshold = self._sign_threshold()
    ada = {}
    for name, s in aux['ada'].items():
      signs, count = augment.sign_counts(real_outputs[name], threshold)
      ada[name] = {'p': s['p'], 'signs': s['signs'] + signs, 'count': s['count'] + count}
    return {**aux, 'ada': ada}

  def ada_step(self, state: GANState, batch):
    """ADA's adjustment of each discriminator's p (`augment.adjusted_p`; kept at
    augment.p_init when augment.ada_target is 0) from the statistics gathered since
    the last one, which then restart. Run every augment.ada_interval steps before
    'main': the reference adjusts after every ada_interval-th batch, from that
    interval's main D steps (its lazy R1 steps also report signs; ours do not count).
    One p per discriminator: CycleGAN's and MUNIT's D_A and D_B judge different
    data sets, which need not overfit alike (the reference has one D)."""
    del batch
    a = self.augment_config
    ada = {}
    for name, s in state.aux['ada'].items():
      p = s['p']
      if a.ada_target > 0:
        p = augment.adjusted_p(p, s['signs'], s['count'], target=a.ada_target,
                               batch_size=self.config.data.batch_size,
                               interval=a.ada_interval, kimg=a.ada_kimg)
      ada[name] = {'p': p, 'signs': jnp.zeros_like(s['signs']),
                   'count': jnp.zeros_like(s['count'])}
    return state.replace(aux={**state.aux, 'ada': ada}), {}

  # -- gradient penalties ------------------------------------------------------------

  def penalty(self, nets: Nets, name: str, real, fake, key,
              views=(_unchanged, _unchanged)) -> jax.Array:
    """The unweighted penalty of discriminator `name` (batch-stat updates dropped) on
    `real` and `fake` as D is shown them through `views` (`DInputTransform.views`).
    R1 / R2: the gradient of D(view(x)) with respect to the image x before its view,
    i.e. through the augmentation, as stylegan2-ada-pytorch's loss.py does (its R1
    differentiates D(augment_pipe(real_img_tmp)) w.r.t. real_img_tmp, the
    un-augmented reals). WGAN-GP: D's gradient at interpolates of the two views, the
    points between the distributions D is trained on."""
    d_fn = lambda x: nets.without_stat_updates(name, x)
    view_real, view_fake = views
    if self.penalty_kind == 'wgangp':
      return losses.gradient_penalty(d_fn, view_real(real), view_fake(fake), key)
    if self.penalty_kind == 'r1':
      return losses.squared_gradient_norm(lambda x: d_fn(view_real(x)), real)
    return losses.squared_gradient_norm(lambda x: d_fn(view_fake(x)), fake)

  @property
  def penalty_weight(self) -> float:
    """lambda for wgangp; gamma / 2 for r1 and r2 (Mescheder et al. 2018)."""
    lam = self.config.loss.lambda_gp
    return lam if self.penalty_kind == 'wgangp' else lam / 2

  def discriminator_loss(self, nets, name: str, real, fake, gp_key, views):
    """(loss on real + loss on fake, penalty or None, D's outputs on the reals) of
    discriminator `name` shown `real` and `fake` through `views` (this step's
    `DInputTransform.views`); a penalty applied every step (loss.gp_every = 1) is
    already added, weighted."""
    c = self.config.loss
    view_real, view_fake = views
    real_out = nets(name, view_real(real))
    loss = losses.discriminator_loss(c.gan_mode, real_out, nets(name, view_fake(fake)),
                                     real_label=c.real_label)
    if self.penalty_kind == 'none' or self.lazy_penalty:
      return loss, None, real_out
    gp = self.penalty(nets, name, real, fake, gp_key, views)
    return loss + self.penalty_weight * gp, gp, real_out

  def penalty_inputs(self, state: GANState, batch, key) -> dict:
    """{discriminator: (real input, fake input or None)} for a lazy penalty step; the
    fakes are needed (not None) for wgangp and r2 only."""
    raise NotImplementedError

  @property
  def penalty_needs_fakes(self) -> bool:
    return self.penalty_kind in ('wgangp', 'r2')

  def penalty_step(self, state: GANState, batch):
    """The lazy penalty as its own gradient step of the discriminators' group: the
    penalty x its weight x loss.gp_every (the reference's lazy regularisation), on
    inputs augmented as the main step's (fresh draws, the same p) but without instance
    noise; `state.step` is not advanced."""
    key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step), _PENALTY_STREAM)
    inputs = self.penalty_inputs(state, batch, key)
    group = self.group_of(tuple(inputs))
    scale = self.penalty_weight * self.config.loss.gp_every * self.D_LOSS_SCALE
    to_d = self.d_input_transform(state, jax.random.fold_in(key, _AUGMENT_STREAM),
                                  noise=False)

    def objective(group_params):
      nets = self.train_nets(state, group_params)
      terms = {f'reg_gp_{name}': self.penalty(nets, name, jax.lax.stop_gradient(real),
                                              fake, jax.random.fold_in(key, i),
                                              to_d.views(name, 2 * i, 2 * i + 1))
               for i, (name, (real, fake)) in enumerate(inputs.items())}
      return scale * sum(terms.values()), terms

    u = self.descend(group, objective, state)
    total, terms = u.loss, u.aux
    return (self.commit(state, u, advance=False),
            {**terms, 'reg_loss_D': total, 'reg_grad_norm_D': optax.global_norm(u.grads)})
