"""Tests for jaxgan.models: architecture pinned to the PyTorch reference.

Parameter counts and bias placement come from junyanz/pytorch-CycleGAN-and-pix2pix;
the big networks are only ever shape-evaluated, anything executed uses a tiny
ngf/ndf so the whole file stays fast on CPU.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import models
from jaxgan.errors import JaxganError
from jaxgan.models import layers
from jaxgan.models.resnet import ResnetBlock
from jit_helpers import apply, init


def _key(seed):
  # threefry compiles a fresh program per parameter shape (~0.6 s each on CPU);
  # rbg keys make initialising the executed networks several times cheaper.
  return jax.random.key(seed, impl='rbg')


def _shape_init(module, shape):
  """Variables as ShapeDtypeStructs: no FLOPs, however big the network."""
  return jax.eval_shape(
      lambda: module.init(_key(0), jnp.zeros(shape), train=False))


def _init(module, x, seed=0):
  return module.init(_key(seed), x, train=False)


def _init_jit(module, x, seed=0):
  """`_init` for the networks that run: one compile, not one per op."""
  return init(module, _key(seed), x, train=False)


def _rand(shape, seed=0):
  return jnp.asarray(
      np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


# --- architecture -----------------------------------------------------------


@pytest.mark.parametrize('kind,name,norm,shape,expected', [
    ('g', 'resnet_9blocks', 'instance', (1, 256, 256, 3), 11_378_179),
    ('g', 'resnet_6blocks', 'instance', (1, 256, 256, 3), 7_837_699),
    # 4 blocks fewer: 4 x 2 x (256 x 256 x 9 + 256) = 4,720,640 fewer parameters.
    ('g', 'resnet_2blocks', 'instance', (1, 256, 256, 3), 3_117_059),
    ('g', 'unet_256', 'batch', (1, 256, 256, 3), 54_413_955),
    ('g', 'unet_128', 'batch', (1, 128, 128, 3), 41_828_995),
    ('d', 'basic', 'instance', (1, 256, 256, 3), 2_764_737),
    ('d', 'basic', 'batch', (1, 256, 256, 6), 2_768_705),
    ('d', 'pixel', 'batch', (1, 256, 256, 6), 9_024),
])
def test_param_counts_match_reference(kind, name, norm, shape, expected):
  make = models.make_generator if kind == 'g' else models.make_discriminator
  variables = _shape_init(make(name, norm=norm), shape)
  assert models.count_params(variables['params']) == expected


def test_biases_exactly_where_the_reference_puts_them():
  p = _shape_init(models.make_generator('resnet_6blocks', norm='batch'),
                  (1, 32, 32, 3))['params']
  for conv in ('in_conv', 'down_0_conv', 'down_1_conv', 'up_0_conv',
               'up_1_conv'):
    assert set(p[conv]) == {'kernel'}, conv
  assert set(p['block_0']['conv_0']) == {'kernel'}
  assert set(p['block_5']['conv_1']) == {'kernel'}
  assert set(p['out_conv']) == {'kernel', 'bias'}

  p = _shape_init(models.make_generator('resnet_6blocks', norm='instance'),
                  (1, 32, 32, 3))['params']
  assert set(p['in_conv']) == {'kernel', 'bias'}
  assert set(p['block_0']['conv_1']) == {'kernel', 'bias'}

  # norm 'none' keeps the reference's use_bias = (norm is InstanceNorm): no bias.
  p = _shape_init(models.make_generator('resnet_6blocks', norm='none'),
                  (1, 32, 32, 3))['params']
  assert set(p['in_conv']) == {'kernel'}
  assert set(p['out_conv']) == {'kernel', 'bias'}

  p = _shape_init(models.make_generator('unet_128', norm='batch'),
                  (1, 128, 128, 3))['params']
  outer = p['outer']
  assert set(outer) == {'down_conv', 'up_conv', 'inner'}  # no norms outermost
  assert set(outer['down_conv']) == {'kernel'}
  assert set(outer['up_conv']) == {'kernel', 'bias'}
  innermost = outer
  for _ in range(6):
    innermost = innermost['inner']
  assert set(innermost) == {'down_conv', 'up_conv', 'up_norm'}
  assert set(innermost['up_conv']) == {'kernel'}

  p = _shape_init(models.make_discriminator('basic', norm='batch'),
                  (1, 64, 64, 6))['params']
  assert set(p['conv_0']) == {'kernel', 'bias'}
  for conv in ('conv_1', 'conv_2', 'conv_3'):
    assert set(p[conv]) == {'kernel'}, conv
  assert set(p['conv_4']) == {'kernel', 'bias'}

  p = _shape_init(models.make_discriminator('pixel', norm='batch'),
                  (1, 8, 8, 6))['params']
  assert set(p['conv_0']) == {'kernel', 'bias'}
  assert set(p['conv_1']) == {'kernel'}
  assert set(p['conv_2']) == {'kernel'}  # the logit conv follows use_bias too


def test_instance_norm_has_no_state_and_batch_norm_does():
  v = _shape_init(models.make_generator('resnet_6blocks', ngf=8),
                  (1, 16, 16, 3))
  assert set(v) == {'params'}
  v = _shape_init(models.make_generator('resnet_6blocks', ngf=8, norm='batch'),
                  (1, 16, 16, 3))
  assert set(v) == {'params', 'batch_stats'}


def test_unet_channel_schedule():
  outer = _shape_init(models.make_generator('unet_256', ngf=64),
                      (1, 256, 256, 3))['params']['outer']
  down, block = [], outer
  while True:
    down.append(block['down_conv']['kernel'].shape[-1])
    if 'inner' not in block:
      break
    block = block['inner']
  assert down == [64, 128, 256, 512, 512, 512, 512, 512]
  assert outer['up_conv']['kernel'].shape == (4, 4, 128, 3)  # [x, up] concat


# --- shapes -----------------------------------------------------------------


@pytest.mark.slow
def test_resnet_generator_shape_and_range():
  g = models.make_generator('resnet_6blocks', ngf=8)
  x = _rand((2, 32, 32, 3))
  y = apply(g, _init_jit(g, x), x, train=False)
  assert y.shape == (2, 32, 32, 3) and y.dtype == jnp.float32
  assert float(jnp.abs(y).max()) <= 1.0


@pytest.mark.slow
def test_unet_128_shape():
  g = models.make_generator('unet_128', ngf=8)
  x = _rand((1, 128, 128, 3))
  y = apply(g, _init_jit(g, x), x, train=False)
  assert y.shape == (1, 128, 128, 3) and y.dtype == jnp.float32
  assert float(jnp.abs(y).max()) <= 1.0


@pytest.mark.parametrize('name,size', [('resnet_9blocks', 64),
                                       ('unet_256', 256)])
def test_big_generator_shapes(name, size):
  g = models.make_generator(name, out_channels=1)
  x = jnp.zeros((2, size, size, 3))
  y = jax.eval_shape(lambda: g.apply(_init(g, x), x, train=False))
  assert y.shape == (2, size, size, 1) and y.dtype == jnp.float32


@pytest.mark.slow
def test_basic_discriminator_patch_sizes():
  d = models.make_discriminator('basic', ndf=8)
  x = _rand((2, 32, 32, 3))
  logits = apply(d, _init_jit(d, x), x, train=False)
  assert logits.shape == (2, 2, 2, 1) and logits.dtype == jnp.float32

  d = models.make_discriminator('basic', ndf=2)
  x = _rand((1, 256, 256, 3))
  assert apply(d, _init_jit(d, x), x, train=False).shape == (1, 30, 30, 1)


def test_n_layers_and_pixel_discriminator_shapes():
  x = jnp.zeros((1, 64, 64, 6))
  d = models.make_discriminator('n_layers', n_layers=2)
  out = jax.eval_shape(lambda: d.apply(_init(d, x), x, train=False))
  assert out.shape == (1, 14, 14, 1)  # 64 -> 32 -> 16 -> 15 -> 14
  # 'basic' ignores n_layers.
  d = models.make_discriminator('basic', n_layers=5)
  out = jax.eval_shape(lambda: d.apply(_init(d, x), x, train=False))
  assert out.shape == (1, 6, 6, 1)
  d = models.make_discriminator('pixel')
  out = jax.eval_shape(lambda: d.apply(_init(d, x), x, train=False))
  assert out.shape == (1, 64, 64, 1)


# --- layers -----------------------------------------------------------------


def _torch_conv_transpose(x, w_torch, stride, padding, output_padding):
  """numpy ConvTranspose2d as PyTorch defines it: scatter, then crop `padding`."""
  n, h, w, _ = x.shape
  k = w_torch.shape[0]
  full = np.zeros((n, (h - 1) * stride + k + output_padding,
                   (w - 1) * stride + k + output_padding, w_torch.shape[-1]))
  for i in range(h):
    for j in range(w):
      full[:, i * stride:i * stride + k, j * stride:j * stride + k] += np.einsum(
          'nc,abco->nabo', x[:, i, j], w_torch)
  out = (h - 1) * stride - 2 * padding + k + output_padding
  return full[:, padding:padding + out, padding:padding + out]


# The two reference configurations (output 2H), then other phase layouts (5x5, a
# kernel smaller than the stride so some phases have no taps, stride 3) and sizes
# that are not s*H (the dilated-convolution fallback).
@pytest.mark.parametrize('k,s,p,op', [(3, 2, 1, 1), (4, 2, 1, 0), (5, 2, 2, 1),
                                      (1, 2, 0, 1), (3, 3, 0, 0), (3, 2, 1, 0),
                                      (4, 2, 0, 0)])
def test_conv_transpose_matches_pytorch_semantics(k, s, p, op):
  ct = layers.conv_transpose(3, k, s, p, op, use_bias=False)
  x = _rand((1, 5, 5, 2))
  v = init(ct, _key(1), x)
  y = np.asarray(apply(ct, v, x))
  out = (5 - 1) * s - 2 * p + k + op
  assert y.shape == (1, out, out, 3)
  # Flax applies the kernel un-flipped; PyTorch's equivalent is the flip.
  w_torch = np.asarray(v['params']['kernel'])[::-1, ::-1]
  expected = _torch_conv_transpose(np.asarray(x), w_torch, s, p, op)
  np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def _np_conv3x3_valid(x, w, b):
  n, h, wd, _ = x.shape
  out = np.zeros((n, h - 2, wd - 2, w.shape[-1])) + b
  for a in range(3):
    for c in range(3):
      out += x[:, a:a + h - 2, c:c + wd - 2] @ w[a, c]
  return out


def test_resnet_block_uses_reflect_padding():
  block = ResnetBlock(dim=2, norm='none')
  x = _rand((1, 6, 6, 2))
  v = init(block, _key(3), x, train=False)
  y = np.asarray(apply(block, v, x, train=False))
  k0 = np.asarray(v['params']['conv_0']['kernel'])
  k1 = np.asarray(v['params']['conv_1']['kernel'])

  def reference(mode):
    pad = lambda t: np.pad(t, ((0, 0), (1, 1), (1, 1), (0, 0)), mode=mode)
    h = np.maximum(_np_conv3x3_valid(pad(np.asarray(x)), k0, 0.0), 0.0)
    return np.asarray(x) + _np_conv3x3_valid(pad(h), k1, 0.0)

  np.testing.assert_allclose(y, reference('reflect'), rtol=1e-5, atol=1e-6)
  assert not np.allclose(y, reference('constant'), atol=1e-4)


def test_reflect_pad_values():
  x = jnp.arange(9.0).reshape(1, 3, 3, 1)
  np.testing.assert_array_equal(
      layers.reflect_pad(x, 1)[0, :, :, 0],
      [[4, 3, 4, 5, 4], [1, 0, 1, 2, 1], [4, 3, 4, 5, 4], [7, 6, 7, 8, 7],
       [4, 3, 4, 5, 4]])


@pytest.mark.slow
def test_init_statistics():
  d = models.make_discriminator('basic', ndf=64, norm='batch')
  v = _init_jit(d, jnp.zeros((1, 32, 32, 3)))
  p = v['params']
  kernel = np.asarray(p['conv_3']['kernel'])  # 4x4x256x512 = 2M draws
  assert abs(kernel.mean()) < 1e-3
  assert kernel.std() == pytest.approx(0.02, rel=0.02)
  assert not np.any(np.asarray(p['conv_0']['bias']))
  assert not np.any(np.asarray(p['conv_4']['bias']))
  scale = np.asarray(p['norm_3']['scale'])
  assert scale.mean() == pytest.approx(1.0, abs=0.005)
  assert scale.std() == pytest.approx(0.02, rel=0.2)
  assert not np.any(np.asarray(p['norm_3']['bias']))
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(v))

  ct = layers.conv_transpose(256, 3, 2, 1, 1, use_bias=True)
  p = init(ct, _key(0), jnp.zeros((1, 2, 2, 256)))['params']
  assert np.asarray(p['kernel']).std() == pytest.approx(0.02, rel=0.02)
  assert not np.any(np.asarray(p['bias']))


def test_instance_norm_matches_numpy():
  x = np.asarray(_rand((2, 5, 7, 3))) * 3.0 + 1.5
  y = np.asarray(layers.instance_norm(jnp.asarray(x)))
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = x.var(axis=(1, 2), keepdims=True)  # biased, as PyTorch normalises
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(y.var(axis=(1, 2)), 1.0, atol=1e-3)


class _Norm(nn.Module):
  kind: str

  @nn.compact
  def __call__(self, x, train):
    return layers.norm_layer(self.kind)(x, train)


def test_batch_norm_momentum_and_running_stats():
  bn = _Norm('batch')
  x = np.asarray(_rand((4, 3, 3, 2))) * 2.0 + 3.0
  v = init(bn, _key(0), x, train=False)
  scale = np.asarray(v['params']['BatchNorm_0']['scale'])

  y, updates = apply(bn, v, x, train=True, mutable=['batch_stats'])
  stats = updates['batch_stats']['BatchNorm_0']
  mean, var = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
  # PyTorch momentum 0.1: running = 0.9 * running + 0.1 * batch (mean from 0,
  # var from 1). Flax's running var takes the biased batch variance.
  np.testing.assert_allclose(stats['mean'], 0.1 * mean, rtol=1e-5)
  np.testing.assert_allclose(stats['var'], 0.9 + 0.1 * var, rtol=1e-5)
  np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5) * scale,
                             rtol=1e-4, atol=1e-4)

  v = {'params': v['params'], 'batch_stats': updates['batch_stats']}
  y_eval = apply(bn, v, x, train=False)
  expected = ((x - 0.1 * mean) / np.sqrt(0.9 + 0.1 * var + 1e-5) * scale)
  np.testing.assert_allclose(y_eval, expected, rtol=1e-4, atol=1e-4)


def test_discriminator_batch_stats_update_in_train_mode():
  d = models.make_discriminator('pixel', ndf=4, norm='batch')
  x = _rand((2, 4, 4, 6))
  v = _init_jit(d, x)
  _, updates = apply(d, v, x, train=True, mutable=['batch_stats'])
  before = v['batch_stats']['norm_1']['mean']
  after = updates['batch_stats']['norm_1']['mean']
  assert not np.allclose(before, after)


@pytest.mark.slow
def test_unet_dropout_only_in_train_mode():
  g = models.make_generator('unet_128', ngf=4, use_dropout=True)
  x = _rand((1, 128, 128, 3))
  v = _init_jit(g, x)
  a = apply(g, v, x, train=True, rngs={'dropout': _key(1)})
  b = apply(g, v, x, train=True, rngs={'dropout': _key(2)})
  assert not np.allclose(a, b)
  c = apply(g, v, x, train=False, rngs={'dropout': _key(1)})
  d = apply(g, v, x, train=False, rngs={'dropout': _key(2)})
  np.testing.assert_array_equal(c, d)
  np.testing.assert_array_equal(c, apply(g, v, x, train=False))


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_params_and_outputs():
  g = models.make_generator('resnet_6blocks', ngf=8, norm='batch',
                            dtype=jnp.bfloat16)
  x = _rand((1, 16, 16, 3))
  v = _init_jit(g, x)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(v))
  y, updates = apply(g, v, x, train=True, mutable=['batch_stats'])
  assert y.dtype == jnp.float32 and y.shape == x.shape
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(updates))

  d = models.make_discriminator('basic', ndf=4, dtype=jnp.bfloat16)
  x = _rand((1, 32, 32, 3))
  v = _init_jit(d, x)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(v))
  assert apply(d, v, x, train=False).dtype == jnp.float32

  y = layers.instance_norm(x.astype(jnp.bfloat16))
  assert y.dtype == jnp.bfloat16


# --- API --------------------------------------------------------------------


def test_unknown_names_raise_with_valid_names():
  with pytest.raises(JaxganError) as e:
    models.make_generator('resnet_7blocks')
  assert str(e.value) == ("unknown generator 'resnet_7blocks'; valid: "
                          'resnet_2blocks, resnet_6blocks, resnet_9blocks, unet_32, unet_64, unet_128, unet_256')
  with pytest.raises(JaxganError, match='valid: basic, n_layers, pixel'):
    models.make_discriminator('multiscale')
  with pytest.raises(JaxganError, match='valid: instance, batch, none'):
    models.make_generator('unet_256', norm='group')
  with pytest.raises(JaxganError, match='valid: instance, batch, none'):
    models.make_discriminator('basic', norm='layer')
  with pytest.raises(JaxganError, match='unknown generator'):
    models.size_multiple('unet_512')


def test_registries():
  assert set(models.GENERATORS) == {'resnet_2blocks', 'resnet_6blocks', 'resnet_9blocks',
                                    'unet_32', 'unet_64', 'unet_128', 'unet_256'}
  assert set(models.DISCRIMINATORS) == {'basic', 'n_layers', 'pixel'}
  assert models.NORMS == ('instance', 'batch', 'none')


def test_size_multiple():
  assert models.size_multiple('resnet_2blocks') == 4
  assert models.size_multiple('resnet_6blocks') == 4
  assert models.size_multiple('resnet_9blocks') == 4
  assert models.size_multiple('unet_128') == 128
  assert models.size_multiple('unet_256') == 256


def test_count_params():
  tree = {'a': jnp.zeros((3, 4)), 'b': {'c': jnp.zeros(5)},
          'd': jax.ShapeDtypeStruct((2, 2), jnp.float32)}
  assert models.count_params(tree) == 21


@pytest.mark.slow
@pytest.mark.parametrize('x_shape,w_shape,stride,padding,method', [
    ((1, 64, 64, 16), (3, 3, 16, 32), 1, ((1, 1), (1, 1)), 'taps'),
    ((2, 128, 130, 16), (4, 4, 16, 24), 2, ((1, 1), (1, 1)), 'taps'),
    ((1, 66, 66, 16), (3, 3, 16, 32), 1, ((0, 0), (0, 0)), 'taps'),  # same + crop
    ((1, 70, 70, 8), (7, 7, 8, 3), 1, ((0, 0), (0, 0)), 'narrow'),  # ResNet's output
    ((1, 64, 64, 8), (7, 7, 8, 3), 1, ((3, 3), (3, 3)), 'narrow'),
    ((2, 64, 64, 20), (2, 2, 20, 30), 1, ((0, 1), (-1, 1)), 'narrow'),  # a phase
    ((1, 129, 129, 32), (4, 4, 32, 1), 1, ((1, 1), (1, 1)), 'narrow'),  # PatchGAN's last
    ((1, 18, 18, 64), (3, 3, 64, 128), 1, ((0, 0), (0, 0)), 'gemm'),
    ((2, 8, 8, 256), (4, 4, 256, 512), 2, ((1, 1), (1, 1)), 'gemm'),  # U-Net's inner
    ((1, 34, 34, 16), (3, 3, 16, 32), 1, ((0, 0), (0, 0)), 'xla'),
    ((1, 10, 10, 32), (3, 3, 32, 32), 1, ((0, 0), (0, 0)), 'xla'),  # small: compile time
], ids=['taps-3x3', 'taps-strided', 'taps-same-crop', 'narrow-7x7-to-3',
        'narrow-padded', 'narrow-cropping', 'narrow-to-1', 'gemm-3x3', 'gemm-strided',
        'xla-middle', 'xla-small'])
def test_cpu_conv_formulations_equal_xla(x_shape, w_shape, stride, padding, method):
  """The CPU formulations of jaxgan.models.cpu_conv give XLA's convolution: the
  output, and both inputs' gradients of a nonlinear function of it."""
  from jax import lax
  from jaxgan.models import cpu_conv
  assert cpu_conv.plan(x_shape, w_shape, stride, padding) == method
  x = jax.random.normal(jax.random.PRNGKey(0), x_shape)
  # Unit-variance outputs, so sin() of them is not dominated by float32 rounding.
  fan_in = w_shape[0] * w_shape[1] * w_shape[2]
  w = jax.random.normal(jax.random.PRNGKey(1), w_shape) / np.sqrt(fan_in)

  def ours(x, w):
    # Jitted below: traced once, inside the context, which is what reads the placement.
    with cpu_conv.placement('cpu'):
      assert cpu_conv.formulation(x.shape, w.shape, stride, padding) == method
      return cpu_conv.conv2d(x, w, stride, padding)

  def xla(x, w):
    return lax.conv_general_dilated(x, w, (stride, stride), padding,
                                    dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  def loss(conv):
    return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))

  # Each side one compiled program (op by op, the formulations were up to 86 compiles).
  want = jax.jit(xla)(x, w)
  np.testing.assert_allclose(np.asarray(jax.jit(ours)(x, w)), np.asarray(want), rtol=0,
                             atol=1e-5 * float(jnp.max(jnp.abs(want))))
  grads = [jax.jit(jax.grad(loss(conv), (0, 1)))(x, w) for conv in (ours, xla)]
  for a, b in zip(*grads):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0,
                               atol=1e-5 * float(jnp.max(jnp.abs(b))))


