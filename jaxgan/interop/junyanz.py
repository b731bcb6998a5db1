"""pytorch-CycleGAN-and-pix2pix checkpoints (junyanz) as jaxgan networks.

The reference's `base_model.save_networks` writes `torch.save(net.state_dict())` per
network: `<epoch>_net_G_A.pth`, `_net_G_B.pth`, `_net_D_A.pth`, `_net_D_B.pth`
(CycleGAN), `_net_G.pth`, `_net_D.pth` (pix2pix, and a CycleGAN test model's single
generator). Its names against jaxgan's (the CycleGAN task's docstring): netG_A = G
(A -> B), netG_B = F, netD_A judges domain B = D_B, netD_B = D_A.

Every jaxgan parameter (and batch statistic) has one key of the reference's state dict,
found from the module that holds it (`_module_key`, per architecture: the
`nn.Sequential` indices of `ResnetGenerator`, `UnetSkipConnectionBlock`,
`NLayerDiscriminator`, `PixelDiscriminator`), and one layout change: conv weights
OIHW -> HWIO; transposed-conv weights [in, out, kh, kw] -> the spatially flipped
[kh, kw, in, out] (`jaxgan.models.layers.ConvTranspose` correlates the stride-dilated
input with it); BatchNorm weight/bias/running_mean/running_var -> scale/bias/mean/var.
The file is checked against the shapes the config gives, key by key in the file's
order: the first key that differs (or is missing, or is not expected) is a one-line
error with both shapes and what the file holds (`describe`). Ignored: batch norm's
`num_batches_tracked`, and the InstanceNorm `running_mean`/`running_var` that old
PyTorch versions saved (the reference deletes them when loading).
"""

import re
from pathlib import Path

import numpy as np

from jaxgan import torchfile
from jaxgan.errors import JaxganError
from jaxgan.interop import as_float32, flat_paths, fmt_shape, unflatten

# The reference's network file suffixes -> jaxgan's network, per task.
NETWORK_NAMES = {
    'cyclegan': {'G_A': 'G', 'G_B': 'F', 'D_A': 'D_B', 'D_B': 'D_A', 'G': 'G'},
    'pix2pix': {'G': 'G', 'D': 'D'},
}
_FILE_ROLE = re.compile(r'(?:^|_)net_(G_A|G_B|D_A|D_B|G|D)\.pth$')
_IGNORED_SUFFIXES = ('.num_batches_tracked',)
_INSTANCE_NORM_LEFTOVERS = ('.running_mean', '.running_var')


def file_role(path) -> str | None:
  """'G_A', 'G', 'D_B', ... from a reference file name (`latest_net_G_A.pth`)."""
  m = _FILE_ROLE.search(Path(path).name)
  return m.group(1) if m else None


def read_state_dict(path) -> dict[str, np.ndarray]:
  """The file's tensors; a `module.` prefix (a DataParallel save) is dropped."""
  tensors = torchfile.read_torch_file(path)
  if not tensors:
    raise JaxganError(f'{path}: holds no tensors')
  if all(k.startswith('module.') for k in tensors):
    tensors = {k[len('module.'):]: v for k, v in tensors.items()}
  return tensors


# -- what a file holds ------------------------------------------------------------


def _unet_prefix(level: int) -> str:
  """The nn.Sequential of the U-Net block at `level` (0 = outermost): the outermost
  block holds its submodule at index 1, every other block at index 3."""
  return 'model.model' + ('.1.model' if level else '') + '.3.model' * max(0, level - 1)


def _unet_depth(tensors) -> int:
  depth = 1
  while f'{_unet_prefix(depth)}.1.weight' in tensors:
    depth += 1
  return depth


def _norm_of(tensors, conv_key: str, norm_key: str) -> str:
  if conv_key.replace('.weight', '.bias') in tensors:
    return 'instance'
  return 'batch' if norm_key in tensors else 'none'


