"""StyleGAN (Karras et al. 2019, 2020): a mapping network turns z into a style w, and
the synthesis network draws an image under per-layer styles, by modulated
convolution (model.synthesis=modulated, StyleGAN2) or AdaIN (adain: StyleGAN1's
synthesis network without progressive growing, `models.stylegan.StyleGANGenerator`
says where it differs). Everything else (mapping, w_avg, truncation, style mixing,
D, objective, optimizer) is the same for both: with adain only the synthesis is
StyleGAN1's, not its training (progressive growing, R1 with gamma 10 every step,
no path-length term).

Networks: G (mapping + synthesis, `jaxgan.models.stylegan`), D (residual, with a
minibatch-stddev layer). The objective is stylegan2-ada-pytorch's:
  main step   G on the non-saturating logistic loss softplus(-D(G(z))), then D on
              softplus(-D(x)) + softplus(D(G(z))) with G's updated weights; style
              mixing with probability model.style_mixing (one cutoff per batch,
              uniform in [1, num_ws)); the running average of w (for truncation) is
              updated from the D phase's mapping outputs with beta model.w_avg_beta.
  d_reg       lazy R1 on reals, (gamma / 2) E|grad D(x)|^2 x loss.gp_every, every
              loss.gp_every steps (GANTask's penalty step); gamma from the
              reference's auto rule 0.0002 res^2 / batch unless loss.lambda_gp is set.
  g_reg       lazy path-length regularisation every loss.pl_every steps on a batch
              shrunk by loss.pl_batch_shrink: (|J_w^T y| - a)^2 x pl_weight x
              pl_every with y ~ N(0, I) / sqrt(H W), a the running mean (decay
              loss.pl_decay) of the lengths.
Both lazy groups get the reference's optimizer correction (see `jaxgan.optim`). The
generator's EMA (ema.*) is what samples, grids, FID and `jaxgan.sample` use.

model.conv_clamp (the reference's conv_clamp; 0: off; modulated only) and
model.buffers ('default' | 'stored': the synthesis buffers kept in the state as
aux['buffers'], an imported snapshot's noise_const and resample_filter,
`models.stylegan.default_buffers`' layout for the synthesis; adain has only the
per-layer const noise) are set by `jaxgan.convert` from a stylegan2-ada-pytorch
snapshot.
"""

import math

import jax
import jax.numpy as jnp

from jaxgan import losses, models
from jaxgan.errors import JaxganError
from jaxgan.models import stylegan as stylegan_models
from jaxgan.state import GANState
from jaxgan.tasks.base import GANTask, Sampler
from jaxgan.tasks.nets import Nets

NOISE_MODES = ('random', 'const', 'none')
BUFFERS = ('default', 'stored')
_PATH_LENGTH_STREAM = 0x97E


