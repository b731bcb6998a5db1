"""stylegan2-ada-pytorch network snapshots as jaxgan StyleGAN networks.

A snapshot (`network-snapshot-*.pkl`, written by `training/training_loop.py`) is a
pickle of dict(G, D, G_ema, augment_pipe, training_set_kwargs) whose networks are
`torch_utils.persistence` classes: each pickles as
`_reconstruct_persistent_obj(dict(type='class', version, module_src, class_name,
state))`, carrying its module's source code to be run on loading. Here that global is
a stand-in (`torchfile.PickledObject`) that keeps the class name and the state (the
module's __dict__: `_parameters`, `_buffers`, `_modules`, `_init_kwargs` and plain
attributes) and never looks at `module_src`; every other global but tensor
reconstruction, containers and numeric numpy scalars is refused (`jaxgan.torchfile`).

What is read: the init kwargs and attributes that decide the architecture (z_dim,
w_dim, resolution, channels, mapping layers and lr multiplier, channel_base/max,
architecture, mbstd, conv_clamp; `snapshot_config`), and the parameters and buffers:
G, D and G_ema, the mapping's w_avg and the synthesis buffers (every layer's
noise_const and the resampling filters, which G then uses as they are; D's filters must
be the default [1, 3, 3, 1]). Layouts
(as `jaxgan.models.stylegan` documents them): dense weights [out, in] -> kernels
[in, out]; conv weights OIHW -> HWIO; the 4x4 const [C, 4, 4] -> [4, 4, C]. Layers
run in float16 by the reference (num_fp16_res) are computed in float32 here; the
parameters are float32 in the snapshot either way.
"""

import numpy as np

from jaxgan import torchfile
from jaxgan.errors import JaxganError
from jaxgan.interop import as_float32, flat_paths, fmt_shape, unflatten

PERSISTENT = ('torch_utils.persistence', '_reconstruct_persistent_obj')
MAPPING_LR_MULTIPLIER = 0.01  # jaxgan's MappingNetwork's


class EasyDict(dict):
  """Stand-in for `dnnlib.util.EasyDict` (a dict with attribute access), which real
  snapshots hold in `training_set_kwargs` and in the networks' init kwargs
  (`mapping_kwargs`, `synthesis_kwargs`, `epilogue_kwargs`, ...): unpickled as a dict,
  no code of the file's."""


def _reconstruct(meta):
  if not isinstance(meta, dict) or meta.get('type') != 'class' or not isinstance(
      meta.get('class_name'), str) or not isinstance(meta.get('state'), dict):
    raise JaxganError('malformed persistent object in the pickle')
  # The module's source code (meta['module_src']) is dropped unread.
  return torchfile.PickledObject(meta['class_name'], meta['state'])


# The globals a snapshot may use beyond tensors, containers and numeric numpy scalars,
# each to its stand-in.
STAND_INS = {PERSISTENT: _reconstruct, ('dnnlib.util', 'EasyDict'): EasyDict}


class Module:
  """One reference module as data: class name, init kwargs, attributes, parameters
  and buffers, child modules."""

  def __init__(self, obj, where: str):
    if not isinstance(obj, torchfile.PickledObject):
      raise JaxganError(f'{where} is not a network (found {type(obj).__name__})')
    self.kind, self.where, state = obj.kind, where, obj.state
    self.kwargs = state.get('_init_kwargs') or {}
    self.attrs = state
    self.tensors = {**(state.get('_parameters') or {}), **(state.get('_buffers') or {})}
    self.children = {name: Module(child, f'{where}.{name}')
                     for name, child in (state.get('_modules') or {}).items()
                     if child is not None}

  def child(self, name: str) -> 'Module':
    if name not in self.children:
      raise JaxganError(f'{self.where}: no submodule {name!r} (has '
                        f'{", ".join(self.children) or "none"})')
    return self.children[name]

  def get(self, name, default=None):
    return self.attrs.get(name, default)

  def flat(self, prefix='') -> dict[str, np.ndarray]:
    """Every tensor below, by dotted name (the state dict's keys)."""
    out = {f'{prefix}{k}': v for k, v in self.tensors.items() if v is not None}
    for name, child in self.children.items():
      out.update(child.flat(f'{prefix}{name}.'))
    return out


