"""The standard FID Inception-v3 (TensorFlow graph of 2015-12-05) as a Flax Linen module.

Owns the network (`FIDInceptionV3`), turning the shared weight arrays into Flax variables
(`variables_from_npz_dict`, `load_npz`), pytorch-fid's input protocol (`preprocess`,
`resize_bilinear`) and the jitted feature function (`make_feature_fn`). The statistics
built on the features live in `jaxgan.metrics.feature_scores`.

The network is the one TTUR FID, pytorch-fid, clean-fid and StyleGAN3 use, including the
quirks of that graph that torchvision's Inception-v3 lacks:
  * every conv has no bias and is followed by batch norm with beta only (gamma 1),
    eps 1e-3, then ReLU;
  * the Inception-A/C branch pools and `mixed_9`'s (E_1) are 3x3 s1 pad-1 average pools
    that do not count the padding; `mixed_10`'s (E_2) branch pool is a 3x3 s1 pad-1 MAX
    pool; the head is an 8x8 average pool giving the 2048-d `pool3` feature;
  * the optional classifier `fc` has 1008 classes (for the Inception Score).

Input conventions (measured on the 4 reference images). The graph itself takes 299x299
images as uint8 / 128 - 1: fed that way, this port reproduces the reference `pool3`
features of the test data `fid_inception_reference_io.npz` to 1.3e-6 .. 1.9e-6 relative
error per image (float32, CPU; the test requires <= 1e-4). pytorch-fid instead feeds
2 * (uint8 / 255) - 1 = uint8 / 127.5 - 1 (up to 0.4% of the input range apart), which
moves pool3 by 1.8e-3 .. 8.9e-3 relative. Published FIDs computed with pytorch-fid use its
protocol, so `preprocess` (and the feature function) implement that one: uint8 RGB of any
size -> x / 255 -> bilinear resize to 299x299 as PyTorch's `F.interpolate(mode='bilinear',
align_corners=False)` (half-pixel centres, source index clamped at 0, two taps, no
antialiasing, also when downsampling; the identity at 299) -> 2x - 1.
`jax.image.resize(..., 'bilinear', antialias=False)` has the same taps (equal on the
2x2 -> 4x4 hand example; within 1.6e-5 on [0, 1] data for 512x384 -> 299x299 and -> 700x650,
from its float32 sample positions), but the explicit two-tap form here follows PyTorch's
float32 arithmetic instead of resting on that equivalence.
"""

import functools
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxgan.errors import JaxganError

# sha256 of the weights file fid_inception_v3_2015-12-05_params.npz (no classifier).
NPZ_SHA256 = 'ef979f6ae24b9ad730a072ab561c5236ac40d5931cfb4bc72a3c1b6300774079'

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the 2015-12-05 graph's classifier: 1000 ImageNet classes + 8 unused
BN_EPS = 1e-3
# The npz names every layer `net.layers.<block>[.<conv>]`; the Flax tree uses the part
# after this prefix as module names, so the two map one to one.
_PREFIX = 'net.layers.'

Variables = dict[str, Any]


class ConvBN(nn.Module):
  """Conv (no bias) -> batch norm with beta only (inference statistics) -> ReLU."""
  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)  # (rows, cols), each applied on both sides

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel
    # Zero init: the network is only ever used with the converted weights.
    kernel = self.param('kernel', nn.initializers.zeros,
                        (kh, kw, x.shape[-1], self.features), jnp.float32)
    beta = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    mean = self.variable('batch_stats', 'mean', jnp.zeros, (self.features,), jnp.float32)
    var = self.variable('batch_stats', 'var', jnp.ones, (self.features,), jnp.float32)
    ph, pw = self.padding
    # HIGHEST keeps GPUs off TF32, whose ~1e-3 relative error per conv would break the
    # 1e-4 agreement with the original network.
    y = lax.conv_general_dilated(
        x, kernel, (self.stride, self.stride), ((ph, ph), (pw, pw)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=lax.Precision.HIGHEST)
    y = (y - mean.value) * lax.rsqrt(var.value + BN_EPS) + beta
    return nn.relu(y)


def _avg_pool_3x3(x):
  # TF's SAME average pool: the padding does not count in the mean.
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x):
  return nn.max_pool(x, (3, 3), (2, 2))