class StyleGAN(GANTask):
  GENERATORS = ('G',)
  DISCRIMINATORS = ('D',)
  data_mode = 'single'

  def __init__(self, config, steps_per_epoch: int | None = None):
    super().__init__(config, steps_per_epoch)
    m, c = config.model, config.loss
    if not 0 <= m.style_mixing <= 1:
      raise JaxganError(f'model.style_mixing={m.style_mixing} must be in [0, 1]')
    if not 0 <= m.w_avg_beta < 1:
      raise JaxganError(f'model.w_avg_beta={m.w_avg_beta} must be in [0, 1)')
    if m.noise_mode not in NOISE_MODES:
      raise JaxganError(f"unknown model.noise_mode '{m.noise_mode}'; valid: "
                        f"{', '.join(NOISE_MODES)}")
    if c.pl_weight < 0 or c.pl_decay < 0 or c.pl_every < 1 or c.pl_batch_shrink < 1:
      raise JaxganError('loss.pl_weight and loss.pl_decay must be >= 0, loss.pl_every '
                        'and loss.pl_batch_shrink >= 1')
    size, batch = config.data.image_size, config.data.batch_size
    if size < 4 or size & (size - 1):
      raise JaxganError(f'data.image_size={size} must be a power of two >= 4 for StyleGAN '
                        '(images are resized to it)')
    if config.data.load_size != size:
      raise JaxganError(f'data.load_size={config.data.load_size} must equal '
                        f'data.image_size={size}: StyleGAN resizes, it does not crop')
    conv_clamp = m.conv_clamp or None
    if conv_clamp is not None and conv_clamp < 0:
      raise JaxganError(f'model.conv_clamp={conv_clamp} must be >= 0 (0: off)')
    self.buffers = m.buffers
    if self.buffers not in BUFFERS:
      raise JaxganError(f"unknown model.buffers '{self.buffers}'; valid: "
                        f"{', '.join(BUFFERS)}")
    self.z_dim = m.z_dim
    self.modules = {
        'G': models.make('stylegan_generator', z_dim=m.z_dim, w_dim=m.w_dim,
                         img_resolution=size, img_channels=self.channels,
                         channel_base=m.channel_base, channel_max=m.channel_max,
                         map_layers=m.map_layers, synthesis=m.synthesis,
                         dtype=self.dtype, conv_clamp=conv_clamp),
        'D': models.make('stylegan_discriminator', img_resolution=size,
                         img_channels=self.channels, channel_base=m.channel_base,
                         channel_max=m.channel_max, architecture=m.architecture,
                         mbstd_group_size=m.mbstd_group_size, dtype=self.dtype,
                         conv_clamp=conv_clamp),
    }
    self.num_ws = self.modules['G'].num_ws
    group = min(m.mbstd_group_size, batch)
    if batch % group:
      raise JaxganError(f'data.batch_size={batch} must be a multiple of the minibatch-'
                        f'stddev group size min(model.mbstd_group_size, batch) = {group}')
    self.grid = config.train.sample_size

  # -- groups, steps, weights -------------------------------------------------------

  def lazy_intervals(self) -> dict[str, int]:
    """G keeps its lazy correction (interval loss.pl_every) with the path-length
    penalty off too, as the reference, whose G_reg_interval stays 4 (its `cifar`
    preset: pl_weight 0, G lr x 4/5 and betas ^ 4/5)."""
    lazy = super().lazy_intervals()
    lazy['gen'] = self.config.loss.pl_every
    return lazy

  def regularizer_steps(self):
    steps = super().regularizer_steps()
    if self.config.loss.pl_weight > 0:
      steps['g_reg'] = (self.path_length_step, self.config.loss.pl_every)
    return steps

  @property
  def r1_gamma(self) -> float:
    """loss.lambda_gp, or the reference's auto rule 0.0002 res^2 / batch when it is 0
    and loss.r1_gamma_auto is on."""
    c, d = self.config.loss, self.config.data
    if c.r1_gamma_auto and not c.lambda_gp:
      return 0.0002 * d.image_size ** 2 / d.batch_size
    return c.lambda_gp

  @property
  def penalty_weight(self) -> float:
    if self.penalty_kind in ('r1', 'r2'):
      return self.r1_gamma / 2
    return super().penalty_weight

  # -- state ------------------------------------------------------------------------

  def init_inputs(self) -> dict[str, tuple]:
    return {'G': (jax.ShapeDtypeStruct((1, self.z_dim), jnp.float32),),
            'D': (self.image_spec(),)}

  def inference_aux(self) -> dict:
    aux = {'w_avg': jnp.zeros((self.config.model.w_dim,), jnp.float32)}
    if self.buffers == 'stored':  # initialised to the defaults
      aux['buffers'] = stylegan_models.default_buffers(self.config.data.image_size,
                                                       self.config.model.synthesis)
    return aux

  def init_state(self, rng: jax.Array) -> GANState:
    z_key, rng = jax.random.split(rng)
    sample_z = jax.random.normal(z_key, (self.grid * self.grid, self.z_dim))
    return self.new_state(rng, aux={**self.inference_aux(),
                                    'pl_mean': jnp.zeros((), jnp.float32),
                                    'sample_z': sample_z})

  # -- the generator's pieces -------------------------------------------------------

  def _mapping(self, nets: Nets, z, **truncation):
    return nets('G', z, method='mapping', **truncation)

  def _synthesize(self, nets: Nets, ws, aux, noise_mode: str = 'random'):
    """G's images of `ws`, with the synthesis buffers the state keeps in `aux` (an
    imported snapshot's, model.buffers='stored') in training and inference alike."""
    return nets('G', ws, method='synthesize', noise_mode=noise_mode,
                buffers=aux.get('buffers'))

  def _mixed_styles(self, nets: Nets, z, key):
    """(styles with mixing, the first z's unmixed styles): with probability
    model.style_mixing the layers from a cutoff uniform in [1, num_ws) on take the
    styles of a second z."""
    ws = self._mapping(nets, z)
    p = self.config.model.style_mixing
    if not p or self.num_ws < 2:
      return ws, ws
    k_cut, k_mix, k_z = jax.random.split(key, 3)
    cutoff = jax.random.randint(k_cut, (), 1, self.num_ws)
    cutoff = jnp.where(jax.random.uniform(k_mix) < p, cutoff, self.num_ws)
    other = self._mapping(nets, jax.random.normal(k_z, z.shape, z.dtype))
    layer = jnp.arange(self.num_ws)[None, :, None]
    return jnp.where(layer < cutoff, ws, other), ws

  # -- the steps --------------------------------------------------------------------

  def train_step(self, state: GANState, batch):
    mode = self.config.loss.gan_mode
    real = batch['a']
    n = real.shape[0]
    k_zg, k_mg, k_ng, k_zd, k_md, k_nd, k_gp, k_d_input = self.step_keys(state, 8)
    to_d = self.d_input_transform(state, k_d_input)

    def generator_objective(gen_params):
      nets = self.train_nets(state, gen_params, rng=k_ng, streams=('noise',))
      ws, _ = self._mixed_styles(nets, jax.random.normal(k_zg, (n, self.z_dim)), k_mg)
      fake = self._synthesize(nets, ws, state.aux)
      return losses.generator_loss(mode, nets('D', to_d('D', fake, 0))), None

    gen = self.descend('gen', generator_objective, state)

    # D's fakes from the updated G, as the reference's Dmain phase follows Gmain.
    g_nets = self.train_nets(state, gen.params, rng=k_nd, streams=('noise',))
    ws, unmixed = self._mixed_styles(g_nets, jax.random.normal(k_zd, (n, self.z_dim)),
                                     k_md)
    fake = jax.lax.stop_gradient(self._synthesize(g_nets, ws, state.aux))
    w_mean = jax.lax.stop_gradient(jnp.mean(unmixed[:, 0].astype(jnp.float32), axis=0))
    beta = self.config.model.w_avg_beta
    w_avg = w_mean + beta * (state.aux['w_avg'] - w_mean)

    def discriminator_objective(disc_params):
      nets = self.train_nets(state, disc_params)
      loss, gp, real_out = self.discriminator_loss(nets, 'D', real, fake, k_gp,
                                                   to_d.views('D', 1, 2))
      return loss, ({} if gp is None else {'loss_gp': gp}, {'D': real_out})

    disc = self.descend('disc', discriminator_objective, state)
    d_terms, real_outs = disc.aux

    metrics = {'loss_G': gen.loss, 'loss_D': disc.loss, **d_terms,
               **self.step_metrics(state, (gen, disc), to_d, real_outs)}
    aux = self.count_real_signs(state.aux, real_outs)
    return self.commit(state, gen, disc, aux={**aux, 'w_avg': w_avg}), metrics

  def penalty_inputs(self, state: GANState, batch, key):
    real, fake = batch['a'], None
    if self.penalty_needs_fakes:
      nets = self.train_nets(state, rng=key, streams=('noise',))
      z = jax.random.normal(key, (real.shape[0], self.z_dim))
      fake = jax.lax.stop_gradient(self._synthesize(nets, self._mapping(nets, z),
                                                    state.aux))
    return {'D': (real, fake)}

  def path_length_step(self, state: GANState, batch):
    """The lazy path-length regulariser: G's own gradient step; `state.step` and D
    are left as they are."""
    c = self.config.loss
    n = max(1, batch['a'].shape[0] // c.pl_batch_shrink)
    key = jax.random.fold_in(jax.random.fold_in(state.rng, state.step),
                             _PATH_LENGTH_STREAM)
    k_z, k_mix, k_noise, k_y = jax.random.split(key, 4)
    pl_mean = state.aux['pl_mean']

    def objective(gen_params):
      nets = self.train_nets(state, gen_params, rng=k_noise, streams=('noise',))
      ws, _ = self._mixed_styles(nets, jax.random.normal(k_z, (n, self.z_dim)), k_mix)
      image, pull_back = jax.vjp(lambda w: self._synthesize(nets, w, state.aux), ws)
      height, width = image.shape[1:3]
      y = jax.random.normal(k_y, image.shape, image.dtype) / math.sqrt(height * width)
      (grads,) = pull_back(y)
      lengths = jnp.sqrt(jnp.mean(jnp.sum(jnp.square(grads.astype(jnp.float32)), axis=2),
                                  axis=1))
      mean = pl_mean + c.pl_decay * (jnp.mean(lengths) - pl_mean)
      penalty = jnp.mean(jnp.square(lengths - mean))
      return penalty * c.pl_weight * c.pl_every, (penalty, mean)

    gen = self.descend('gen', objective, state)
    penalty, mean = gen.aux
    new_state = self.commit(state, gen, advance=False,
                            aux={**state.aux, 'pl_mean': jax.lax.stop_gradient(mean)})
    return new_state, {'reg_pl_penalty': penalty, 'reg_pl_mean': mean,
                       'reg_loss_G': gen.loss}

  # -- inference --------------------------------------------------------------------

  def styles(self, model, z, psi: float = 1.0, cutoff=None):
    """Per-layer styles of z, truncated towards model.aux['w_avg'] by psi in the
    first `cutoff` layers (all if None)."""
    return self._mapping(self.nets(model), z, w_avg=model.aux['w_avg'], psi=psi,
                         truncation_cutoff=cutoff)

  def synthesize(self, model, ws):
    """Images of per-layer styles ws, with model.noise_mode noise (fixed for 'const')."""
    nets = self.nets(model, rng=jax.random.PRNGKey(self.config.seed), streams=('noise',))
    return self._synthesize(nets, ws, model.aux, self.config.model.noise_mode)

  def decode(self, model, z):
    return self.synthesize(model, self.styles(model, z, self.config.model.truncation_psi))

  def generate_samples(self, model, rng: jax.Array, n: int) -> jax.Array:
    """n images [n, S, S, channels] from z ~ N(0, I) drawn with `rng`."""
    return self.decode(model, jax.random.normal(rng, (n, self.z_dim)))

  def predictors(self) -> dict[str, Sampler]:
    return {'samples': Sampler(self.generate_samples, latent_dim=self.z_dim,
                               decode=self.decode, styles=self.styles,
                               synthesize=self.synthesize, num_ws=self.num_ws)}

  def sample(self, state: GANState, batch):
    """The fixed-noise grid: sample_size columns of sample_size images each."""
    del batch
    return self.grid_columns(self.decode(state, state.aux['sample_z']))


TASK = StyleGAN
