"""MUNIT (Huang et al. 2018): multimodal unpaired translation between domains A and B
by a content code shared by the domains and a style code of each domain.

Names, written once here (the reference, NVlabs/MUNIT `trainer.py`, in brackets):
  G_A : domain A's auto-encoder (gen_a): encode(a) -> (content, style of A),
        decode(content, style of A) -> an image of A
  G_B : domain B's (gen_b)
  D_A : judges domain A, real a vs G_A.decode(content of b, random style) (dis_a)
  D_B : judges domain B (dis_b)
So A -> B is G_B.decode(content of G_A.encode(a), a style of B); styles are drawn from
N(0, I) or taken from a reference image of the target domain (`encode_style`).

One iteration, in the reference's order (dis_update, then gen_update):
  D: D_A on a vs x_ba = G_A.decode(c_b, s_a), D_B on b vs x_ab = G_B.decode(c_a, s_b),
     random styles s ~ N(0, I), fakes under stop_gradient; loss gan_w x (sum over the
     scales of each scale's loss); not halved.
  G: on the updated discriminators, with new random styles: gan_w x adversarial
     (D_A(x_ba), D_B(x_ab), summed over scales) + recon_x_w |dec(enc(x)) - x| +
     recon_s_w |style of x_ba - s_a| + recon_c_w |content of x_ba - c_b| (and the same
     for B) + recon_x_cyc_w |G_A.decode(content of x_ab, style of a) - a| (and for b).
Loss keys: adv_A / adv_B (the generators' adversarial terms in domain A / B),
recon_x_A, recon_s_A, recon_c_A, cyc_x_A (and _B), D_A, D_B; each already weighted,
so loss_G and loss_D are their sums. The reference's vgg_w perceptual loss is not
implemented (its configs leave it 0).

The sample grid: A | AtoB with fixed style 1 | with fixed style 2 | with the style of
the row's B | that B. The fixed styles are drawn once at initialisation and kept in the
state, so every grid of a run shows the same two.
"""

import jax
import jax.numpy as jnp

from jaxgan import losses, models
from jaxgan.errors import JaxganError
from jaxgan.models import munit as munit_models
from jaxgan.state import GANState
from jaxgan.tasks.base import GANTask, StyleControl, Translator

DIRECTIONS = {'AtoB': ('G_A', 'G_B'), 'BtoA': ('G_B', 'G_A')}  # (content of, decoder)
DOMAINS = {'a': 'G_A', 'b': 'G_B'}
_WEIGHTS = ('gan_w', 'recon_x_w', 'recon_s_w', 'recon_c_w', 'recon_x_cyc_w')


