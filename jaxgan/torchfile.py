"""Tensors from PyTorch checkpoint files, without torch.

Owns reading any PyTorch file into numpy arrays: `torch.save` checkpoints in the zip
format (torch >= 1.6) and the legacy format (the pickle stream before 1.6), and
TorchScript archives (`torch.jit.save`). It knows nothing about a particular network:
the FID Inception weights (`jaxgan.metrics.weights`) are one user, other networks'
checkpoints are read the same way.

  read_torch_file(path) -> {'dotted.name': ndarray}   nested state dicts flattened
  read_pickle(path, classes) -> object               a plain pickle of objects holding
                                                     tensors (e.g. a stylegan2-ada
                                                     snapshot), tensors as ndarrays
  sniff(head) -> 'zip' | 'legacy' | None             the container, guessed from the
                                                     file's first bytes

Pickles are read with a restricted unpickler: only tensor/storage reconstruction,
containers and (in TorchScript archives) `__torch__` objects are allowed (plus, for `read_pickle`, the stand-ins its caller names);
any other pickled global is refused and nothing in the file is executed. Failures are
`JaxganError`s whose message starts with the file's path.
"""

import collections
import io
import math
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from jaxgan.errors import JaxganError

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


def _load_from_bytes(data):
  """`torch.storage._load_from_bytes`: a storage pickled inside a plain pickle (how
  `pickle.dump` stores a tensor's storage) is a whole legacy `torch.save` of it."""
  if not isinstance(data, bytes):
    raise JaxganError('malformed pickle: bad storage bytes')
  storage = _read_legacy(io.BytesIO(data))
  if not isinstance(storage, _Storage):
    raise JaxganError('malformed pickle: pickled storage bytes hold no storage')
  return storage


_NUMPY_KINDS = 'biufc?'  # numeric and bool dtypes only: no object arrays


def _numpy_dtype(name, *_):
  try:
    dtype = np.dtype(name)
  except TypeError:
    raise JaxganError(f'malformed pickle: bad numpy dtype {name!r}') from None
  if dtype.kind not in _NUMPY_KINDS:
    raise JaxganError(f'refusing numpy dtype {name!r}')
  return dtype


def _numpy_scalar(dtype, data=None):
  if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMPY_KINDS or not isinstance(
      data, bytes) or len(data) != dtype.itemsize:
    raise JaxganError('malformed pickle: bad numpy scalar')
  return np.frombuffer(data, dtype)[0]


_TENSOR_TYPE = object()

