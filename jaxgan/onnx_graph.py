"""A jaxpr as an ONNX graph: what `jaxgan.export --format onnx` writes.

Owns the translation of the jaxpr of a jaxgan forward pass, traced with symbolic
dimensions (`jax.export.symbolic_shape`), into an ONNX model (opset 18) whose batch,
height and width stay dynamic. It covers the primitives jaxgan's generators trace to
(XLA's convolution forms: the export traces with no CPU placement and no transposed-
conv phase split, `cpu_conv.placement(None, phase_split=False)`), not jax at large:
anything else is a one-line `JaxganError` naming the primitive.

How it works:
  * every equation whose inputs are all known (the restored weights are the jaxpr's
    constants) and whose outputs have concrete shapes is evaluated with jax at export
    time and becomes a constant: weight scaling, StyleGAN's const noise, the fixed
    style and dropout keys never reach the graph;
  * the rest is emitted as ONNX nodes, NHWC as jaxgan computes (a transpose around
    each convolution); shape arithmetic on the symbolic dimensions (`b`, `h`, ...)
    is emitted as int64 nodes read from the inputs' shapes;
  * call-like primitives (jit, custom_jvp/vjp) are inlined;
  * `random_bits` on a symbolic shape (pix2pix's test-time dropout mask, whose shape
    follows the image) is emitted as jax computes it: threefry2x32 of the flat
    element index in uint32 arithmetic, so the mask is bit for bit jax's;
  * a grouped convolution whose group count is symbolic (StyleGAN's fused modulated
    convolution: one group per sample) becomes patches (a depthwise conv with a
    one-hot kernel) times the per-sample weights (a batched MatMul);
  * `bitcast_convert_type` uint32 -> float32 (jax's uniform draws) is computed from
    the bits' sign, exponent and mantissa (ONNX has no bitcast): exact for finite
    values.
"""

from __future__ import annotations

import string

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore

from jaxgan.errors import JaxganError

OPSET = 18

try:  # the optional `export` extra
  import onnx
  from onnx import helper, numpy_helper
except ImportError:  # pragma: no cover - reported by `require_onnx`
  onnx = None


def require_onnx(runtime: bool = False):
  """A one-line error unless `onnx` (and with `runtime`, onnxruntime, which the export's
  check runs the file with) can be imported."""
  missing = onnx is None
  if runtime and not missing:
    try:
      import onnxruntime  # noqa: F401
    except ImportError:
      missing = True
  if missing:
    raise JaxganError("ONNX export needs the 'onnx' and 'onnxruntime' packages: "
                      "pip install -e '.[export]'")


_ONNX_DTYPES = {
    np.dtype('float32'): 1, np.dtype('uint8'): 2, np.dtype('int8'): 3,
    np.dtype('int32'): 6, np.dtype('int64'): 7, np.dtype('bool'): 9,
    np.dtype('float16'): 10, np.dtype('float64'): 11, np.dtype('uint32'): 12,
    np.dtype('uint64'): 13,
}


def _onnx_dtype(dtype) -> int:
  try:
    return _ONNX_DTYPES[np.dtype(dtype)]
  except (KeyError, TypeError):
    raise JaxganError(f'ONNX export: dtype {dtype} is not supported') from None


class Tensor:
  """A value computed in the graph: its ONNX name and jax aval."""

  def __init__(self, name: str, aval):
    self.name, self.aval = name, aval


class Dim:
  """A symbolic dimension's value in the graph: an int64 tensor of shape [1], with
  the arithmetic `DimExpr._evaluate` uses (+, *, divmod) emitting nodes."""

  def __init__(self, graph: 'Graph', name: str):
    self.g, self.name = graph, name

  def _other(self, other) -> str:
    return other.name if isinstance(other, Dim) else self.g.int64([int(other)])

  def _op(self, op, a, b):
    return Dim(self.g, self.g.node(op, [a, b]))

  def __add__(self, other):
    return self._op('Add', self.name, self._other(other))

  __radd__ = __add__

  def __mul__(self, other):
    return self._op('Mul', self.name, self._other(other))

  __rmul__ = __mul__

  def __sub__(self, other):
    return self._op('Sub', self.name, self._other(other))

  def __rsub__(self, other):
    return self._op('Sub', self._other(other), self.name)

  def __divmod__(self, other):  # dimensions are >= 0: truncation is floor
    o = self._other(other)
    return self._op('Div', self.name, o), self._op('Mod', self.name, o)

  def __rdivmod__(self, other):
    o = self._other(other)
    return self._op('Div', o, self.name), self._op('Mod', o, self.name)


