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
from jaxgan.tasks.nets import Nets

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
    self.sample_columns = (f'real {direction[0]}', f'G({direction[0]})',
                           f'real {direction[-1]}')
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

  def input_shapes(self) -> dict[str, tuple]:
    size = self.config.data.image_size
    return {'G': (1, size, size, self.channels), 'D': (1, size, size, 2 * self.channels)}

  def init_state(self, rng: jax.Array) -> GANState:
    return self.new_state(rng)

  def train_step(self, state: GANState, batch):
    c = self.config.loss
    real_a, real_b = self._pair(batch)
    key = jax.random.fold_in(state.rng, state.step)
    k_gen, k_disc, k_adv, k_gp, k_noise = jax.random.split(key, 5)
    noisy, noise_std = self.instance_noise(state, k_noise)
    gen_params = self.group(state.params, 'gen')
    disc_params = self.group(state.params, 'disc')

    def forward(gen_params):
      nets = Nets(self.modules, {**state.params, **gen_params}, state.batch_stats,
                  train=True, rng=k_gen)
      return nets('G', real_a), nets.stats

    fake_b, pull_back, stats = jax.vjp(forward, gen_params, has_aux=True)

    def discriminator_objective(disc_params):
      nets = Nets(self.modules, {**state.params, **disc_params}, stats, train=True,
                  rng=k_disc)
      loss, gp = self.discriminator_loss(
          nets, 'D', noisy(pair(real_a, real_b), 0),
          noisy(pair(real_a, jax.lax.stop_gradient(fake_b)), 1), k_gp)
      terms = {'D': self.D_LOSS_SCALE * loss, **({} if gp is None else {'gp': gp})}
      return terms['D'], (terms, nets.stats)

    (_, (d_terms, stats)), grads_d = jax.value_and_grad(
        discriminator_objective, has_aux=True)(disc_params)
    disc_params, opt_disc = self.update('disc', grads_d, state, disc_params)

    def generator_objective(fake_b):
      nets = Nets(self.modules, {**state.params, **disc_params}, stats, train=True,
                  rng=k_adv)
      terms = {
          'G_GAN': losses.generator_loss(c.gan_mode,
                                         nets('D', noisy(pair(real_a, fake_b), 2))),
          'G_L1': c.lambda_l1 * losses.l1(fake_b, real_b),
      }
      return terms['G_GAN'] + terms['G_L1'], (terms, nets.stats)

    (loss_g, (g_terms, stats)), grad_fake = jax.value_and_grad(
        generator_objective, has_aux=True)(fake_b)
    (grads_g,) = pull_back(grad_fake)
    gen_params, opt_gen = self.update('gen', grads_g, state, gen_params)

    metrics = {**{'loss_' + k: v for k, v in {**g_terms, **d_terms}.items()},
               'loss_G': loss_g,
               **self.step_metrics(state, grads_g, grads_d, noise_std)}
    new_state = state.replace(step=state.step + 1,
                              params={**gen_params, **disc_params},
                              batch_stats=stats,
                              opt_state={'gen': opt_gen, 'disc': opt_disc})
    return new_state, metrics

  def penalty_inputs(self, state: GANState, batch, key):
    real_a, real_b = self._pair(batch)
    fake = None
    if self.penalty_needs_fakes:
      nets = Nets(self.modules, state.params, state.batch_stats, train=True, rng=key)
      fake = jax.lax.stop_gradient(pair(real_a, nets.frozen('G', real_a)))
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
