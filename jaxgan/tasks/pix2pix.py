"""pix2pix (Isola et al. 2017): paired translation A -> B (or B -> A).

Networks: G, the generator (a U-Net by default, with batch norm and dropout), and D,
a conditional discriminator that sees the input and an output concatenated on the
channel axis: D(a, G(a)) vs D(a, b). With model.discriminator=pixel this is PixelGAN.

One step, in the reference's order: G runs once (train mode: batch statistics,
dropout); D is updated on (a, b) against (a, G(a)) with the loss halved; then G is
updated on loss_G_GAN + lambda_l1 * |G(a) - b| as judged by the updated D. G's
forward pass is shared by both updates (`jax.vjp`), as the reference's single
`forward()` is, so its batch statistics and dropout mask are those of that one pass.
"""

import jax
import jax.numpy as jnp

from jaxgan import losses, models
from jaxgan.errors import JaxganError
from jaxgan.state import GANState
from jaxgan.tasks.base import GANTask, Translator

DIRECTIONS = ('AtoB', 'BtoA')


def pair(x, y):
  """D's input: the condition and an output, concatenated on the channel axis."""
  return jnp.concatenate([x, y.astype(x.dtype)], axis=-1)


class Pix2Pix(GANTask):
  GENERATORS = ('G',)
  DISCRIMINATORS = ('D',)
  D_LOSS_SCALE = 0.5
  data_mode = 'paired'

  def __init__(self, config, steps_per_epoch: int | None = None):
    super().__init__(config, steps_per_epoch)
    m = config.model
    direction = config.data.direction
    if direction not in DIRECTIONS:
      raise JaxganError(f"data.direction='{direction}' must be AtoB or BtoA")
    if config.loss.lambda_l1 < 0:
      raise JaxganError(f'loss.lambda_l1={config.loss.lambda_l1} must be >= 0')
    self.modules = {
        'G': models.make_generator(m.generator, ngf=m.ngf, norm=m.norm,
                                   out_channels=self.channels,
                                   use_dropout=m.use_dropout, dtype=self.dtype),
        'D': models.make_discriminator(m.discriminator, ndf=m.ndf, norm=m.norm,
                                       n_layers=m.n_layers, dtype=self.dtype),
    }
    self.size_multiple = models.size_multiple(m.generator)
    self.check_size_multiple(self.size_multiple, f'generator {m.generator}')

  def _pair(self, batch):
    """(input, target) of the configured direction."""
    if self.config.data.direction == 'AtoB':
      return batch['a'], batch['b']
    return batch['b'], batch['a']

  def init_inputs(self) -> dict[str, tuple]:
    return {'G': (self.image_spec(),), 'D': (self.image_spec(2 * self.channels),)}

  def init_state(self, rng: jax.Array) -> GANState:
    return self.new_state(rng)

  def train_step(self, state: GANState, batch):
    c = self.config.loss
    real_a, real_b = self._pair(batch)
    k_gen, k_disc, k_adv, k_gp, k_d_input = self.step_keys(state, 5)
    to_d = self.d_input_transform(state, k_d_input)

    def forward(gen_params):
      nets = self.train_nets(state, gen_params, rng=k_gen)
      return nets('G', real_a), nets.stats

    fake_b, pull_back, stats = jax.vjp(forward, self.group(state.params, 'gen'),
                                       has_aux=True)

    def discriminator_objective(disc_params):
      nets = self.train_nets(state, disc_params, stats, rng=k_disc)
      loss, gp, real_out = self.discriminator_loss(
          nets, 'D', pair(real_a, real_b), pair(real_a, jax.lax.stop_gradient(fake_b)),
          k_gp, to_d.views('D', 0, 1))
      terms = {'D': self.D_LOSS_SCALE * loss, **({} if gp is None else {'gp': gp})}
      return terms['D'], (terms, nets.stats, {'D': real_out})

    disc = self.descend('disc', discriminator_objective, state)
    d_terms, stats, real_outs = disc.aux

    def generator_objective(fake_b):
      nets = self.train_nets(state, disc.params, stats, rng=k_adv)
      terms = {
          'G_GAN': losses.generator_loss(c.gan_mode,
                                         nets('D', to_d('D', pair(real_a, fake_b), 2))),
          'G_L1': c.lambda_l1 * losses.l1(fake_b, real_b),
      }
      return terms['G_GAN'] + terms['G_L1'], (terms, nets.stats)

    (loss_g, (g_terms, stats)), grad_fake = jax.value_and_grad(
        generator_objective, has_aux=True)(fake_b)
    (grads_g,) = pull_back(grad_fake)
    gen = self.apply_gradients('gen', grads_g, state)

    metrics = {**{'loss_' + k: v for k, v in {**g_terms, **d_terms}.items()},
               'loss_G': loss_g,
               **self.step_metrics(state, (gen, disc), to_d, real_outs)}
    return self.commit(state, gen, disc, batch_stats=stats,
                       aux=self.count_real_signs(state.aux, real_outs)), metrics

  def penalty_inputs(self, state: GANState, batch, key):
    real_a, real_b = self._pair(batch)
    fake = None
    if self.penalty_needs_fakes:
      nets = self.train_nets(state, rng=key)
      fake = jax.lax.stop_gradient(pair(real_a, nets.without_stat_updates('G', real_a)))
    return {'D': (pair(real_a, real_b), fake)}

  # -- inference -------------------------------------------------------------------

  def generate(self, model, name: str, x: jax.Array) -> jax.Array:
    """Generator `name` at test time, on `model`'s inference weights."""
    if not self.config.model.test_batch_stats:
      return self.nets(model)(name, x)
    # The reference's test mode: each image normalised by its own statistics, dropout
    # on. One fixed dropout key for every image: outputs do not depend on the batch.
    key = jax.random.PRNGKey(self.config.seed)

    def one(image):
      return self.nets(model, train=True, rng=key)(name, image[None])[0]

    return jax.vmap(one)(x)

  def predictors(self) -> dict[str, Translator]:
    direction = self.config.data.direction
    source, target = ('a', 'b') if direction == 'AtoB' else ('b', 'a')
    return {direction: Translator(lambda m, x: self.generate(m, 'G', x), source, target,
                                  self.size_multiple)}

  def sample(self, state: GANState, batch):
    real_a, real_b = self._pair(batch)
    return real_a, self.generate(state, 'G', real_a), real_b


TASK = Pix2Pix