class Snapshot:
  """The networks of a snapshot: G, D, G_ema (`Module`s) and the training kwargs."""

  def __init__(self, path):
    self.path = path
    obj = torchfile.read_pickle(path, STAND_INS)
    if not isinstance(obj, dict) or not {'G', 'D', 'G_ema'} <= set(obj):
      keys = ', '.join(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
      raise JaxganError(f'{path}: not a stylegan2-ada-pytorch network snapshot (a dict '
                        f'with G, D and G_ema; found {keys})')
    self.G = Module(obj['G'], 'G')
    self.D = Module(obj['D'], 'D')
    self.G_ema = Module(obj['G_ema'], 'G_ema')
    self.training_set_kwargs = obj.get('training_set_kwargs') or {}
    for net, kind in ((self.G, 'Generator'), (self.G_ema, 'Generator'),
                      (self.D, 'Discriminator')):
      if net.kind != kind:
        raise JaxganError(f'{path}: {net.where} is a {net.kind}; expected the '
                          f'reference\'s {kind}')

  def error(self, message: str) -> JaxganError:
    return JaxganError(f'{self.path}: {message}')


def _int(snap, net: Module, name: str) -> int:
  value = net.get(name)
  if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
    raise snap.error(f'{net.where}.{name} is {value!r}; expected an integer')
  return int(value)


def _clamp_of(snap, nets) -> float:
  """The one conv_clamp of the networks' layers (0 = off)."""
  found = set()

  def visit(m: Module):
    if 'conv_clamp' in m.attrs:
      found.add(m.attrs['conv_clamp'])
    for c in m.children.values():
      visit(c)
  for net in nets:
    visit(net)
  values = {None if v is None else float(v) for v in found}
  if len(values) > 1:
    raise snap.error(f'layers with different conv_clamp values {sorted(map(str, values))}: '
                     'jaxgan has one for the whole network')
  value = values.pop() if values else None
  return 0.0 if value is None else value


def snapshot_config(snap: Snapshot) -> dict:
  """The jaxgan config values ('model.z_dim': 64, 'data.image_size': 32, ...) the
  snapshot's networks need; refuses what jaxgan's StyleGAN does not have."""
  g, d = snap.G_ema, snap.D
  if _int(snap, g, 'c_dim') or _int(snap, d, 'c_dim'):
    raise snap.error('conditional networks (c_dim > 0) are not supported')
  res, channels = _int(snap, g, 'img_resolution'), _int(snap, g, 'img_channels')
  if (_int(snap, d, 'img_resolution'), _int(snap, d, 'img_channels')) != (res, channels):
    raise snap.error('G and D are for different image sizes')
  mapping, synthesis = g.child('mapping'), g.child('synthesis')
  skw = synthesis.kwargs
  dkw = d.kwargs
  for what, value, jax_value in (('channel_base', skw.get('channel_base', 32768),
                                  dkw.get('channel_base', 32768)),
                                 ('channel_max', skw.get('channel_max', 512),
                                  dkw.get('channel_max', 512))):
    if value != jax_value:
      raise snap.error(f'G and D have different {what} ({value} vs {jax_value}): '
                       'jaxgan uses one for both')
  for name, block in synthesis.children.items():
    if block.get('architecture', 'skip') != 'skip':
      raise snap.error(f'G_ema.synthesis.{name} has architecture '
                       f'{block.get("architecture")!r}; jaxgan\'s G is the reference\'s '
                       '\'skip\' synthesis')
  d_blocks = [b for n, b in d.children.items() if n != 'b4']
  architectures = {b.get('architecture') for b in d_blocks} or {'resnet'}
  if len(architectures) != 1 or not architectures <= {'resnet', 'orig'}:
    raise snap.error(f'D architecture {sorted(map(str, architectures))}: jaxgan has '
                     'resnet and orig')
  epilogue = d.child('b4')
  mbstd = epilogue.children.get('mbstd')
  if mbstd is None or mbstd.get('num_channels', 1) != 1:
    raise snap.error('D\'s minibatch-stddev layer must have 1 channel (jaxgan\'s)')
  group = mbstd.get('group_size')
  if group is None:
    raise snap.error('D\'s minibatch-stddev group_size None (the whole batch) is not '
                     'supported')
  w_avg_beta = mapping.get('w_avg_beta', 0.995)
  return {
      'data.image_size': res, 'data.load_size': res, 'data.channels': channels,
      'model.synthesis': 'modulated',
      'model.z_dim': _int(snap, g, 'z_dim'), 'model.w_dim': _int(snap, g, 'w_dim'),
      'model.map_layers': _int(snap, mapping, 'num_layers'),
      'model.channel_base': int(skw.get('channel_base', 32768)),
      'model.channel_max': int(skw.get('channel_max', 512)),
      'model.architecture': architectures.pop(),
      'model.mbstd_group_size': int(group),
      'model.w_avg_beta': float(0.995 if w_avg_beta is None else w_avg_beta),
      'model.conv_clamp': _clamp_of(snap, (snap.G_ema, snap.D)),
      'model.buffers': 'stored',
  }


# -- parameters -----------------------------------------------------------------


def _lr_multiplier(net: Module, dotted: str) -> float:
  """A FullyConnectedLayer's lr_multiplier (its bias_gain attribute)."""
  node = net
  for name in dotted.split('.'):
    node = node.child(name)
  return float(node.get('bias_gain', 1.0))


def _leaf(net: Module, snap, path: tuple, shape) -> tuple[str, tuple, object]:
  """(torch key, torch shape, torch array -> jaxgan array) of jaxgan leaf `path`."""
  name = path[-1]
  module = '.'.join(path[:-1])
  key = f'{module}.{"weight" if name == "kernel" else name}'
  if name == 'const':
    r1, r2, c = shape
    return key, (c, r1, r2), lambda a: a.transpose(1, 2, 0)
  dense = (path[0] == 'mapping' or path[-2] == 'affine'
           or tuple(path[:2]) in (('b4', 'fc'), ('b4', 'out')))
  if dense:
    # FullyConnectedLayer: kernel = weight.T, both rescaled to jaxgan's lr multiplier
    # (the mapping's 0.01, 1 elsewhere): used weight = stored * lr_mul / sqrt(in).
    ours = MAPPING_LR_MULTIPLIER if path[0] == 'mapping' else 1.0
    scale = np.float32(_lr_multiplier(net, module) / ours)
    if name == 'kernel':
      n_in, n_out = shape
      return key, (n_out, n_in), lambda a: a.T * scale if scale != 1 else a.T
    return key, tuple(shape), lambda a: a * scale if scale != 1 else a
  if name == 'kernel':
    kh, kw, cin, cout = shape
    return key, (cout, cin, kh, kw), lambda a: a.transpose(2, 3, 1, 0)
  return key, tuple(shape), lambda a: a


def network_params(snap: Snapshot, net: Module, abstract: dict) -> dict:
  """jaxgan params of `net` for the abstract params tree `abstract`, each leaf from
  its state-dict key, shapes checked (one line naming the key and both shapes)."""
  tensors = net.flat()
  out = {}
  for path, leaf in flat_paths(abstract).items():
    key, shape, transform = _leaf(net, snap, path, leaf.shape)
    if key not in tensors:
      raise snap.error(f'{net.where}: key {key} (shape {fmt_shape(shape)}) is missing')
    value = as_float32(f'{snap.path}: {net.where}.{key}', tensors[key])
    if value.shape != shape:
      raise snap.error(f'{net.where}: key {key} has shape {fmt_shape(value.shape)} in '
                       f'the file, the config expects {fmt_shape(shape)}')
    out[path] = np.array(transform(value), np.float32, order="C")
  return unflatten(out)


def _check_filters(snap, net: Module) -> None:
  """Every resampling filter is the reference's default [1, 3, 3, 1], the one
  jaxgan's D uses (G's are imported as buffers)."""
  from jaxgan.models.stylegan import setup_filter
  f = setup_filter()
  for key, value in net.flat().items():
    if key.endswith('resample_filter') and not (
        value.shape == f.shape and np.allclose(value, f, rtol=0, atol=1e-7)):
      raise snap.error(f'{net.where}: {key} is not the [1, 3, 3, 1] filter jaxgan uses')


def synthesis_buffers(snap: Snapshot, net: Module, abstract: dict) -> dict:
  """The synthesis network's buffers laid out as `models.stylegan.default_buffers`
  (each layer's noise_const, the upsampling filters), from the same keys under
  `synthesis.`; a layer without noise (use_noise False) gets zeros (its strength is
  0 too)."""
  tensors = net.child('synthesis').flat()
  out = {}
  for path, leaf in flat_paths(abstract).items():
    key = '.'.join(path)
    value = tensors.get(key)
    if value is None and path[-1] == 'noise_const':
      layer = net.child('synthesis').child(path[0]).child(path[1])
      if not layer.get('use_noise', True):
        value = np.zeros(leaf.shape, np.float32)
    if value is None:
      raise snap.error(f'{net.where}: key synthesis.{key} (shape {fmt_shape(leaf.shape)}) '
                       'is missing')
    value = as_float32(f'{snap.path}: {net.where}.synthesis.{key}', value)
    if value.shape != tuple(leaf.shape):
      raise snap.error(f'{net.where}: key synthesis.{key} has shape '
                       f'{fmt_shape(value.shape)} in the file, the config expects '
                       f'{fmt_shape(leaf.shape)}')
    out[path] = value
  return unflatten(out)


def generator_params(snap: Snapshot, net: Module, abstract: dict) -> dict:
  """G's params; a layer without noise (use_noise False) gets noise strength 0."""
  synthesis = net.child('synthesis')
  for block in synthesis.children.values():
    for layer in block.children.values():
      if layer.kind == 'SynthesisLayer' and not layer.get('use_noise', True):
        layer.tensors.setdefault('noise_strength', np.zeros((), np.float32))
  return network_params(snap, net, abstract)


def w_avg(snap: Snapshot, net: Module, w_dim: int) -> np.ndarray:
  value = net.child('mapping').tensors.get('w_avg')
  if value is None:
    raise snap.error(f'{net.where}.mapping has no w_avg buffer')
  value = as_float32(f'{snap.path}: {net.where}.mapping.w_avg', value)
  if value.shape != (w_dim,):
    raise snap.error(f'{net.where}: key mapping.w_avg has shape {fmt_shape(value.shape)}, '
                     f'the config expects [{w_dim}]')
  return value


def load(snap: Snapshot, abstract_params: dict, abstract_buffers: dict,
         w_dim: int) -> dict:
  """{'G': params, 'D': params, 'G_ema': params, 'w_avg': [w_dim], 'buffers':
  G_ema's synthesis buffers} of the snapshot `snap`, for jaxgan's abstract G and D
  params and synthesis buffers (`models.stylegan.default_buffers`' shapes)."""
  return {'G': generator_params(snap, snap.G, abstract_params['G']),
          'G_ema': generator_params(snap, snap.G_ema, abstract_params['G']),
          'D': _checked_d(snap, abstract_params['D']),
          'w_avg': w_avg(snap, snap.G_ema, w_dim),
          'buffers': synthesis_buffers(snap, snap.G_ema, abstract_buffers)}


def _checked_d(snap: Snapshot, abstract: dict) -> dict:
  params = network_params(snap, snap.D, abstract)
  _check_filters(snap, snap.D)
  return params