class InceptionA(nn.Module):
  """35x35 block (`mixed`, `mixed_1`, `mixed_2`)."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = ConvBN(64, (1, 1), name='conv')(x)
    b5 = ConvBN(48, (1, 1), name='tower.conv')(x)
    b5 = ConvBN(64, (5, 5), padding=(2, 2), name='tower.conv_1')(b5)
    b3 = ConvBN(64, (1, 1), name='tower_1.conv')(x)
    b3 = ConvBN(96, (3, 3), padding=(1, 1), name='tower_1.conv_1')(b3)
    b3 = ConvBN(96, (3, 3), padding=(1, 1), name='tower_1.conv_2')(b3)
    bp = ConvBN(self.pool_features, (1, 1), name='tower_2.conv')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """35x35 -> 17x17 reduction (`mixed_3`)."""

  @nn.compact
  def __call__(self, x):
    b3 = ConvBN(384, (3, 3), stride=2, name='conv')(x)
    bd = ConvBN(64, (1, 1), name='tower.conv')(x)
    bd = ConvBN(96, (3, 3), padding=(1, 1), name='tower.conv_1')(bd)
    bd = ConvBN(96, (3, 3), stride=2, name='tower.conv_2')(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """17x17 block with factorised 7x7 convs (`mixed_4` .. `mixed_7`)."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    row, col = dict(kernel=(1, 7), padding=(0, 3)), dict(kernel=(7, 1), padding=(3, 0))
    b1 = ConvBN(192, (1, 1), name='conv')(x)
    b7 = ConvBN(c, (1, 1), name='tower.conv')(x)
    b7 = ConvBN(c, **row, name='tower.conv_1')(b7)
    b7 = ConvBN(192, **col, name='tower.conv_2')(b7)
    bd = ConvBN(c, (1, 1), name='tower_1.conv')(x)
    bd = ConvBN(c, **col, name='tower_1.conv_1')(bd)
    bd = ConvBN(c, **row, name='tower_1.conv_2')(bd)
    bd = ConvBN(c, **col, name='tower_1.conv_3')(bd)
    bd = ConvBN(192, **row, name='tower_1.conv_4')(bd)
    bp = ConvBN(192, (1, 1), name='tower_2.conv')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """17x17 -> 8x8 reduction (`mixed_8`)."""

  @nn.compact
  def __call__(self, x):
    b3 = ConvBN(192, (1, 1), name='tower.conv')(x)
    b3 = ConvBN(320, (3, 3), stride=2, name='tower.conv_1')(b3)
    b7 = ConvBN(192, (1, 1), name='tower_1.conv')(x)
    b7 = ConvBN(192, (1, 7), padding=(0, 3), name='tower_1.conv_1')(b7)
    b7 = ConvBN(192, (7, 1), padding=(3, 0), name='tower_1.conv_2')(b7)
    b7 = ConvBN(192, (3, 3), stride=2, name='tower_1.conv_3')(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """8x8 block with split 1x3/3x1 convs (`mixed_9`: avg branch pool, `mixed_10`: max)."""
  pool: str  # 'avg' or 'max'

  @nn.compact
  def __call__(self, x):
    row, col = dict(kernel=(1, 3), padding=(0, 1)), dict(kernel=(3, 1), padding=(1, 0))
    b1 = ConvBN(320, (1, 1), name='conv')(x)
    b3 = ConvBN(384, (1, 1), name='tower_conv')(x)
    b3 = jnp.concatenate([ConvBN(384, **row, name='tower_mixed_conv')(b3),
                          ConvBN(384, **col, name='tower_mixed_conv_1')(b3)], axis=-1)
    bd = ConvBN(448, (1, 1), name='tower_1_conv')(x)
    bd = ConvBN(384, (3, 3), padding=(1, 1), name='tower_1_conv_1')(bd)
    bd = jnp.concatenate([ConvBN(384, **row, name='tower_1_mixed_conv')(bd),
                          ConvBN(384, **col, name='tower_1_mixed_conv_1')(bd)], axis=-1)
    if self.pool == 'avg':
      pooled = _avg_pool_3x3(x)
    else:  # The FID graph's quirk: mixed_10 max-pools where torchvision averages.
      pooled = nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)))
    bp = ConvBN(192, (1, 1), name='tower_2_conv')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """float32 NHWC [N,299,299,3] in [-1,1] -> {'pool3': [N,2048]} (+ 'logits' [N,1008])."""
  num_classes: int = 0  # 0: no classifier; NUM_CLASSES with the weights' `fc`

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4 or tuple(x.shape[1:]) != (INPUT_SIZE, INPUT_SIZE, 3):
      raise JaxganError(f'FID Inception input must be [N, {INPUT_SIZE}, {INPUT_SIZE}, 3], '
                        f'got {list(x.shape)} (use inception.preprocess)')
    x = jnp.asarray(x, jnp.float32)
    x = ConvBN(32, (3, 3), stride=2, name='conv')(x)  # 149
    x = ConvBN(32, (3, 3), name='conv_1')(x)  # 147
    x = ConvBN(64, (3, 3), padding=(1, 1), name='conv_2')(x)
    x = _max_pool_3x3_s2(x)  # 73
    x = ConvBN(80, (1, 1), name='conv_3')(x)
    x = ConvBN(192, (3, 3), name='conv_4')(x)  # 71
    x = _max_pool_3x3_s2(x)  # 35
    x = InceptionA(32, name='mixed')(x)
    x = InceptionA(64, name='mixed_1')(x)
    x = InceptionA(64, name='mixed_2')(x)
    x = InceptionB(name='mixed_3')(x)  # 17
    x = InceptionC(128, name='mixed_4')(x)
    x = InceptionC(160, name='mixed_5')(x)
    x = InceptionC(160, name='mixed_6')(x)
    x = InceptionC(192, name='mixed_7')(x)
    x = InceptionD(name='mixed_8')(x)  # 8
    x = InceptionE('avg', name='mixed_9')(x)
    x = InceptionE('max', name='mixed_10')(x)
    pool3 = nn.avg_pool(x, (8, 8), (8, 8)).reshape(x.shape[0], FEATURE_DIM)
    out = {'pool3': pool3}
    if self.num_classes:
      out['logits'] = nn.Dense(self.num_classes, precision=lax.Precision.HIGHEST,
                               name='fc')(pool3)
    return out


