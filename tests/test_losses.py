"""GAN losses, gradient penalty and L1 against hand-computed values."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import losses
from jaxgan.errors import JaxganError

LN2 = math.log(2.0)


def test_lsgan():
  # G: mean((0.5-1)^2, (2-1)^2) = (0.25 + 1) / 2
  assert losses.generator_loss('lsgan', jnp.array([0.5, 2.0])) == pytest.approx(0.625)
  # D: real mean((1-1)^2, (0-1)^2) = 0.5; fake mean(0^2, 0.5^2) = 0.125
  d = losses.discriminator_loss('lsgan', jnp.array([1.0, 0.0]), jnp.array([0.0, 0.5]))
  assert d == pytest.approx(0.625)


def test_vanilla_is_bce_with_logits():
  assert losses.generator_loss('vanilla', jnp.zeros(4)) == pytest.approx(LN2)
  assert losses.discriminator_loss('vanilla', jnp.zeros(3), jnp.zeros(3)) == pytest.approx(2 * LN2)
  # logit 2 for real: -log(sigmoid(2)); logit -1 for fake: -log(1 - sigmoid(-1))
  expected = -math.log(1 / (1 + math.exp(-2))) - math.log(1 - 1 / (1 + math.exp(1)))
  got = losses.discriminator_loss('vanilla', jnp.array([2.0]), jnp.array([-1.0]))
  assert got == pytest.approx(expected, rel=1e-6)
  # Extreme logits stay finite.
  assert np.isfinite(losses.discriminator_loss('vanilla', jnp.array([-1e4]), jnp.array([1e4])))


def test_vanilla_label_smoothing():
  # target 0.9 on a real logit 0: 0.9*ln2 + 0.1*ln2 = ln2 (symmetric at 0); at logit 2:
  t, r = 0.9, 2.0
  expected = t * math.log1p(math.exp(-r)) + (1 - t) * math.log1p(math.exp(r)) + LN2
  got = losses.discriminator_loss('vanilla', jnp.array([r]), jnp.array([0.0]), real_label=t)
  assert got == pytest.approx(expected, rel=1e-6)


def test_hinge_and_wgan():
  # real relu(1-0.5)=0.5, relu(1-2)=0 -> 0.25; fake relu(1-2)=0, relu(1+0)=1 -> 0.5
  d = losses.discriminator_loss('hinge', jnp.array([0.5, 2.0]), jnp.array([-2.0, 0.0]))
  assert d == pytest.approx(0.75)
  assert losses.generator_loss('hinge', jnp.array([1.0, 3.0])) == pytest.approx(-2.0)
  d = losses.discriminator_loss('wgangp', jnp.array([1.0, 3.0]), jnp.array([0.5, 0.5]))
  assert d == pytest.approx(0.5 - 2.0)
  assert losses.generator_loss('wgangp', jnp.array([0.5, 1.5])) == pytest.approx(-1.0)


def test_gradient_penalty_linear_critic():
  # D(x) = <w, x> per sample has gradient w everywhere: penalty = (|w| - 1)^2 whatever
  # the interpolation; |w| = 3 gives 4.
  w = jnp.zeros((4, 4, 1)).at[0, 0, 0].set(3.0)
  d_fn = lambda x: jnp.sum(x * w, axis=(1, 2, 3))
  real = jax.random.normal(jax.random.PRNGKey(0), (5, 4, 4, 1))
  fake = jax.random.normal(jax.random.PRNGKey(1), (5, 4, 4, 1))
  # One program, not one compile per op of the penalty and its grad.
  gp = jax.jit(functools.partial(losses.gradient_penalty, d_fn))(real, fake,
                                                             jax.random.PRNGKey(2))
  assert gp == pytest.approx(4.0, rel=1e-5)


def test_gradient_penalty_depends_on_interpolation():
  # D(x) = sum(x^2)/2 has gradient x: at x_hat = e*r + (1-e)*f with r = 1, f = 0 per
  # element, |grad| = e*sqrt(n). Check against the same eps the function draws.
  n = 16
  real, fake = jnp.ones((3, 4, 4, 1)), jnp.zeros((3, 4, 4, 1))
  rng = jax.random.PRNGKey(7)
  eps = jax.random.uniform(rng, (3, 1, 1, 1)).reshape(-1)
  expected = float(jnp.mean(jnp.square(eps * math.sqrt(n) - 1.0)))
  gp = jax.jit(functools.partial(losses.gradient_penalty,
                             lambda x: 0.5 * jnp.sum(x * x, axis=(1, 2, 3))))(real, fake, rng)
  assert gp == pytest.approx(expected, rel=1e-5)


def test_l1_and_unknown_mode():
  assert losses.l1(jnp.array([1.0, -1.0]), jnp.array([0.0, 1.0])) == pytest.approx(1.5)
  with pytest.raises(JaxganError, match='valid: lsgan, vanilla, hinge, wgangp'):
    losses.check_mode('wgan')