def _is_const_shape(shape) -> bool:
  return all(isinstance(d, (int, np.integer)) for d in shape)


def _sub_jaxpr(params):
  for key in ('jaxpr', 'call_jaxpr', 'fun_jaxpr'):
    j = params.get(key)
    if isinstance(j, jcore.ClosedJaxpr):
      return j.jaxpr, j.consts
    if isinstance(j, jcore.Jaxpr):
      return j, ()
  return None


_BINARY = {'add': 'Add', 'sub': 'Sub', 'mul': 'Mul', 'div': 'Div', 'max': 'Max',
           'min': 'Min', 'pow': 'Pow', 'eq': 'Equal', 'lt': 'Less',
           'le': 'LessOrEqual', 'gt': 'Greater', 'ge': 'GreaterOrEqual'}
_UNARY = {'neg': 'Neg', 'tanh': 'Tanh', 'exp': 'Exp', 'log': 'Log', 'sqrt': 'Sqrt',
          'abs': 'Abs', 'sign': 'Sign', 'logistic': 'Sigmoid', 'floor': 'Floor',
          'ceil': 'Ceil', 'erf': 'Erf', 'sin': 'Sin', 'cos': 'Cos',
          'copy': 'Identity', 'optimization_barrier': 'Identity'}
_BITWISE = {'and': ('And', 'BitwiseAnd'), 'or': ('Or', 'BitwiseOr'),
            'xor': ('Xor', 'BitwiseXor')}