def detect(tensors) -> dict | None:
  """The architecture a state dict holds: {'kind': 'generator' | 'discriminator',
  'name': registry name, 'ngf'/'ndf', 'norm', 'in_channels', ...}; None if it is none
  of the reference's networks."""
  keys = set(tensors)
  shape = lambda k: tensors[k].shape
  if any('.conv_block.' in k for k in keys) and 'model.1.weight' in keys:
    blocks = sorted({int(k.split('.')[1]) for k in keys if '.conv_block.' in k})
    if len(shape('model.1.weight')) != 4:
      return None
    return {'kind': 'generator', 'name': f'resnet_{len(blocks)}blocks',
            'ngf': shape('model.1.weight')[0], 'in_channels': shape('model.1.weight')[1],
            'norm': _norm_of(tensors, 'model.1.weight', 'model.2.weight'),
            'use_dropout': f'model.{blocks[0]}.conv_block.6.weight' in keys}
  if 'model.model.0.weight' in keys and len(shape('model.model.0.weight')) == 4:
    depth = _unet_depth(tensors)
    inner = f'model.model.1.model.1.weight'
    norm = 'none'
    if inner in keys:
      norm = _norm_of(tensors, inner, 'model.model.1.model.2.weight')
    return {'kind': 'generator', 'name': f'unet_{2 ** depth}', 'num_downs': depth,
            'ngf': shape('model.model.0.weight')[0],
            'in_channels': shape('model.model.0.weight')[1], 'norm': norm}
  if 'model.0.weight' in keys and len(shape('model.0.weight')) == 4:
    last = max(int(k.split('.')[1]) for k in keys if k.startswith('model.'))
    n_layers = (last - 2) // 3
    norm = _norm_of(tensors, 'model.2.weight', 'model.3.weight') if n_layers else 'none'
    return {'kind': 'discriminator', 'name': 'n_layers', 'n_layers': n_layers,
            'ndf': shape('model.0.weight')[0], 'in_channels': shape('model.0.weight')[1],
            'norm': norm}
  if 'net.0.weight' in keys and 'net.5.weight' in keys:
    return {'kind': 'discriminator', 'name': 'pixel', 'ndf': shape('net.0.weight')[0],
            'in_channels': shape('net.0.weight')[1],
            'norm': _norm_of(tensors, 'net.2.weight', 'net.3.weight')}
  return None


def describe(info: dict | None) -> str:
  if info is None:
    return 'not a pytorch-CycleGAN-and-pix2pix generator or discriminator'
  width = 'ngf' if info['kind'] == 'generator' else 'ndf'
  what = info['name'] + (f' (n_layers {info["n_layers"]})' if 'n_layers' in info else '')
  return (f'the file holds a {what} {info["kind"]}, {width} {info[width]}, '
          f'{info["norm"]} norm, {info["in_channels"]} input channels')


# -- jaxgan module path -> the reference's module ---------------------------------


def _resnet_key(path: tuple, n_blocks: int, use_dropout: bool) -> str:
  name = path[0]
  if name == 'in_conv':
    return 'model.1'
  if name == 'in_norm':
    return 'model.2'
  if name == 'out_conv':
    return f'model.{17 + n_blocks}'
  m = re.fullmatch(r'(down|up)_(\d+)_(conv|norm)', name)
  if m:
    first = 4 if m.group(1) == 'down' else 10 + n_blocks
    return f'model.{first + 3 * int(m.group(2)) + (m.group(3) == "norm")}'
  m = re.fullmatch(r'block_(\d+)', name)
  if m and len(path) == 2:
    # conv_block: pad, conv, norm, relu, [dropout], pad, conv, norm
    second = 6 if use_dropout else 5
    index = {'conv_0': 1, 'norm_0': 2, 'conv_1': second, 'norm_1': second + 1}[path[1]]
    return f'model.{10 + int(m.group(1))}.conv_block.{index}'
  raise KeyError(path)


def _unet_key(path: tuple, num_downs: int) -> str:
  level = sum(1 for p in path if p == 'inner')
  layer = path[-1]
  prefix = _unet_prefix(level)
  if level == 0:
    index = {'down_conv': 0, 'up_conv': 3}[layer]
  elif level == num_downs - 1:
    index = {'down_conv': 1, 'up_conv': 3, 'up_norm': 4}[layer]
  else:
    index = {'down_conv': 1, 'down_norm': 2, 'up_conv': 5, 'up_norm': 6}[layer]
  return f'{prefix}.{index}'


def _nlayer_key(path: tuple) -> str:
  kind, n = path[0].split('_')
  n = int(n)
  if kind == 'conv':
    return 'model.0' if n == 0 else f'model.{3 * n - 1}'
  return f'model.{3 * n}'


def _pixel_key(path: tuple) -> str:
  return {'conv_0': 'net.0', 'conv_1': 'net.2', 'norm_1': 'net.3', 'conv_2': 'net.5'}[path[0]]