# ----------------------------------------------------------------------------- weights


@functools.lru_cache(maxsize=None)
def _expected(num_classes: int) -> tuple:
  """(npz key, collection, Flax path, npz shape, OIHW->HWIO?) for every array, in order."""
  # Traced abstractly, so the expected layout comes from the module itself.
  shapes = jax.eval_shape(
      FIDInceptionV3(num_classes).init, jax.random.key(0),
      jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
  stats = shapes['batch_stats']
  rows = []

  def walk(tree, path):
    if 'kernel' not in tree:
      for name, sub in tree.items():
        walk(sub, path + (name,))
      return
    if path == ('fc',):
      (i, o) = tree['kernel'].shape
      rows.append(('fc.weight', 'params', path + ('kernel',), (o, i), 'dense'))
      rows.append(('fc.bias', 'params', path + ('bias',), (o,), None))
      return
    key = _PREFIX + '.'.join(path)
    kh, kw, i, o = tree['kernel'].shape
    rows.append((key + '.weight', 'params', path + ('kernel',), (o, i, kh, kw), 'conv'))
    rows.append((key + '.beta', 'params', path + ('bias',), (o,), None))
    node = stats
    for name in path:
      node = node[name]
    for leaf in ('mean', 'var'):
      rows.append((f'{key}.{leaf}', 'batch_stats', path + (leaf,), node[leaf].shape, None))

  walk(shapes['params'], ())
  return tuple(rows)


def _set(tree: dict, path: tuple, value) -> None:
  for name in path[:-1]:
    tree = tree.setdefault(name, {})
  tree[path[-1]] = value


def variables_from_npz_dict(arrays, *, source: str = 'FID Inception weights') -> Variables:
  """Flax variables (HWIO kernels, float32 jax arrays) from arrays named as in the npz.

  `arrays` maps `net.layers.<layer>.{weight (OIHW), beta, mean, var}` (and optionally
  `fc.weight` [1008, 2048] with `fc.bias` [1008]) to arrays. The first missing,
  misshaped or unexpected key raises a JaxganError that names it.
  """
  arrays = dict(arrays)
  with_fc = 'fc.weight' in arrays or 'fc.bias' in arrays
  expected = _expected(NUM_CLASSES if with_fc else 0)
  variables: dict = {'params': {}, 'batch_stats': {}}
  for key, collection, path, shape, layout in expected:
    if key not in arrays:
      raise JaxganError(f'{source}: missing array {key!r} (expected shape {list(shape)})')
    try:
      value = np.asarray(arrays[key], dtype=np.float32)
    except (TypeError, ValueError):
      raise JaxganError(f'{source}: array {key!r} is not numeric') from None
    if value.shape != tuple(shape):
      raise JaxganError(f'{source}: array {key!r} has shape {list(value.shape)}, '
                        f'expected {list(shape)}')
    if layout == 'conv':  # PyTorch OIHW -> Flax HWIO
      value = value.transpose(2, 3, 1, 0)
    elif layout == 'dense':  # PyTorch [out, in] -> Flax [in, out]
      value = value.T
    _set(variables[collection], path, np.ascontiguousarray(value))
  known = {row[0] for row in expected}
  extra = [key for key in arrays if key not in known]
  if extra:
    raise JaxganError(f'{source}: unexpected array {extra[0]!r} '
                      f'({len(extra)} unexpected in all)')
  return jax.tree.map(jnp.asarray, variables)


def load_npz(path) -> Variables:
  """Flax variables from an .npz of the network's arrays (see variables_from_npz_dict)."""
  path = Path(path)
  if not path.is_file():
    raise JaxganError(f'FID Inception weights not found: {path}')
  try:
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):  # a lone .npy loads as one array
      raise ValueError('not an .npz archive')
    with loaded:
      arrays = {key: loaded[key] for key in loaded.files}
  # Whatever numpy, zipfile or zlib raise on a damaged file, the user gets one line.
  except Exception as e:  # pylint: disable=broad-except
    reason = ' '.join(str(e).split()) or type(e).__name__
    raise JaxganError(f'cannot read FID Inception weights {path}: {reason}') from None
  return variables_from_npz_dict(arrays, source=str(path))