class Graph:
  """Builds one ONNX graph from a jaxpr (see the module doc)."""

  def __init__(self):
    require_onnx()
    self.nodes, self.initializers = [], []
    self._count = 0
    self._const_cache = {}
    self.dim_env = {}  # dimension variable -> Dim
    self._dim_cache = {}

  # -- names, constants, nodes --------------------------------------------------------

  def fresh(self, prefix='t') -> str:
    self._count += 1
    return f'{prefix}_{self._count}'

  def node(self, op: str, inputs, n_out: int = 1, **attrs):
    outs = [self.fresh(op.lower()) for _ in range(n_out)]
    self.nodes.append(helper.make_node(op, list(inputs), outs, **attrs))
    return outs[0] if n_out == 1 else outs

  def const(self, value, dtype=None) -> str:
    arr = np.asarray(value, dtype=dtype)
    if arr.dtype == np.float64:
      arr = arr.astype(np.float32)
    _onnx_dtype(arr.dtype)
    key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 16 else None
    if key is not None and key in self._const_cache:
      return self._const_cache[key]
    name = self.fresh('c')
    self.initializers.append(numpy_helper.from_array(np.array(arr, order='C'), name))
    if key is not None:
      self._const_cache[key] = name
    return name

  def int64(self, values) -> str:
    return self.const(np.asarray(values, np.int64))

  # -- shapes ---------------------------------------------------------------------------

  def dim(self, d) -> str:
    """A dimension (int or symbolic) as an int64 [1] tensor."""
    if isinstance(d, (int, np.integer)):
      return self.int64([int(d)])
    key = str(d)
    if key not in self._dim_cache:
      value = d._evaluate(self.dim_env)
      self._dim_cache[key] = (value.name if isinstance(value, Dim)
                              else self.int64([int(value)]))
    return self._dim_cache[key]

  def shape(self, shape) -> str:
    """A shape (ints and symbolic dimensions) as an int64 [rank] tensor."""
    if _is_const_shape(shape):
      return self.int64([int(d) for d in shape])
    return self.node('Concat', [self.dim(d) for d in shape], axis=0)

  def bind_dim(self, var: str, tensor_name: str, axis: int, divisor: int = 1) -> None:
    """Dimension variable `var` = input `tensor_name`'s size on `axis` / divisor."""
    size = self.node('Slice', [self.node('Shape', [tensor_name]), self.int64([axis]),
                               self.int64([axis + 1])])
    if divisor != 1:
      size = self.node('Div', [size, self.int64([divisor])])
    self.dim_env[var] = Dim(self, size)

  # -- values -----------------------------------------------------------------------

  def name(self, v, aval=None) -> str:
    """The ONNX name of a value (a constant becomes an initializer)."""
    if isinstance(v, Tensor):
      return v.name
    if isinstance(v, jax.Array) and jnp.issubdtype(v.dtype, jax.dtypes.prng_key):
      raise JaxganError('ONNX export: a random key reaches the graph (only keys '
                        'known at export time are supported)')
    dtype = None if aval is None else aval.dtype
    return self.const(np.asarray(v), dtype)

  # -- the jaxpr ----------------------------------------------------------------------

  def run(self, jaxpr, consts, args):
    env = {}

    def read(v):
      if isinstance(v, jcore.Literal):
        return np.asarray(v.val, v.aval.dtype)
      return env[v]

    for var, val in zip(jaxpr.constvars, consts):
      env[var] = val
    for var, val in zip(jaxpr.invars, args):
      env[var] = val
    for eqn in jaxpr.eqns:
      ins = [read(v) for v in eqn.invars]
      outs = self.eqn(eqn, ins)
      for var, val in zip(eqn.outvars, outs):
        env[var] = val
    return [read(v) for v in jaxpr.outvars]

  def eqn(self, eqn, ins):
    prim = eqn.primitive
    known = not any(isinstance(x, Tensor) for x in ins)
    concrete = all(_is_const_shape(v.aval.shape) for v in eqn.outvars
                   if hasattr(v.aval, 'shape'))
    if prim.name == 'dim_as_value' and not _is_const_shape([eqn.params['dim']]):
      concrete = False
    if known and concrete:
      out = prim.bind(*ins, **eqn.params)
      return list(out) if prim.multiple_results else [out]
    sub = _sub_jaxpr(eqn.params)
    if sub is not None:
      jaxpr, consts = sub
      n = len(jaxpr.invars)
      return self.run(jaxpr, consts, ins[len(ins) - n:])
    handler = getattr(self, f'_p_{prim.name}', None)
    avals_in = [getattr(v, 'aval', None) for v in eqn.invars]
    avals_out = [v.aval for v in eqn.outvars]
    if prim.name in _BINARY:
      handler = lambda ins, ai, ao, **_: self._binary(_BINARY[prim.name], ins, ai, ao)
    elif prim.name in _UNARY:
      handler = lambda ins, ai, ao, **_: [Tensor(self.node(_UNARY[prim.name],
                                                           [self.name(ins[0])]), ao[0])]
    elif prim.name in _BITWISE:
      logical, bitwise = _BITWISE[prim.name]
      op = logical if avals_out[0].dtype == np.bool_ else bitwise
      handler = lambda ins, ai, ao, **_: self._binary(op, ins, ai, ao)
    if handler is None:
      raise JaxganError(f"ONNX export: jax primitive '{prim.name}' is not supported "
                        '(the exported function uses an operation this exporter does '
                        'not translate)')
    return handler(ins, avals_in, avals_out, **eqn.params)

  def _binary(self, op, ins, ai, ao, **attrs):
    a = self.name(ins[0], ai[0])
    b = self.name(ins[1], ai[1])
    return [Tensor(self.node(op, [a, b], **attrs), ao[0])]

  # -- elementwise --------------------------------------------------------------------

  def _p_ne(self, ins, ai, ao, **_):
    eq = self._binary('Equal', ins, ai, ao)[0].name
    return [Tensor(self.node('Not', [eq]), ao[0])]

  def _p_rsqrt(self, ins, ai, ao, **_):
    return [Tensor(self.node('Reciprocal', [self.node('Sqrt', [self.name(ins[0])])]),
                   ao[0])]

  def _p_square(self, ins, ai, ao, **_):
    x = self.name(ins[0])
    return [Tensor(self.node('Mul', [x, x]), ao[0])]

  def _p_integer_pow(self, ins, ai, ao, *, y):
    x = self.name(ins[0])
    if y == 0:
      return [Tensor(self.node('Expand', [self.const(np.ones((), ai[0].dtype)),
                                          self.shape(ao[0].shape)]), ao[0])]
    out = x
    for _ in range(abs(y) - 1):
      out = self.node('Mul', [out, x])
    if y < 0:
      out = self.node('Reciprocal', [out])
    return [Tensor(out, ao[0])]

  def _p_not(self, ins, ai, ao, **_):
    op = 'Not' if ao[0].dtype == np.bool_ else 'BitwiseNot'
    return [Tensor(self.node(op, [self.name(ins[0])]), ao[0])]

  def _p_rem(self, ins, ai, ao, **_):  # C-style remainder: the sign of the dividend
    return self._binary('Mod', ins, ai, ao, fmod=1)

  def _p_shift_left(self, ins, ai, ao, **_):
    return self._binary('BitShift', ins, ai, ao, direction='LEFT')

  def _p_shift_right_logical(self, ins, ai, ao, **_):
    if np.dtype(ao[0].dtype).kind != 'u':
      raise JaxganError('ONNX export: shift_right_logical on signed integers is not '
                        'supported')
    return self._binary('BitShift', ins, ai, ao, direction='RIGHT')

  def _p_convert_element_type(self, ins, ai, ao, *, new_dtype, **_):
    return [Tensor(self.node('Cast', [self.name(ins[0], ai[0])],
                             to=_onnx_dtype(new_dtype)), ao[0])]

  def _p_select_n(self, ins, ai, ao, **_):
    pred, *cases = ins
    p = self.name(pred, ai[0])
    names = [self.name(c, a) for c, a in zip(cases, ai[1:])]
    if len(names) == 2 and ai[0].dtype == np.bool_:
      return [Tensor(self.node('Where', [p, names[1], names[0]]), ao[0])]
    out = names[0]  # an integer predicate: case i where pred == i
    for i, c in enumerate(names[1:], 1):
      is_i = self.node('Equal', [p, self.const(np.asarray(i, ai[0].dtype))])
      out = self.node('Where', [is_i, c, out])
    return [Tensor(out, ao[0])]

  def _p_clamp(self, ins, ai, ao, **_):
    lo, x, hi = (self.name(v, a) for v, a in zip(ins, ai))
    return [Tensor(self.node('Min', [self.node('Max', [x, lo]), hi]), ao[0])]

  def _p_bitcast_convert_type(self, ins, ai, ao, *, new_dtype, **_):
    if not (np.dtype(ai[0].dtype) == np.uint32 and np.dtype(new_dtype) == np.float32):
      raise JaxganError(f'ONNX export: bitcast {ai[0].dtype} -> {new_dtype} is not '
                        'supported (only uint32 -> float32)')
    bits = self.name(ins[0], ai[0])
    u32 = lambda v: self.const(np.asarray(v, np.uint32))
    shift = lambda x, k: self.node('BitShift', [x, u32(k)], direction='RIGHT')
    f32 = lambda x: self.node('Cast', [x], to=1)
    sign = f32(shift(bits, 31))
    expo = self.node('BitwiseAnd', [shift(bits, 23), u32(0xFF)])
    mant = f32(self.node('BitwiseAnd', [bits, u32(0x7FFFFF)]))
    frac = self.node('Mul', [mant, self.const(np.float32(2.0 ** -23))])
    is_sub = self.node('Equal', [expo, u32(0)])
    # normal: 2^(e - 127) (1 + frac); subnormal: 2^-126 frac
    e = self.node('Where', [is_sub, self.const(np.float32(-126)),
                            self.node('Sub', [f32(expo), self.const(np.float32(127))])])
    m = self.node('Where', [is_sub, frac, self.node('Add', [frac,
                                                            self.const(np.float32(1))])])
    mag = self.node('Mul', [self.node('Pow', [self.const(np.float32(2)), e]), m])
    sgn = self.node('Sub', [self.const(np.float32(1)),
                            self.node('Mul', [sign, self.const(np.float32(2))])])
    return [Tensor(self.node('Mul', [mag, sgn]), ao[0])]

  # -- shapes and layout --------------------------------------------------------------

  def _p_broadcast_in_dim(self, ins, ai, ao, *, shape, broadcast_dimensions, **_):
    x = self.name(ins[0], ai[0])
    rank = len(shape)
    missing = [d for d in range(rank) if d not in broadcast_dimensions]
    if missing:
      x = self.node('Unsqueeze', [x, self.int64(missing)])
    return [Tensor(self.node('Expand', [x, self.shape(shape)]), ao[0])]

  def _p_reshape(self, ins, ai, ao, *, new_sizes, dimensions=None, **_):
    if dimensions is not None:
      raise JaxganError('ONNX export: reshape with dimensions is not supported')
    return [Tensor(self.node('Reshape', [self.name(ins[0], ai[0]),
                                         self.shape(new_sizes)]), ao[0])]

  def _p_squeeze(self, ins, ai, ao, *, dimensions):
    return [Tensor(self.node('Squeeze', [self.name(ins[0], ai[0]),
                                         self.int64(list(dimensions))]), ao[0])]

  def _p_expand_dims(self, ins, ai, ao, *, dimensions):
    return [Tensor(self.node('Unsqueeze', [self.name(ins[0], ai[0]),
                                           self.int64(list(dimensions))]), ao[0])]

  def _p_transpose(self, ins, ai, ao, *, permutation):
    return [Tensor(self.node('Transpose', [self.name(ins[0], ai[0])],
                             perm=list(permutation)), ao[0])]

  def _p_concatenate(self, ins, ai, ao, *, dimension):
    names = [self.name(x, a) for x, a in zip(ins, ai)]
    return [Tensor(self.node('Concat', names, axis=dimension), ao[0])]

  def _slice(self, x, starts, limits, axes, steps=None):
    args = [x, self.shape(starts), self.shape(limits), self.int64(axes)]
    if steps is not None:
      args.append(self.int64(steps))
    return self.node('Slice', args)

  def _flip(self, x, axes):
    """x reversed along `axes`."""
    n = len(axes)
    return self._slice(x, [-1] * n, [np.iinfo(np.int64).min] * n, list(axes), [-1] * n)

  def _crop(self, x, crops):
    """x cropped by (axis, lo, hi) amounts: jax's negative padding (ONNX pads are
    >= 0)."""
    if not crops:
      return x
    return self._slice(x, [max(lo, 0) for _, lo, _ in crops],
                       [-hi if hi > 0 else np.iinfo(np.int64).max for _, _, hi in crops],
                       [axis for axis, _, _ in crops])

  def _p_slice(self, ins, ai, ao, *, start_indices, limit_indices, strides):
    axes = list(range(len(start_indices)))
    out = self._slice(self.name(ins[0], ai[0]), start_indices, limit_indices, axes,
                      None if strides is None else list(strides))
    return [Tensor(out, ao[0])]

  def _p_rev(self, ins, ai, ao, *, dimensions):
    return [Tensor(self._flip(self.name(ins[0], ai[0]), dimensions), ao[0])]

  def _p_pad(self, ins, ai, ao, *, padding_config):
    x = self.name(ins[0], ai[0])
    value = self.name(ins[1], ai[1])
    shape = list(ai[0].shape)
    for axis, (_, _, interior) in enumerate(padding_config):
      if interior:  # zeros between elements: a new axis padded, merged, trimmed
        rank = len(shape)
        x = self.node('Unsqueeze', [x, self.int64([axis + 1])])
        pads = [0] * (rank + 1) * 2
        pads[rank + 1 + axis + 1] = interior
        x = self.node('Pad', [x, self.int64(pads), value], mode='constant')
        merged = shape[:axis] + [shape[axis] * (interior + 1)] + shape[axis + 1:]
        x = self.node('Reshape', [x, self.shape(merged)])
        keep = shape[axis] * (interior + 1) - interior
        x = self._slice(x, [0], [keep], [axis])
        shape[axis] = keep
    lo = [max(int(l), 0) for l, _, _ in padding_config]
    hi = [max(int(h), 0) for _, h, _ in padding_config]
    if any(lo) or any(hi):
      x = self.node('Pad', [x, self.int64(lo + hi), value], mode='constant')
    x = self._crop(x, [(axis, -int(l), -int(h))
                       for axis, (l, h, _) in enumerate(padding_config) if l < 0 or h < 0])
    return [Tensor(x, ao[0])]

  def _p_iota(self, ins, ai, ao, *, dtype, shape, dimension, **_):
    size = self.dim(shape[dimension])
    scalar = self.node('Squeeze', [size, self.int64([0])])
    r = self.node('Range', [self.const(np.int64(0)), scalar, self.const(np.int64(1))])
    axes = [d for d in range(len(shape)) if d != dimension]
    if axes:
      r = self.node('Unsqueeze', [r, self.int64(axes)])
    r = self.node('Expand', [r, self.shape(shape)])
    return [Tensor(self.node('Cast', [r], to=_onnx_dtype(dtype)), ao[0])]

  def _p_dim_as_value(self, ins, ai, ao, *, dim):
    value = self.node('Squeeze', [self.dim(dim), self.int64([0])])
    return [Tensor(self.node('Cast', [value], to=_onnx_dtype(ao[0].dtype)), ao[0])]

  def _reduce(self, op, ins, ai, ao, axes):
    return [Tensor(self.node(op, [self.name(ins[0], ai[0]), self.int64(list(axes))],
                             keepdims=0), ao[0])]

  def _p_reduce_sum(self, ins, ai, ao, *, axes, **_):
    return self._reduce('ReduceSum', ins, ai, ao, axes)

  def _p_reduce_max(self, ins, ai, ao, *, axes, **_):
    return self._reduce('ReduceMax', ins, ai, ao, axes)

  def _p_reduce_min(self, ins, ai, ao, *, axes, **_):
    return self._reduce('ReduceMin', ins, ai, ao, axes)

  def _p_gather(self, ins, ai, ao, *, dimension_numbers, slice_sizes, **_):
    """Only a gather at indices known at export time with no batch (an `x[i]`)."""
    operand, indices = ins
    dn = dimension_numbers
    k = len(dn.start_index_map)
    rank_out = len(ao[0].shape)
    if (not isinstance(indices, Tensor) and not dn.operand_batching_dims
        and tuple(dn.start_index_map) == tuple(range(k))
        and tuple(dn.collapsed_slice_dims) == tuple(range(k))
        and all(slice_sizes[d] == 1 for d in range(k))
        and all(slice_sizes[d] == ai[0].shape[d] for d in range(k, len(slice_sizes)))
        and tuple(dn.offset_dims) == tuple(range(rank_out - len(slice_sizes) + k,
                                                 rank_out))
        and np.asarray(indices).ndim > 1):
      # x[idx[..., 0], idx[..., 1], ...] on the leading dims: ONNX GatherND.
      idx = np.asarray(indices).astype(np.int64)
      idx = np.clip(idx, 0, np.asarray([int(ai[0].shape[d]) - 1 for d in range(k)]))
      return [Tensor(self.node('GatherND', [self.name(operand, ai[0]), self.const(idx)]),
                     ao[0])]
    if (isinstance(indices, Tensor) or dn.operand_batching_dims
        or np.asarray(indices).shape != (len(dn.start_index_map),)):
      raise JaxganError('ONNX export: a gather with computed indices is not supported')
    idx = np.asarray(indices)
    x = self.name(operand, ai[0])
    starts, limits, axes = [], [], []
    for k, axis in enumerate(dn.start_index_map):
      size = ai[0].shape[axis]
      start = int(idx[k])
      if _is_const_shape([size]):
        start = min(max(start, 0), int(size) - int(slice_sizes[axis]))
      elif start != 0:
        raise JaxganError('ONNX export: a gather at a nonzero index of a symbolic '
                          'dimension is not supported')
      starts.append(start)
      limits.append(start + slice_sizes[axis])
      axes.append(axis)
    for axis, size in enumerate(slice_sizes):
      if axis not in axes and not (size == ai[0].shape[axis]):
        starts.append(0)
        limits.append(size)
        axes.append(axis)
    if axes:
      x = self._slice(x, starts, limits, axes)
    if dn.collapsed_slice_dims:
      x = self.node('Squeeze', [x, self.int64(list(dn.collapsed_slice_dims))])
    if tuple(dn.offset_dims) != tuple(range(len(ao[0].shape))):
      raise JaxganError('ONNX export: this gather layout is not supported')
    return [Tensor(x, ao[0])]

  # -- linear algebra -----------------------------------------------------------------

  def _p_dot_general(self, ins, ai, ao, *, dimension_numbers, preferred_element_type=None,
                     **_):
    (lc, rc), (lb, rb) = dimension_numbers
    letters = iter(string.ascii_letters)
    lhs = [next(letters) for _ in ai[0].shape]
    rhs = [None] * len(ai[1].shape)
    for l, r in zip(lb, rb):
      rhs[r] = lhs[l]
    for l, r in zip(lc, rc):
      rhs[r] = lhs[l]
    rhs = [c or next(letters) for c in rhs]
    out = ([lhs[d] for d in lb] + [c for d, c in enumerate(lhs) if d not in lb + lc]
           + [c for d, c in enumerate(rhs) if d not in rb + rc])
    eq = f"{''.join(lhs)},{''.join(rhs)}->{''.join(out)}"
    a, b = self.name(ins[0], ai[0]), self.name(ins[1], ai[1])
    y = self.node('Einsum', [a, b], equation=eq)
    if np.dtype(ao[0].dtype) != np.dtype(ai[0].dtype):
      y = self.node('Cast', [y], to=_onnx_dtype(ao[0].dtype))
    return [Tensor(y, ao[0])]

  def _p_conv_general_dilated(self, ins, ai, ao, *, window_strides, padding,
                              lhs_dilation, rhs_dilation, dimension_numbers,
                              feature_group_count, batch_group_count, **_):
    if batch_group_count != 1:
      raise JaxganError('ONNX export: convolutions with batch_group_count are not '
                        'supported')
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    x = self.node('Transpose', [self.name(ins[0], ai[0])], perm=list(lhs_spec))
    groups = feature_group_count
    if not _is_const_shape([groups]):
      y = self._grouped_per_sample(x, ins[1], ai, window_strides, padding,
                                   lhs_dilation, rhs_dilation, rhs_spec, groups)
    else:
      w = self.name(ins[1], ai[1])
      w = self.node('Transpose', [w], perm=list(rhs_spec))  # OIHW
      y = self._conv_nchw(x, w, ai[1].shape, rhs_spec, window_strides, padding,
                          lhs_dilation, rhs_dilation, int(groups))
    inverse = list(np.argsort(out_spec))
    return [Tensor(self.node('Transpose', [y], perm=inverse), ao[0])]

  def _conv_nchw(self, x, w_oihw, w_shape, rhs_spec, strides, padding, lhs_dilation,
                 rhs_dilation, groups):
    """NCHW conv of `x` with OIHW kernel `w_oihw` (jax semantics of the padding,
    dilations and groups)."""
    kernel = [int(w_shape[d]) for d in rhs_spec[2:]]
    k_eff = [(k - 1) * d + 1 for k, d in zip(kernel, rhs_dilation)]
    n_sp = len(kernel)
    if all(d == 1 for d in lhs_dilation):
      # Negative padding crops the input first; ONNX pads are >= 0.
      x = self._crop(x, [(2 + i, -lo, -hi) for i, (lo, hi) in enumerate(padding)
                         if lo < 0 or hi < 0])
      pads = [max(lo, 0) for lo, _ in padding] + [max(hi, 0) for _, hi in padding]
      return self.node('Conv', [x, w_oihw], strides=list(strides), pads=pads,
                       dilations=list(rhs_dilation), group=groups)
    if any(s != 1 for s in strides):
      raise JaxganError('ONNX export: a convolution with both input dilation and '
                        'strides is not supported')
    # conv(dilate(x, s), w, pads) = ConvTranspose(x, flip(w) as IOHW, stride s)
    # with pads k_eff - 1 - pad (an excess high pad is output padding).
    o = int(w_shape[rhs_spec[0]])
    i_per_group = int(w_shape[rhs_spec[1]])
    w = self._flip(w_oihw, range(2, 2 + n_sp))
    # [O, I/g, ...] -> [g, O/g, I/g, ...] -> [g, I/g, O/g, ...] -> [I, O/g, ...]
    w = self.node('Reshape', [w, self.int64([groups, o // groups, i_per_group] + kernel)])
    w = self.node('Transpose', [w], perm=[0, 2, 1] + list(range(3, 3 + n_sp)))
    w = self.node('Reshape', [w, self.int64([groups * i_per_group, o // groups] + kernel)])
    begin, end, out_pad = [], [], []
    for (lo, hi), k in zip(padding, k_eff):
      b, e = k - 1 - lo, k - 1 - hi
      if b < 0:
        raise JaxganError('ONNX export: this input-dilated convolution\'s padding is '
                          'not supported')
      begin.append(b)
      end.append(max(e, 0))
      out_pad.append(max(-e, 0))
    return self.node('ConvTranspose', [x, w], strides=list(lhs_dilation), pads=begin + end,
                     dilations=list(rhs_dilation), group=groups,
                     output_padding=out_pad)

  def _grouped_per_sample(self, x, w, ai, strides, padding, lhs_dilation, rhs_dilation,
                          rhs_spec, groups):
    """A conv whose group count G is symbolic (one group per sample): the input [1,
    G*C, H, W] as G images, their patches (a depthwise conv with a one-hot kernel,
    the same geometry) times each group's [O, C*K] weights."""
    w_shape = ai[1].shape
    kernel = [int(w_shape[d]) for d in rhs_spec[2:]]
    c = int(w_shape[rhs_spec[1]])
    kk = int(np.prod(kernel))
    g = self.dim(groups)
    # [1, G*C, H, W] -> [G, C, H, W]
    spatial = [self.node('Slice', [self.node('Shape', [x]), self.int64([i]),
                                   self.int64([i + 1])]) for i in (2, 3)]
    x = self.node('Reshape', [x, self.node('Concat', [g, self.int64([c])] + spatial,
                                           axis=0)])
    onehot = np.zeros([c * kk, 1] + kernel, np.float32)  # OIHW, depthwise
    for ci in range(c):
      for t in range(kk):
        onehot[(ci * kk + t, 0) + np.unravel_index(t, kernel)] = 1
    onehot_shape = [c * kk, 1] + kernel
    patches = self._conv_nchw(x, self.const(onehot), onehot_shape, (0, 1, 2, 3), strides,
                              padding, lhs_dilation, rhs_dilation, c)
    # [G, C*K, H', W'] -> [G, C*K, H'W']
    shape_p = self.node('Shape', [patches])
    hw = self.node('Slice', [shape_p, self.int64([2]), self.int64([4])])
    p = self.node('Reshape', [patches, self.node('Concat', [g, self.int64([c * kk, -1])],
                                                 axis=0)])
    # weights -> OIHW [G*O, C, kh, kw] -> [G, O, C*K]
    w_oihw = self.node('Transpose', [self.name(w, ai[1])], perm=list(rhs_spec))
    wg = self.node('Reshape', [w_oihw, self.node('Concat', [g, self.int64([-1, c * kk])],
                                                 axis=0)])
    y = self.node('MatMul', [wg, p])  # [G, O, H'W']
    y = self.node('Reshape', [y, self.node('Concat', [g, self.int64([-1]), hw], axis=0)])
    # [G, O, H', W'] -> [1, G*O, H', W']
    return self.node('Reshape', [y, self.node('Concat', [self.int64([1, -1]), hw],
                                              axis=0)])

  # -- random bits on symbolic shapes -------------------------------------------------

  def _p_random_bits(self, ins, ai, ao, *, bit_width, shape):
    key = ins[0]
    if isinstance(key, Tensor):
      raise JaxganError('ONNX export: random bits from a key computed in the graph are '
                        'not supported')
    if bit_width != 32 or not jax.config.jax_threefry_partitionable:
      raise JaxganError('ONNX export: only 32-bit threefry (partitionable) random bits '
                        'are supported')
    if 'threefry' not in str(jax.random.key_impl(key)):
      raise JaxganError('ONNX export: only the threefry2x32 generator is supported')
    k1, k2 = (np.uint32(v) for v in np.asarray(jax.random.key_data(key)))
    # The flat index of every element, as (hi, lo) uint32 words.
    rank = len(shape)
    flat = None
    for axis in range(rank):
      stride = 1
      for d in shape[axis + 1:]:
        stride = stride * d
      idx = self._p_iota([], [], ao, dtype=np.int64,
                         shape=shape, dimension=axis)[0].name
      term = self.node('Mul', [idx, self.dim(stride)])
      flat = term if flat is None else self.node('Add', [flat, term])
    two32 = self.const(np.int64(2 ** 32))
    hi = self.node('Cast', [self.node('Div', [flat, two32])], to=12)
    lo = self.node('Cast', [self.node('Mod', [flat, two32])], to=12)
    aval = ao[0]
    spec = jax.ShapeDtypeStruct(shape, np.uint32)
    traced = jax.make_jaxpr(
        lambda a, b: _threefry_rounds(k1, k2, a, b))(spec, spec)
    bits1, bits2 = self.run(traced.jaxpr, traced.consts,
                            [Tensor(hi, aval), Tensor(lo, aval)])
    return [Tensor(self.node('BitwiseXor', [self.name(bits1), self.name(bits2)]), aval)]

  # -- the model ----------------------------------------------------------------------

  def model(self, closed_jaxpr, inputs, input_shapes, output_names, output_shapes,
            doc: str = '') -> 'onnx.ModelProto':
    """The ONNX model of `closed_jaxpr` on graph inputs `inputs` (names), declared
    with `input_shapes` (ints or dimension names); dimension variables must be bound
    first (`bind_dim`)."""
    jaxpr = closed_jaxpr.jaxpr
    args = [Tensor(n, v.aval) for n, v in zip(inputs, jaxpr.invars)]
    outs = self.run(jaxpr, closed_jaxpr.consts, args)
    for name, out, var in zip(output_names, outs, jaxpr.outvars):
      self.nodes.append(helper.make_node('Identity', [self.name(out, var.aval)], [name]))
    graph = helper.make_graph(
        self.nodes, 'jaxgan',
        [helper.make_tensor_value_info(n, _onnx_dtype(v.aval.dtype), s)
         for n, v, s in zip(inputs, jaxpr.invars, input_shapes)],
        [helper.make_tensor_value_info(n, _onnx_dtype(v.aval.dtype), s)
         for n, v, s in zip(output_names, jaxpr.outvars, output_shapes)],
        self.initializers)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
                          producer_name='jaxgan', doc_string=doc)
    m.ir_version = 9  # what current ONNX Runtime releases read
    return m


def _threefry_rounds(k1, k2, x1, x2):
  """jax's threefry2x32 hash (its own unrolled lowering) on uint32 counts."""
  from jax._src.random import threefry2x32
  return threefry2x32._threefry2x32_lowering(jnp.uint32(k1), jnp.uint32(k2), x1, x2,
                                             use_rolled_loops=False)