def module_key_fn(network: str, config):
  """jaxgan module path (tuple of names) -> the reference's module key, for the
  network `network` of `config` (a generator or discriminator registry name)."""
  m = config.model
  if network.startswith('resnet_'):
    n_blocks = int(network[len('resnet_'):-len('blocks')])
    return lambda p: _resnet_key(p, n_blocks, m.use_dropout)
  if network.startswith('unet_'):
    num_downs = int(network[len('unet_'):]).bit_length() - 1
    return lambda p: _unet_key(p, num_downs)
  if network in ('basic', 'n_layers'):
    return _nlayer_key
  if network == 'pixel':
    return _pixel_key
  raise JaxganError(f'no reference layout known for network {network!r}')


def _is_transposed(path: tuple) -> bool:
  return path[-1] == 'up_conv' or bool(re.fullmatch(r'up_\d+_conv', path[-1]))


_LEAF_NAMES = {('params', 'kernel'): 'weight', ('params', 'bias'): 'bias',
               ('params', 'scale'): 'weight', ('batch_stats', 'mean'): 'running_mean',
               ('batch_stats', 'var'): 'running_var'}


def _torch_layout(path, shape):
  """(torch shape, fn: torch array -> jaxgan array) for one leaf."""
  if path[-1] != 'kernel':
    return tuple(shape), lambda a: a
  kh, kw, cin, cout = shape
  if _is_transposed(path[:-1]):
    return (cin, cout, kh, kw), lambda a: np.ascontiguousarray(
        a.transpose(2, 3, 0, 1)[::-1, ::-1])
  return (cout, cin, kh, kw), lambda a: np.ascontiguousarray(a.transpose(2, 3, 1, 0))


def expected_keys(network: str, config, abstract: dict) -> dict:
  """torch key -> (collection, jaxgan path, torch shape, transform), in module order,
  for the network's abstract variables {'params': ..., 'batch_stats': ...}."""
  key_of = module_key_fn(network, config)
  out = {}
  for collection in ('params', 'batch_stats'):
    for path, leaf in flat_paths(abstract.get(collection) or {}).items():
      torch_key = f'{key_of(path[:-1])}.{_LEAF_NAMES[(collection, path[-1])]}'
      shape, transform = _torch_layout(path, leaf.shape)
      out[torch_key] = (collection, path, shape, transform)
  return out


def _index_key(k: str):
  return tuple(int(p) if p.isdigit() else p for p in k.split('.'))


def load_network(path, network: str, config, abstract: dict) -> dict:
  """The variables {'params', 'batch_stats'} of reference file `path` for jaxgan
  network type `network` (a registry name) of `config`, checked against the
  shapes in `abstract` (same structure, ShapeDtypeStructs)."""
  tensors = read_state_dict(path)
  info = detect(tensors)
  if info is None:
    first = ', '.join(list(tensors)[:3])
    raise JaxganError(f'{path}: {describe(None)} (keys {first}, ...)')
  expected = expected_keys(network, config, abstract)
  instance = config.model.norm == 'instance'
  hint = describe(info)
  flat = {'params': {}, 'batch_stats': {}}
  for key in sorted(tensors, key=_index_key):
    if key.endswith(_IGNORED_SUFFIXES) and key not in expected:
      continue
    if key not in expected:
      if instance and key.endswith(_INSTANCE_NORM_LEFTOVERS):
        continue  # old InstanceNorm buffers, patched away by the reference itself
      raise JaxganError(f'{path}: unexpected key {key} {fmt_shape(tensors[key].shape)} '
                        f'for the config\'s {network}; {hint}')
    collection, jpath, shape, transform = expected[key]
    if tuple(tensors[key].shape) != shape:
      raise JaxganError(f'{path}: key {key} has shape {fmt_shape(tensors[key].shape)} in '
                        f'the file, the config\'s {network} expects {fmt_shape(shape)}; '
                        f'{hint}')
    flat[collection][jpath] = transform(as_float32(f'{path}: {key}', tensors[key]))
  missing = [k for k in expected if expected[k][1] not in flat[expected[k][0]]]
  if missing:
    key = missing[0]
    raise JaxganError(f'{path}: key {key} (shape {fmt_shape(expected[key][2])}) is missing '
                      f'for the config\'s {network}; {hint}')
  return {c: unflatten(v) for c, v in flat.items()}
