"""DCGAN (Radford et al. 2016): unconditional images from z ~ N(0, I).

Networks: G maps z in R^latent_dim to an image (transposed convolutions, batch norm,
ReLU, tanh); D maps an image to one logit (strided convolutions, batch norm after the
first layer, LeakyReLU 0.2).

One step, in the order of the PyTorch examples' dcgan: G runs once on a fresh batch of
z (train mode); D is updated on real images against G(z) (loss on real plus loss on
fake, not halved); then G is updated on the non-saturating loss -log D(G(z)) as judged
by the updated D, through the same forward pass (`jax.vjp`).

The sample grid shows G (inference mode: running batch-norm statistics) on a fixed
set of sample_size^2 latent vectors drawn once at initialisation and kept in the
state, so every grid of a run, resumed or not, shows the same z.
"""

import jax
import jax.numpy as jnp

from jaxgan import losses, models
from jaxgan.errors import JaxganError
from jaxgan.state import GANState
from jaxgan.tasks.base import GANTask, Sampler


class DCGAN(GANTask):
  GENERATORS = ('G',)
  DISCRIMINATORS = ('D',)
  data_mode = 'single'

  def __init__(self, config, steps_per_epoch: int | None = None):
    super().__init__(config, steps_per_epoch)
    m = config.model
    if m.latent_dim < 1:
      raise JaxganError(f'model.latent_dim={m.latent_dim} must be >= 1')
    self.latent_dim = m.latent_dim
    size = config.data.image_size
    self.modules = {
        'G': models.make('dcgan_generator', image_size=size, channels=self.channels,
                         ngf=m.ngf, dtype=self.dtype),
        'D': models.make('dcgan_discriminator', image_size=size, ndf=m.ndf,
                         dtype=self.dtype),
    }
    self.grid = config.train.sample_size

  def init_inputs(self) -> dict[str, tuple]:
    return {'G': (jax.ShapeDtypeStruct((1, self.latent_dim), jnp.float32),),
            'D': (self.image_spec(),)}

  def init_state(self, rng: jax.Array) -> GANState:
    z_key, rng = jax.random.split(rng)
    sample_z = jax.random.normal(z_key, (self.grid * self.grid, self.latent_dim))
    return self.new_state(rng, aux={'sample_z': sample_z})

  def train_step(self, state: GANState, batch):
    c = self.config.loss
    real = batch['a']
    k_z, k_gp, k_d_input = self.step_keys(state, 3)
    to_d = self.d_input_transform(state, k_d_input)
    z = jax.random.normal(k_z, (real.shape[0], self.latent_dim))

    def forward(gen_params):
      nets = self.train_nets(state, gen_params)
      return nets('G', z), nets.stats

    fake, pull_back, stats = jax.vjp(forward, self.group(state.params, 'gen'),
                                     has_aux=True)

    def discriminator_objective(disc_params):
      nets = self.train_nets(state, disc_params, stats)
      loss, gp, real_out = self.discriminator_loss(
          nets, 'D', real, jax.lax.stop_gradient(fake), k_gp, to_d.views('D', 0, 1))
      return loss, ({} if gp is None else {'gp': gp}, nets.stats, {'D': real_out})

    disc = self.descend('disc', discriminator_objective, state)
    d_terms, stats, real_outs = disc.aux

    def generator_objective(fake):
      nets = self.train_nets(state, disc.params, stats)
      return losses.generator_loss(c.gan_mode, nets('D', to_d('D', fake, 2))), nets.stats

    (loss_g, stats), grad_fake = jax.value_and_grad(
        generator_objective, has_aux=True)(fake)
    (grads_g,) = pull_back(grad_fake)
    gen = self.apply_gradients('gen', grads_g, state)

    metrics = {'loss_G': loss_g, 'loss_D': disc.loss,
               **{'loss_' + k: v for k, v in d_terms.items()},
               **self.step_metrics(state, (gen, disc), to_d, real_outs)}
    return self.commit(state, gen, disc, batch_stats=stats,
                       aux=self.count_real_signs(state.aux, real_outs)), metrics

  def penalty_inputs(self, state: GANState, batch, key):
    real, fake = batch['a'], None
    if self.penalty_needs_fakes:
      z = jax.random.normal(key, (real.shape[0], self.latent_dim))
      nets = self.train_nets(state)
      fake = jax.lax.stop_gradient(nets.without_stat_updates('G', z))
    return {'D': (real, fake)}

  # -- inference -------------------------------------------------------------------

  def _generator(self, model, z: jax.Array) -> jax.Array:
    return self.nets(model)('G', z)

  def generate_samples(self, model, rng: jax.Array, n: int) -> jax.Array:
    """n images [n, S, S, channels] in [-1, 1] from z ~ N(0, I) drawn with `rng`."""
    return self._generator(model, jax.random.normal(rng, (n, self.latent_dim)))

  def predictors(self) -> dict[str, Sampler]:
    return {'samples': Sampler(self.generate_samples, latent_dim=self.latent_dim,
                               decode=self._generator)}

  def sample(self, state: GANState, batch):
    """The fixed-noise grid: sample_size columns of sample_size images each."""
    del batch  # unconditional: the grid comes from the fixed z in the state
    return self.grid_columns(self._generator(state, state.aux['sample_z']))


TASK = DCGAN