def _primitives(fn, *args):
  """The primitive names in fn's jaxpr, nested jaxprs (jit, custom_vjp) included."""
  return str(jax.make_jaxpr(fn)(*args))


def test_cpu_conv_placement_chooses_the_formulation():
  """The placement the computation is traced under, not the process's backend, picks
  the convolution: placed on CPU, a layer above the size floor (ResNet's 7x7 ->3
  output conv, 'narrow') is a GEMM; unplaced or placed on a GPU it is XLA's conv."""
  from jaxgan.models import cpu_conv
  module = layers.conv(3, 7, use_bias=False)
  x = jnp.zeros((1, 70, 70, 8))
  params = jax.eval_shape(lambda: module.init(_key(0), x))
  assert cpu_conv.plan(x.shape, (7, 7, 8, 3), 1, ((0, 0), (0, 0))) == 'narrow'

  on_cpu = _primitives(cpu_conv.jit_placed(module.apply, 'cpu'), params, x)
  assert 'conv_general_dilated' not in on_cpu and 'dot_general' in on_cpu
  with cpu_conv.placement(jax.devices('cpu')):
    assert 'conv_general_dilated' not in _primitives(module.apply, params, x)
    assert cpu_conv.formulation(x.shape, (7, 7, 8, 3), 1, ((0, 0), (0, 0))) == 'narrow'
  for unplaced in (jax.jit(module.apply), cpu_conv.jit_placed(module.apply, 'gpu'),
                   cpu_conv.jit_placed(module.apply, None)):
    jaxpr = _primitives(unplaced, params, x)
    assert 'conv_general_dilated' in jaxpr and 'dot_general' not in jaxpr
  assert cpu_conv.formulation(x.shape, (7, 7, 8, 3), 1, ((0, 0), (0, 0))) == 'xla'
  with cpu_conv.placement('cuda'):
    assert cpu_conv.formulation(x.shape, (7, 7, 8, 3), 1, ((0, 0), (0, 0))) == 'xla'
  assert cpu_conv.current() == cpu_conv.Placement()  # every context was left


