"""Image pool semantics (the reference's ImagePool.query) and the LR schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgan import optim, pool
from jaxgan.errors import JaxganError


def _images(values):
  return jnp.stack([jnp.full((2, 2, 1), v, jnp.float32) for v in values])


def test_pool_fills_then_returns_inputs():
  query = jax.jit(pool.query)  # one compile per batch size, not one per op
  p = pool.init_pool(3, (2, 2, 1))
  p, out = query(p, _images([1, 2]), jax.random.PRNGKey(0))
  np.testing.assert_array_equal(out, _images([1, 2]))
  assert int(p.count) == 2
  p, out = query(p, _images([3]), jax.random.PRNGKey(1))
  np.testing.assert_array_equal(out, _images([3]))
  assert int(p.count) == 3
  assert sorted(np.asarray(p.images)[:, 0, 0, 0]) == [1, 2, 3]


def test_pool_full_swaps_half_the_time():
  p = pool.init_pool(2, (2, 2, 1))
  p, _ = pool.query(p, _images([1, 2]), jax.random.PRNGKey(0))
  swaps, n = 0, 400
  query = jax.jit(pool.query)
  for i in range(n):
    new, out = query(p, _images([9]), jax.random.PRNGKey(100 + i))
    stored = sorted(np.asarray(new.images)[:, 0, 0, 0])
    v = float(out[0, 0, 0, 0])
    if v == 9:  # returned the new image: the pool is unchanged
      assert stored == [1, 2]
    else:  # returned a stored image, which the new one replaced
      swaps += 1
      assert v in (1, 2)
      assert stored == sorted([9, 3 - v])
    assert int(new.count) == 2
  assert 0.4 < swaps / n < 0.6


@pytest.mark.slow
def test_pool_sequential_within_batch():
  # Size 1, batch [5, 6]: 5 fills the pool and is returned; 6 either passes through or
  # is swapped with 5 — the second image sees the pool the first one left.
  p = pool.init_pool(1, (2, 2, 1))
  seen = set()
  query = jax.jit(pool.query)  # one compile, not 50 traces of it op by op
  for i in range(50):
    new, out = query(p, _images([5, 6]), jax.random.PRNGKey(i))
    pair = tuple(np.asarray(out)[:, 0, 0, 0])
    assert pair in ((5, 6), (5, 5))
    assert float(new.images[0, 0, 0, 0]) == (6 if pair == (5, 5) else 5)
    seen.add(pair)
  assert seen == {(5, 6), (5, 5)}


def test_pool_size_zero_is_identity_and_seeded():
  p = pool.init_pool(0, (2, 2, 1))
  _, out = pool.query(p, _images([1, 2]), jax.random.PRNGKey(0))
  np.testing.assert_array_equal(out, _images([1, 2]))
  p = pool.init_pool(2, (2, 2, 1))
  p, _ = pool.query(p, _images([1, 2]), jax.random.PRNGKey(0))
  a = pool.query(p, _images([7, 8]), jax.random.PRNGKey(3))
  b = pool.query(p, _images([7, 8]), jax.random.PRNGKey(3))
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_linear_decay_schedule_matches_reference_rule():
  # epochs=2 constant, epochs_decay=3, 10 steps per epoch:
  # factor(e) = 1 - max(0, e + 1 - 2) / 4 -> e0 1, e1 1, e2 .75, e3 .5, e4 .25
  s = optim.linear_decay_schedule(2e-4, 2, 3, 10)
  for step, factor in [(0, 1), (9, 1), (19, 1), (20, .75), (29, .75), (30, .5),
                       (40, .25), (49, .25)]:
    assert float(s(step)) == pytest.approx(2e-4 * factor), step
  # Never negative past the end.
  assert float(s(1000)) == 0.0


def _opt_cfg(**kw):
  import ml_collections
  c = ml_collections.ConfigDict(dict(name='sgd', lr=1.0, momentum=0.0, b1=0.5, b2=0.999,
                                     eps=1e-8, clip_norm=0.0, weight_decay=0.0,
                                     schedule='constant', decay_every=0,
                                     decay_factor=0.5, lr_mult=()))
  c.update(kw)
  return c


def test_clipped_gradient_norm_never_exceeds_the_bound():
  # Plain SGD with lr 1: the update is minus the (clipped) gradient.
  opt = optim.make_optimizer(_opt_cfg(clip_norm=1.0), lambda step: 1.0)
  rng = np.random.default_rng(0)
  for scale in (0.01, 0.5, 3.0, 1e4):
    g = {'w': jnp.asarray(rng.normal(size=(5, 7)) * scale), 'b': jnp.asarray(rng.normal(size=3) * scale)}
    params = jax.tree.map(jnp.zeros_like, g)
    updates, _ = opt.update(g, opt.init(params), params, step=0)
    norm_in = float(optax.global_norm(g))
    norm_out = float(optax.global_norm(updates))
    assert norm_out <= 1.0 + 1e-6
    if norm_in <= 1.0:  # small gradients pass unchanged
      np.testing.assert_allclose(norm_out, norm_in, rtol=1e-6)
    else:  # large ones are scaled onto the bound, direction kept
      np.testing.assert_allclose(norm_out, 1.0, rtol=1e-6)
      np.testing.assert_allclose(-updates['w'], g['w'] / norm_in, rtol=1e-5)
  with pytest.raises(JaxganError, match=r'optimizer.clip_norm=-1.0 must be >= 0'):
    optim.resolve_groups(_opt_cfg(clip_norm=-1.0), ('gen',))


def test_instance_noise_schedule():
  # std 0.1 annealed over 100 steps: 0.1 at 0, 0.05 at 50, 0 from 100 on; 0 steps: constant.
  for step, expected in [(0, 0.1), (25, 0.075), (50, 0.05), (100, 0.0), (500, 0.0)]:
    assert float(optim.instance_noise_std(step, 0.1, 100)) == pytest.approx(expected)
  assert float(optim.instance_noise_std(10**6, 0.2, 0)) == pytest.approx(0.2)