def has_logits(variables: Variables) -> bool:
  """Whether the variables carry the 1008-class classifier (for the Inception Score)."""
  return 'fc' in variables['params']


# ------------------------------------------------------------------------- input protocol


def _linear_taps(in_size: int, out_size: int):
  """PyTorch's bilinear taps along one axis (align_corners=False, no antialias).

  Computed in float32 like PyTorch's CPU kernel: src = scale * (dst + 0.5) - 0.5 with
  scale = in / out, clamped at 0; taps floor(src) and the next pixel (clamped at the
  edge) with weights 1 - frac and frac.
  """
  f32 = np.float32
  scale = f32(in_size) / f32(out_size)
  dst = np.arange(out_size, dtype=f32)
  src = np.maximum(scale * (dst + f32(0.5)) - f32(0.5), f32(0))
  i0 = np.minimum(np.floor(src).astype(np.int32), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  w1 = np.clip(src - i0.astype(f32), f32(0), f32(1))
  return i0, i1, f32(1) - w1, w1


def _resize_axis(x, axis: int, out_size: int):
  if x.shape[axis] == out_size:  # scale 1 puts every sample on a pixel: the identity
    return x
  i0, i1, w0, w1 = _linear_taps(x.shape[axis], out_size)
  shape = [1] * x.ndim
  shape[axis] = out_size
  return (jnp.take(x, i0, axis=axis) * w0.reshape(shape)
          + jnp.take(x, i1, axis=axis) * w1.reshape(shape))


def resize_bilinear(images, size: tuple[int, int]):
  """float [N,H,W,C] -> [N,h,w,C] as PyTorch `F.interpolate(mode='bilinear',
  align_corners=False)` (no antialias, also when shrinking)."""
  x = jnp.asarray(images, jnp.float32)
  # Columns first, then rows: PyTorch's h0 * (w0 * x00 + w1 * x01) + h1 * (...).
  x = _resize_axis(x, 2, size[1])
  return _resize_axis(x, 1, size[0])


def preprocess(images):
  """pytorch-fid's protocol: uint8 RGB (or float in [0, 1]) [N,H,W,3], any size ->
  float32 [N,299,299,3] = 2 * resize(x / 255) - 1."""
  if images.ndim != 4 or images.shape[-1] != 3:
    raise JaxganError(f'FID Inception needs RGB images [N, H, W, 3], got shape '
                      f'{list(images.shape)}')
  if images.dtype == np.uint8:
    x = jnp.asarray(images, jnp.float32) / 255
  elif jnp.issubdtype(images.dtype, jnp.floating):
    x = jnp.asarray(images, jnp.float32)
  else:
    raise JaxganError(f'FID Inception needs uint8 images or floats in [0, 1], got '
                      f'{images.dtype}')
  x = resize_bilinear(x, (INPUT_SIZE, INPUT_SIZE))
  return 2 * x - 1


def make_feature_fn(variables: Variables):
  """fn(images) -> {'pool3': [N,2048], 'logits': [N,1008] if the weights have `fc`}.

  `images` are as `preprocess` takes them (uint8 RGB, any size). The function is jitted
  (one compilation per input shape and dtype) and returns jax arrays, sharded as the
  input is; the variables are replicated once per device set the inputs live on.
  """
  model = FIDInceptionV3(NUM_CLASSES if has_logits(variables) else 0)

  @jax.jit
  def apply(v, images):
    return model.apply(v, preprocess(images))

  placed: dict = {}

  def features(images):
    sharding = getattr(images, 'sharding', None)
    key = None if sharding is None else frozenset(d.id for d in sharding.device_set)
    if key not in placed:
      # Committed variables on the inputs' devices, so jit neither rejects the mix of
      # devices nor copies 95 MB of weights on every call.
      if isinstance(sharding, jax.sharding.NamedSharding):
        target = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
      elif sharding is not None and len(sharding.device_set) == 1:
        target = jax.sharding.SingleDeviceSharding(next(iter(sharding.device_set)))
      else:
        target = None
      placed[key] = jax.device_put(variables, target) if target else variables
    return apply(placed[key], images)

  return features
