"""CycleGAN (Zhu et al. 2017): unpaired translation between domains A and B.

Names, written once here and used everywhere in jaxgan:
  G   : A -> B generator          (the reference's netG_A)
  F   : B -> A generator          (the reference's netG_B)
  D_A : judges domain A, real a vs F(b)   (the reference's netD_B)
  D_B : judges domain B, real b vs G(a)   (the reference's netD_A)
Loss keys follow the reference's names: G_A = adversarial loss of G (scored by D_B),
G_B = of F (scored by D_A), cycle_A = |F(G(a)) - a|, cycle_B = |G(F(b)) - b|,
idt_A = |G(b) - b|, idt_B = |F(a) - a|; D_A and D_B are the losses of the
discriminators named above (each halved, as the reference does).

One step: update G and F together on adversarial + lambda_cycle * cycle +
lambda_identity * lambda_cycle * identity, then D_A and D_B together on real images vs
pooled fakes (the fakes of this step, made before the generator update, under
stop_gradient).
"""

import jax
import jax.numpy as jnp

from jaxgan import losses, models
from jaxgan import pool as image_pool
from jaxgan.errors import JaxganError
from jaxgan.state import GANState
from jaxgan.tasks.base import GANTask, Translator


class CycleGAN(GANTask):
  GENERATORS = ('G', 'F')
  DISCRIMINATORS = ('D_A', 'D_B')
  D_LOSS_SCALE = 0.5
  data_mode = 'unpaired'

  def __init__(self, config, steps_per_epoch: int | None = None):
    super().__init__(config, steps_per_epoch)
    m, loss_cfg = config.model, config.loss
    generator = models.make_generator(
        m.generator, ngf=m.ngf, norm=m.norm,
        out_channels=self.channels, use_dropout=m.use_dropout, dtype=self.dtype)
    discriminator = models.make_discriminator(
        m.discriminator, ndf=m.ndf, norm=m.norm, n_layers=m.n_layers, dtype=self.dtype)
    self.modules = {'G': generator, 'F': generator,
                    'D_A': discriminator, 'D_B': discriminator}
    self.size_multiple = models.size_multiple(m.generator)
    self.check_size_multiple(self.size_multiple, f'generator {m.generator}')
    for key in ('lambda_cycle', 'lambda_identity'):
      if loss_cfg[key] < 0:
        raise JaxganError(f'loss.{key}={loss_cfg[key]} must be >= 0')
    if config.train.pool_size < 0:
      raise JaxganError(f'train.pool_size={config.train.pool_size} must be >= 0')

  # -- state -----------------------------------------------------------------------

  def init_inputs(self) -> dict[str, tuple]:
    return {name: (self.image_spec(),) for name in self.GENERATORS + self.DISCRIMINATORS}

  def init_state(self, rng: jax.Array) -> GANState:
    size, pool_size = self.config.data.image_size, self.config.train.pool_size
    image = (size, size, self.channels)
    return self.new_state(rng, aux={'pool_A': image_pool.init_pool(pool_size, image),
                                    'pool_B': image_pool.init_pool(pool_size, image)})

  # -- the step --------------------------------------------------------------------

  def train_step(self, state: GANState, batch):
    c = self.config.loss
    mode = c.gan_mode
    real_a, real_b = batch['a'], batch['b']
    k_gen, k_disc, k_pool_a, k_pool_b, k_gp_a, k_gp_b, k_d_input = self.step_keys(state, 7)
    to_d = self.d_input_transform(state, k_d_input)

    def generator_objective(gen_params):
      nets = self.train_nets(state, gen_params, rng=k_gen)
      fake_b = nets('G', real_a)
      rec_a = nets('F', fake_b)
      fake_a = nets('F', real_b)
      rec_b = nets('G', fake_a)
      terms = {
          'G_A': losses.generator_loss(mode, nets('D_B', to_d('D_B', fake_b, 0))),
          'G_B': losses.generator_loss(mode, nets('D_A', to_d('D_A', fake_a, 1))),
          'cycle_A': c.lambda_cycle * losses.l1(rec_a, real_a),
          'cycle_B': c.lambda_cycle * losses.l1(rec_b, real_b),
      }
      idt_weight = c.lambda_cycle * c.lambda_identity
      if idt_weight > 0:
        terms['idt_A'] = idt_weight * losses.l1(nets('G', real_b), real_b)
        terms['idt_B'] = idt_weight * losses.l1(nets('F', real_a), real_a)
      else:
        terms['idt_A'] = terms['idt_B'] = jnp.zeros((), jnp.float32)
      total = sum(terms.values())
      return total, (terms, fake_a, fake_b, nets.stats)

    gen = self.descend('gen', generator_objective, state)
    g_terms, fake_a, fake_b, stats = gen.aux

    pool_a, shown_a = image_pool.query(state.aux['pool_A'],
                                       jax.lax.stop_gradient(fake_a), k_pool_a)
    pool_b, shown_b = image_pool.query(state.aux['pool_B'],
                                       jax.lax.stop_gradient(fake_b), k_pool_b)

    def discriminator_objective(disc_params):
      nets = self.train_nets(state, disc_params, stats, rng=k_disc)
      terms, real_outs = {}, {}
      for i, (name, real, fake, k_gp) in enumerate((('D_A', real_a, shown_a, k_gp_a),
                                                    ('D_B', real_b, shown_b, k_gp_b))):
        loss, gp, real_outs[name] = self.discriminator_loss(
            nets, name, real, fake, k_gp, to_d.views(name, 2 + 2 * i, 3 + 2 * i))
        if gp is not None:
          terms['gp_' + name[-1]] = gp
        terms[name] = self.D_LOSS_SCALE * loss
      total = terms['D_A'] + terms['D_B']
      return total, (terms, nets.stats, real_outs)

    disc = self.descend('disc', discriminator_objective, state)
    d_terms, stats, real_outs = disc.aux

    metrics = {**{'loss_' + k: v for k, v in {**g_terms, **d_terms}.items()},
               'loss_G': gen.loss,
               **self.step_metrics(state, (gen, disc), to_d, real_outs)}
    aux = self.count_real_signs(state.aux, real_outs)
    return self.commit(state, gen, disc, batch_stats=stats,
                       aux={**aux, 'pool_A': pool_a, 'pool_B': pool_b}), metrics

  def penalty_inputs(self, state: GANState, batch, key):
    real_a, real_b = batch['a'], batch['b']
    if not self.penalty_needs_fakes:
      return {'D_A': (real_a, None), 'D_B': (real_b, None)}
    nets = self.train_nets(state, rng=key)
    fake_b, fake_a = nets.without_stat_updates('G', real_a), nets.without_stat_updates('F', real_b)
    return {'D_A': (real_a, jax.lax.stop_gradient(fake_a)),
            'D_B': (real_b, jax.lax.stop_gradient(fake_b))}

  # -- inference -------------------------------------------------------------------

  def generate(self, model, name: str, x: jax.Array) -> jax.Array:
    """Generator `name` (G or F) in inference mode, on `model`'s inference weights."""
    return self.nets(model)(name, x)

  def predictors(self) -> dict[str, Translator]:
    return {'AtoB': Translator(lambda m, x: self.generate(m, 'G', x), 'a', 'b',
                               self.size_multiple),
            'BtoA': Translator(lambda m, x: self.generate(m, 'F', x), 'b', 'a',
                               self.size_multiple)}

  def sample(self, state: GANState, batch):
    nets = self.nets(state)
    real_a, real_b = batch['a'], batch['b']
    fake_b = nets('G', real_a)
    fake_a = nets('F', real_b)
    return (real_a, fake_b, nets('F', fake_b), real_b, fake_a, nets('G', fake_a))


TASK = CycleGAN
