"""Tests for jaxgan.models.dcgan: the PyTorch examples' DCGAN, any power-of-two size.

Parameter counts are pinned to the PyTorch DCGAN tutorial's 64x64 networks and to a
hand derivation for MNIST at 32x32; big networks are only shape-evaluated, anything
executed uses a tiny ngf/ndf so the file stays fast on CPU. The stride-2 (4, 2, 1)
transposed conv against PyTorch's ConvTranspose2d is already covered by
tests/test_models.py, so only the DCGAN-specific 1x1 -> 4x4 projection is checked
numerically here.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import models
from jaxgan.errors import JaxganError
from jaxgan.models import dcgan

NZ = 100


def _key(seed):
  # rbg keys: much cheaper to initialise on CPU than threefry (see test_models).
  return jax.random.key(seed, impl='rbg')


def _rand(shape, seed=0):
  return jnp.asarray(
      np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


def _init(module, x, seed=0):
  # Jitted: one compilation instead of one per eagerly dispatched op (~3x faster).
  return jax.jit(functools.partial(module.init, train=False))(_key(seed), x)


def _apply(module, variables, x, **kwargs):
  return jax.jit(functools.partial(module.apply, **kwargs))(variables, x)


def _shape_init(module, x_shape):
  return jax.eval_shape(
      lambda: module.init(_key(0), jnp.zeros(x_shape), train=False))


def _pair(size, channels, width, dtype=jnp.float32):
  return (models.make_dcgan_generator(image_size=size, channels=channels,
                                      ngf=width, dtype=dtype),
          models.make_dcgan_discriminator(image_size=size, ndf=width,
                                          dtype=dtype))


# --- architecture -----------------------------------------------------------

# MNIST configuration (S=32, 1 channel, nz=100, ngf=ndf=64), by hand. n = log2(32)-2
# = 3 stages; a k x k conv from a to b features has k*k*a*b weights, a batch norm
# over c features 2c (scale, bias); no biases anywhere.
#   G: convT 100->256 (1->4):    16*100*256 = 409,600   BN 256: 512
#      convT 256->128 (4->8):    16*256*128 = 524,288   BN 128: 256
#      convT 128->64  (8->16):   16*128*64  = 131,072   BN 64:  128
#      convT 64->1    (16->32):  16*64*1    =   1,024
#      total 409,600 + 524,288 + 131,072 + 1,024 + 512 + 256 + 128 = 1,066,880
#   D: conv 1->64    (32->16):   16*1*64    =   1,024   (no BN)
#      conv 64->128  (16->8):    16*64*128  = 131,072   BN 128: 256
#      conv 128->256 (8->4):     16*128*256 = 524,288   BN 256: 512
#      conv 256->1   (4->1):     16*256*1   =   4,096
#      total 1,024 + 131,072 + 524,288 + 4,096 + 256 + 512 = 661,248
# The 64x64 RGB counts are the PyTorch DCGAN tutorial's (netG 3,576,704, netD
# 2,765,568), which count parameters only, not the running-statistics buffers.
@pytest.mark.parametrize('size,channels,g_expected,d_expected', [
    (64, 3, 3_576_704, 2_765_568),
    (32, 1, 1_066_880, 661_248),
])
def test_param_counts(size, channels, g_expected, d_expected):
  g, d = _pair(size, channels, 64)
  g_vars = _shape_init(g, (1, NZ))
  d_vars = _shape_init(d, (1, size, size, channels))
  assert models.count_params(g_vars['params']) == g_expected
  assert models.count_params(d_vars['params']) == d_expected


def test_pytorch_example_layers_at_64():
  g, d = _pair(64, 3, 64)
  p = _shape_init(g, (1, NZ))['params']
  kernels = [p[f'conv_{i}']['kernel'].shape for i in range(5)]
  assert kernels == [(4, 4, 100, 512), (4, 4, 512, 256), (4, 4, 256, 128),
                     (4, 4, 128, 64), (4, 4, 64, 3)]
  assert sorted(k for k in p if k.startswith('norm')) == [
      'norm_0', 'norm_1', 'norm_2', 'norm_3']  # none after the output layer
  assert all(set(p[f'conv_{i}']) == {'kernel'} for i in range(5))  # no biases

  v = _shape_init(d, (1, 64, 64, 3))
  p = v['params']
  kernels = [p[f'conv_{i}']['kernel'].shape for i in range(5)]
  assert kernels == [(4, 4, 3, 64), (4, 4, 64, 128), (4, 4, 128, 256),
                     (4, 4, 256, 512), (4, 4, 512, 1)]
  assert all(set(p[f'conv_{i}']) == {'kernel'} for i in range(5))
  # No batch norm on the first layer (nor after the logit conv).
  assert sorted(k for k in p if k.startswith('norm')) == [
      'norm_1', 'norm_2', 'norm_3']
  assert sorted(v['batch_stats']) == ['norm_1', 'norm_2', 'norm_3']


def test_smallest_size_has_no_middle_stages():
  g, d = _pair(8, 1, 64)
  p = _shape_init(g, (1, NZ))['params']
  assert sorted(p) == ['conv_0', 'conv_1', 'norm_0']
  assert p['conv_0']['kernel'].shape == (4, 4, NZ, 64)
  p = _shape_init(d, (1, 8, 8, 1))['params']
  assert sorted(p) == ['conv_0', 'conv_1']  # 8 -> 4 (no BN) -> 1 logit


def test_init_statistics():
  g, d = _pair(32, 1, 16)
  p = _init(g, jnp.zeros((1, NZ)))['params']
  kernel = np.asarray(p['conv_0']['kernel'])  # 4*4*100*64 = 102k draws
  assert abs(kernel.mean()) < 1e-3
  assert kernel.std() == pytest.approx(0.02, rel=0.03)
  scale = np.concatenate([np.asarray(p[f'norm_{i}']['scale']) for i in range(3)])
  assert scale.mean() == pytest.approx(1.0, abs=0.01)  # N(1, 0.02), not ones
  assert scale.std() == pytest.approx(0.02, rel=0.3)
  assert not any(np.any(np.asarray(p[f'norm_{i}']['bias'])) for i in range(3))
  p = _init(d, jnp.zeros((1, 32, 32, 1)), 1)['params']
  assert np.asarray(p['conv_2']['kernel']).std() == pytest.approx(0.02, rel=0.03)


# --- forward ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('size,channels', [(8, 1), (32, 1), (64, 3)])
def test_shapes_and_ranges(size, channels):
  g, d = _pair(size, channels, 4)
  z = _rand((2, NZ))
  # init's output is the train=False forward pass: one compilation per network.
  init = lambda m: jax.jit(functools.partial(m.init_with_output, train=False))
  images, _ = init(g)(_key(0), z)
  assert images.shape == (2, size, size, channels)
  assert images.dtype == jnp.float32
  assert float(jnp.abs(images).max()) < 1.0

  logits, _ = init(d)(_key(1), images)
  assert logits.shape == (2, 1, 1, 1) and logits.dtype == jnp.float32


def test_train_mode_updates_batch_stats():
  g, d = _pair(16, 1, 4)
  z = _rand((4, NZ))
  g_vars = _init(g, z)
  images, g_updates = _apply(g, g_vars, z, train=True,
                               mutable=['batch_stats'])
  assert sorted(g_updates['batch_stats']) == ['norm_0', 'norm_1']
  assert not np.allclose(g_vars['batch_stats']['norm_1']['mean'],
                         g_updates['batch_stats']['norm_1']['mean'])
  d_vars = _init(d, images, 1)
  _, d_updates = _apply(d, d_vars, images, train=True,
                          mutable=['batch_stats'])
  assert sorted(d_updates['batch_stats']) == ['norm_1']
  # Eval mode reads the running statistics and mutates nothing.
  a = _apply(g, g_vars, z, train=False)
  b = _apply(g, {**g_vars, **g_updates}, z, train=False)
  assert not np.allclose(a, b)


def test_projection_is_pytorch_conv_transpose_on_1x1():
  """Layer 0, ConvTranspose2d(nz, c, 4, 1, 0) on a 1x1 input, in numpy.

  On 1x1 input PyTorch's output is out[n, a, b, o] = sum_c z[n, c] w[c, o, a, b];
  the Flax kernel is PyTorch's spatially flipped (see layers.ConvTranspose).
  """
  g = models.make_dcgan_generator(image_size=8, channels=1, ngf=3)
  z = _rand((2, 5))
  v = _init(g, z)
  _, state = _apply(g, v, z, train=False,
                    capture_intermediates=True)
  y = np.asarray(state['intermediates']['conv_0']['__call__'][0])
  w_torch = np.asarray(v['params']['conv_0']['kernel'])[::-1, ::-1]
  expected = np.einsum('nc,abco->nabo', np.asarray(z), w_torch)
  assert y.shape == (2, 4, 4, 3)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_bfloat16_compute_keeps_float32_params_and_outputs():
  g, d = _pair(16, 3, 4, dtype=jnp.bfloat16)
  z = _rand((2, NZ))
  g_vars = _init(g, z)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(g_vars))
  images, updates = _apply(g, g_vars, z, train=True,
                               mutable=['batch_stats'])
  assert images.dtype == jnp.float32 and images.shape == (2, 16, 16, 3)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(updates))

  d_vars = _init(d, images, 1)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(d_vars))
  logits = _apply(d, d_vars, images, train=False)
  assert logits.dtype == jnp.float32 and logits.shape == (2, 1, 1, 1)


# --- errors -----------------------------------------------------------------


@pytest.mark.parametrize('size', [0, 4, 6, 24, 48, 100, -8, 32.0, True])
def test_bad_image_size(size):
  with pytest.raises(JaxganError, match=r'image_size=.* must be a power of two'):
    models.make_dcgan_generator(image_size=size, channels=3)
  with pytest.raises(JaxganError, match=r'image_size=.* must be a power of two'):
    models.make_dcgan_discriminator(image_size=size)


def test_error_messages():
  with pytest.raises(JaxganError) as e:
    models.make_dcgan_generator(image_size=48, channels=1)
  assert str(e.value) == 'DCGAN image_size=48 must be a power of two >= 8'
  with pytest.raises(JaxganError, match='channels=0 must be an integer >= 1'):
    models.make_dcgan_generator(image_size=32, channels=0)
  with pytest.raises(JaxganError, match='ngf=0 must be'):
    models.make_dcgan_generator(image_size=32, channels=1, ngf=0)
  with pytest.raises(JaxganError, match='ndf=-1 must be'):
    models.make_dcgan_discriminator(image_size=32, ndf=-1)
  # Also when built directly, not through the factories.
  with pytest.raises(JaxganError, match='image_size=12'):
    dcgan.DCGANDiscriminator(image_size=12)


def test_wrong_input_shapes():
  g, d = _pair(32, 1, 4)
  with pytest.raises(JaxganError, match=r'expected \[batch, latent_dim\]'):
    _shape_init(g, (1, 1, 1, NZ))
  with pytest.raises(JaxganError, match=r'expected \[batch, 32, 32, channels\]'):
    _shape_init(d, (1, 28, 28, 1))


def test_num_stages():
  assert [dcgan.num_stages(s) for s in (8, 16, 32, 64, 128)] == [1, 2, 3, 4, 5]
  assert dcgan.num_stages(np.int64(64)) == 4