def test_placement_chooses_the_transposed_conv_phase_split():
  """ConvTranspose as phases (on by default, placed or not) or, with phase_split=False,
  as XLA's conv over the stride-dilated input; both give the same output."""
  from jaxgan.models import cpu_conv
  module = layers.conv_transpose(4, 3, 2, 1, 1, use_bias=False)
  x = _rand((1, 6, 6, 5))
  params = init(module, _key(0), x)
  dilated = 'lhs_dilation=(2, 2)'
  assert dilated not in _primitives(jax.jit(module.apply), params, x)
  assert dilated not in _primitives(cpu_conv.jit_placed(module.apply, 'gpu'), params, x)
  split = cpu_conv.jit_placed(module.apply, 'cpu', phase_split=True)
  whole = cpu_conv.jit_placed(module.apply, 'cpu', phase_split=False)
  assert dilated not in _primitives(split, params, x)
  assert dilated in _primitives(whole, params, x)
  with cpu_conv.placement('gpu', phase_split=False):
    assert dilated in _primitives(module.apply, params, x)
  np.testing.assert_allclose(np.asarray(split(params, x)), np.asarray(whole(params, x)),
                             rtol=0, atol=1e-5)


def test_placement_platform_of_devices_mesh_and_sharding():
  from jaxgan.models import cpu_conv
  devices = jax.devices('cpu')
  mesh = jax.sharding.Mesh(np.array(devices), ('data',))
  assert cpu_conv.platform_of(devices[0]) == 'cpu'
  assert cpu_conv.platform_of(devices) == 'cpu'
  assert cpu_conv.platform_of(mesh) == 'cpu'
  assert cpu_conv.platform_of(jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec())) == 'cpu'
  assert cpu_conv.platform_of('CUDA') == 'gpu'
  assert cpu_conv.platform_of(None) is None