_ALLOWED = {  # the only globals a checkpoint pickle may use (module, name) -> safe stand-in
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

# What a plain pickle of tensors (`pickle.dump`, not `torch.save`) adds: storages as
# embedded `torch.save` bytes, and numpy scalars (numeric only).
_PLAIN_PICKLE = {
    ('torch.storage', '_load_from_bytes'): _load_from_bytes,
    ('numpy', 'dtype'): _numpy_dtype,
    ('numpy.core.multiarray', 'scalar'): _numpy_scalar,
    ('numpy._core.multiarray', 'scalar'): _numpy_scalar,
}


class _SafeUnpickler(pickle.Unpickler):
  """Unpickles only tensors, storages, containers and (for TorchScript) `__torch__`
  objects; storages come from `load_storage(type, key, numel, view_metadata)`."""

  def __init__(self, file, load_storage=None, *, torchscript=False, extra=None):
    super().__init__(file)
    self._load_storage = load_storage
    self._torchscript = torchscript
    self._extra = extra or {}
    self._classes = {}

  def find_class(self, module, name):
    found = _ALLOWED.get((module, name)) or self._extra.get((module, name))
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


def _unpickle(data_or_file, load_storage=None, *, torchscript=False, extra=None):
  f = io.BytesIO(data_or_file) if isinstance(data_or_file, bytes) else data_or_file
  try:
    return _SafeUnpickler(f, load_storage, torchscript=torchscript, extra=extra).load()
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


def _materialize(obj, depth=0):
  """`obj` with every tensor replaced by its ndarray, through dicts, lists, tuples
  and the `state` of `PickledObject`s (in place for those)."""
  if depth > 200:
    raise JaxganError('the pickle nests too deeply')
  if isinstance(obj, _Tensor):
    return obj.materialize()
  if isinstance(obj, PickledObject):
    obj.state = _materialize(obj.state, depth + 1)
    return obj
  if isinstance(obj, dict):
    return type(obj)((k, _materialize(v, depth + 1)) for k, v in obj.items()) if isinstance(
        obj, collections.OrderedDict) else {k: _materialize(v, depth + 1)
                                            for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialize(v, depth + 1) for v in obj)
  return obj


class PickledObject:
  """A foreign object in a pickle, kept as data: what the caller's stand-in made of
  it (`kind`, e.g. a class name) and its pickled `state`."""

  def __init__(self, kind: str, state):
    self.kind, self.state = kind, state

  def __repr__(self):
    return f'PickledObject({self.kind!r})'


def read_pickle(path, classes: dict) -> object:
  """The object of a plain pickle file (`pickle.dump` of objects holding torch
  tensors, e.g. a stylegan2-ada-pytorch snapshot), tensors as ndarrays. Only
  tensor and storage reconstruction, containers, numeric numpy scalars and the
  globals in `classes` ((module, name) -> a stand-in callable, typically returning a
  `PickledObject`) are allowed; any other global is refused (one-line JaxganError)
  before anything is called, and nothing in the file is executed."""
  path = Path(path)
  extra = {**_PLAIN_PICKLE, **classes}
  try:
    with open(path, 'rb') as f:
      if f.read(1) != b'\x80':
        raise JaxganError('not a pickle (no protocol header)')
      f.seek(0)
      obj = _unpickle(f, extra=extra)
    return _materialize(obj)
  except JaxganError as e:
    raise JaxganError(f'{path}: {e}') from None
  except (OSError, ValueError, EOFError) as e:
    reason = ' '.join(str(e).split())
    raise JaxganError(f'{path}: cannot read it as a pickle '
                      f'({type(e).__name__}: {reason})') from None


def sniff(head: bytes) -> str | None:
  """'zip' or 'legacy': the container a PyTorch file starting with `head` (its first
  bytes) would be; None for neither. Only a cheap guess from the magic bytes: any zip
  (an .npz too) is 'zip', any pickle stream is 'legacy'."""
  if head.startswith(b'PK'):
    return 'zip'
  if head[:1] == b'\x80':  # the PROTO opcode every pickle of protocol >= 2 starts with
    return 'legacy'
  return None


def read_torch_file(path) -> dict[str, np.ndarray]:
  """The tensors of a PyTorch file (torch.save zip or legacy format, or a TorchScript
  archive), flattened to '.'-joined names (TorchScript: submodule/parameter/buffer
  paths, e.g. `net.layers.conv.weight`). Never imports torch nor runs pickled code."""
  path = Path(path)
  try:
    with open(path, 'rb') as f:
      kind = sniff(f.read(4))
      f.seek(0)
      if kind == 'zip':
        with zipfile.ZipFile(f) as zf:
          obj = _read_zip(zf)
      elif kind == 'legacy':
        obj = _read_legacy(f)
      else:
        raise JaxganError('not a PyTorch checkpoint (neither a zip archive nor a pickle)')
    out = {}
    _flatten(obj, '', out)
  except JaxganError as e:
    raise JaxganError(f'{path}: {e}') from None
  except (OSError, zipfile.BadZipFile, ValueError, EOFError) as e:
    reason = ' '.join(str(e).split())  # one line: OS messages may hold newlines
    raise JaxganError(f'{path}: cannot read it as a PyTorch file '
                      f'({type(e).__name__}: {reason})') from None
  return out