class Munit(GANTask):
  GENERATORS = ('G_A', 'G_B')
  DISCRIMINATORS = ('D_A', 'D_B')
  data_mode = 'unpaired'

  def __init__(self, config, steps_per_epoch: int | None = None):
    super().__init__(config, steps_per_epoch)
    m, c = config.model, config.loss
    for key in _WEIGHTS:
      if c[key] < 0:
        raise JaxganError(f'loss.{key}={c[key]} must be >= 0')
    generator = models.make('munit_generator', channels=self.channels, dim=m.dim,
                            style_dim=m.style_dim, n_downsample=m.n_downsample,
                            n_res=m.n_res, mlp_dim=m.mlp_dim, dtype=self.dtype)
    discriminator = models.make('munit_discriminator', dim=m.dis_dim,
                                n_layer=m.dis_n_layer, num_scales=m.dis_num_scales,
                                init=m.dis_init, dtype=self.dtype)
    self.modules = {'G_A': generator, 'G_B': generator,
                    'D_A': discriminator, 'D_B': discriminator}
    self.style_dim = m.style_dim
    # The decoder must give back the content's size exactly x 2^n_downsample.
    self.size_multiple = 2 ** m.n_downsample
    self.check_size_multiple(self.size_multiple, f'model.n_downsample={m.n_downsample}')
    low = munit_models.min_image_size(n_downsample=m.n_downsample,
                                      n_layer=m.dis_n_layer, num_scales=m.dis_num_scales)
    if config.data.image_size < low:
      raise JaxganError(
          f'data.image_size={config.data.image_size} is below {low}, the smallest side '
          f'these networks can pad (reflection) at every layer; lower '
          f'model.dis_n_layer or model.dis_num_scales, or use larger images')
    self.grid = config.train.sample_size

  # -- state -----------------------------------------------------------------------

  def init_inputs(self) -> dict[str, tuple]:
    # G_* initialise through __call__ (reconstruction), which builds every part.
    return {name: (self.image_spec(),) for name in self.GENERATORS + self.DISCRIMINATORS}

  def init_state(self, rng: jax.Array) -> GANState:
    k1, k2, rng = jax.random.split(rng, 3)
    return self.new_state(rng, aux={'sample_style_1': self.random_styles(k1, self.grid),
                                    'sample_style_2': self.random_styles(k2, self.grid)})

  # -- the networks' pieces --------------------------------------------------------

  def random_styles(self, rng: jax.Array, n: int) -> jax.Array:
    """n style codes [n, style_dim] ~ N(0, I), the prior the decoders are trained on."""
    return jax.random.normal(rng, (n, self.style_dim))

  @staticmethod
  def _encode(nets, name: str, x):
    return nets(name, x, method='encode')

  @staticmethod
  def _decode(nets, name: str, content, style):
    return nets(name, content, style, method='decode')

  def _adversarial(self, nets, name: str, fake):
    """The generator's loss on `fake` as D `name` judges it: summed over the scales."""
    mode = self.config.loss.gan_mode
    return sum(losses.generator_loss(mode, out)
               for out in nets(name, fake, method='scales'))

  def discriminator_loss(self, nets, name: str, real, fake, gp_key, views):
    """GANTask's, with the multi-scale D's loss: each scale's loss (its mean over its
    own map, as the reference's calc_dis_loss) summed over the scales (the outputs on
    the reals: the list of every scale's); a penalty differentiates D's __call__
    (every scale's outputs, concatenated)."""
    c = self.config.loss
    view_real, view_fake = views
    real_out = nets(name, view_real(real), method='scales')
    loss = sum(losses.discriminator_loss(c.gan_mode, r, f, real_label=c.real_label)
               for r, f in zip(real_out, nets(name, view_fake(fake), method='scales')))
    if self.penalty_kind == 'none' or self.lazy_penalty:
      return loss, None, real_out
    gp = self.penalty(nets, name, real, fake, gp_key, views)
    return loss + self.penalty_weight * gp, gp, real_out

  # -- the step --------------------------------------------------------------------

  def train_step(self, state: GANState, batch):
    c = self.config.loss
    x_a, x_b = batch['a'], batch['b']
    n = x_a.shape[0]
    k_d_a, k_d_b, k_g_a, k_g_b, k_gp_a, k_gp_b, k_d_input = self.step_keys(state, 7)
    to_d = self.d_input_transform(state, k_d_input)

    # dis_update: fakes from the generators as they are, with their own random styles.
    nets = self.train_nets(state)
    c_a, _ = self._encode(nets, 'G_A', x_a)
    c_b, _ = self._encode(nets, 'G_B', x_b)
    fake_a = jax.lax.stop_gradient(
        self._decode(nets, 'G_A', c_b, self.random_styles(k_d_a, n)))
    fake_b = jax.lax.stop_gradient(
        self._decode(nets, 'G_B', c_a, self.random_styles(k_d_b, n)))

    def discriminator_objective(disc_params):
      nets = self.train_nets(state, disc_params)
      terms, real_outs = {}, {}
      for i, (name, real, fake, k_gp) in enumerate((('D_A', x_a, fake_a, k_gp_a),
                                                    ('D_B', x_b, fake_b, k_gp_b))):
        loss, gp, real_outs[name] = self.discriminator_loss(
            nets, name, real, fake, k_gp, to_d.views(name, 2 * i, 2 * i + 1))
        if gp is not None:
          terms['gp_' + name[-1]] = gp
        terms[name] = c.gan_w * loss
      return terms['D_A'] + terms['D_B'], (terms, real_outs)

    disc = self.descend('disc', discriminator_objective, state)
    d_terms, real_outs = disc.aux

    # gen_update, judged by the discriminators just updated.
    s_a, s_b = self.random_styles(k_g_a, n), self.random_styles(k_g_b, n)

    def generator_objective(gen_params):
      nets = self.train_nets(state, {**disc.params, **gen_params})
      c_a, s_a_prime = self._encode(nets, 'G_A', x_a)
      c_b, s_b_prime = self._encode(nets, 'G_B', x_b)
      x_a_recon = self._decode(nets, 'G_A', c_a, s_a_prime)
      x_b_recon = self._decode(nets, 'G_B', c_b, s_b_prime)
      x_ba = self._decode(nets, 'G_A', c_b, s_a)
      x_ab = self._decode(nets, 'G_B', c_a, s_b)
      c_b_recon, s_a_recon = self._encode(nets, 'G_A', x_ba)
      c_a_recon, s_b_recon = self._encode(nets, 'G_B', x_ab)
      terms = {
          'adv_A': c.gan_w * self._adversarial(nets, 'D_A', to_d('D_A', x_ba, 4)),
          'adv_B': c.gan_w * self._adversarial(nets, 'D_B', to_d('D_B', x_ab, 5)),
          'recon_x_A': c.recon_x_w * losses.l1(x_a_recon, x_a),
          'recon_x_B': c.recon_x_w * losses.l1(x_b_recon, x_b),
          'recon_s_A': c.recon_s_w * losses.l1(s_a_recon, s_a),
          'recon_s_B': c.recon_s_w * losses.l1(s_b_recon, s_b),
          'recon_c_A': c.recon_c_w * losses.l1(c_a_recon, c_a),
          'recon_c_B': c.recon_c_w * losses.l1(c_b_recon, c_b),
      }
      if c.recon_x_cyc_w > 0:
        x_aba = self._decode(nets, 'G_A', c_a_recon, s_a_prime)
        x_bab = self._decode(nets, 'G_B', c_b_recon, s_b_prime)
        terms['cyc_x_A'] = c.recon_x_cyc_w * losses.l1(x_aba, x_a)
        terms['cyc_x_B'] = c.recon_x_cyc_w * losses.l1(x_bab, x_b)
      else:  # the same keys in every run; the decodes are skipped
        terms['cyc_x_A'] = terms['cyc_x_B'] = jnp.zeros((), jnp.float32)
      return sum(terms.values()), terms

    gen = self.descend('gen', generator_objective, state)

    metrics = {**{'loss_' + k: v for k, v in {**gen.aux, **d_terms}.items()},
               'loss_G': gen.loss, 'loss_D': disc.loss,
               **self.step_metrics(state, (gen, disc), to_d, real_outs)}
    return self.commit(state, gen, disc,
                       aux=self.count_real_signs(state.aux, real_outs)), metrics

  def penalty_inputs(self, state: GANState, batch, key):
    x_a, x_b = batch['a'], batch['b']
    if not self.penalty_needs_fakes:
      return {'D_A': (x_a, None), 'D_B': (x_b, None)}
    nets = self.train_nets(state)
    k_a, k_b = jax.random.split(key)
    n = x_a.shape[0]
    c_a, _ = self._encode(nets, 'G_A', x_a)
    c_b, _ = self._encode(nets, 'G_B', x_b)
    fake_a = self._decode(nets, 'G_A', c_b, self.random_styles(k_a, n))
    fake_b = self._decode(nets, 'G_B', c_a, self.random_styles(k_b, n))
    return {'D_A': (x_a, jax.lax.stop_gradient(fake_a)),
            'D_B': (x_b, jax.lax.stop_gradient(fake_b))}

  # -- inference -------------------------------------------------------------------

  def encode_style(self, model, domain: str, x: jax.Array) -> jax.Array:
    """The style codes [N, style_dim] of images `x` of `domain` ('a' or 'b')."""
    if domain not in DOMAINS:
      raise JaxganError(f"unknown domain '{domain}'; valid: {', '.join(DOMAINS)}")
    return self._encode(self.nets(model), DOMAINS[domain], x)[1]

  def translate(self, model, direction: str, x: jax.Array, style: jax.Array) -> jax.Array:
    """`x` of the source domain of `direction` ('AtoB' or 'BtoA') translated with
    `style` of the target domain: [N, style_dim], or [1, style_dim] for all N."""
    if direction not in DIRECTIONS:
      raise JaxganError(f"unknown direction '{direction}'; valid: "
                        f"{', '.join(DIRECTIONS)}")
    source, target = DIRECTIONS[direction]
    nets = self.nets(model)
    content, _ = self._encode(nets, source, x)
    style = jnp.broadcast_to(style, (x.shape[0], self.style_dim))
    return self._decode(nets, target, content, style)

  def default_style(self) -> jax.Array:
    """The one style [1, style_dim] the predictors use: drawn from PRNGKey(seed), so a
    translation depends on the image alone (not on the batch it came in)."""
    return self.random_styles(jax.random.PRNGKey(self.config.seed), 1)

  def predictors(self) -> dict[str, Translator]:
    """AtoB and BtoA, each with its style input (`translate --style-*`, `sample
    --style-grid`); without one, the fixed default style."""
    def translator(d):
      target = d[-1].lower()
      style = StyleControl(
          self.style_dim, random=self.random_styles,
          encode=lambda m, y: self.encode_style(m, target, y),
          apply=lambda m, x, s: self.translate(m, d, x, s))
      return Translator(lambda m, x: self.translate(m, d, x, self.default_style()),
                        d[0].lower(), target, self.size_multiple, style=style)
    return {d: translator(d) for d in DIRECTIONS}

  def sample(self, state: GANState, batch):
    x_a, x_b = batch['a'], batch['b']
    n = x_a.shape[0]
    style_b = self.encode_style(state, 'b', x_b)
    return (x_a,
            self.translate(state, 'AtoB', x_a, state.aux['sample_style_1'][:n]),
            self.translate(state, 'AtoB', x_a, state.aux['sample_style_2'][:n]),
            self.translate(state, 'AtoB', x_a, style_b),
            x_b)


TASK = Munit
