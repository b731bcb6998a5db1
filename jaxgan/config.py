"""Experiment lookup and command-line overrides of a config.

An experiment is a module in `jaxgan.configs` with `get_config(variant) -> ConfigDict`
and a `VARIANTS` mapping (variant name -> function), found by its module name.
Overrides come as `--config.KEY=VALUE`; each value is parsed by
the type of the default it replaces, so a typo or a badly typed value is a one-line
error naming the key instead of a failure deep inside training.
"""

import importlib
import json
import pkgutil
from typing import Any, Sequence

import ml_collections

from jaxgan.errors import JaxganError

def experiments() -> tuple[str, ...]:
  """The experiment names: the modules of `jaxgan.configs` that define `get_config`
  (a new GAN's config module is found by its name; nothing to register)."""
  from jaxgan import configs
  return tuple(sorted(
      info.name for info in pkgutil.iter_modules(configs.__path__)
      if not info.name.startswith('_')
      and hasattr(importlib.import_module(f'jaxgan.configs.{info.name}'), 'get_config')))


def get_experiment(spec: str) -> ml_collections.ConfigDict:
  """Resolves `NAME[:VARIANT]` to its config; unknown names list the valid ones."""
  name, _, variant = spec.partition(':')
  names = experiments()
  if name not in names:
    raise JaxganError(f"unknown experiment '{name}'; valid: {', '.join(names)}")
  module = importlib.import_module(f'jaxgan.configs.{name}')
  if variant and variant not in module.VARIANTS:
    valid = ', '.join(f'{name}:{v}' for v in module.VARIANTS)
    raise JaxganError(
        f"unknown variant '{variant}' of experiment '{name}'; valid: {name}, {valid}")
  config = module.get_config(variant)
  config.experiment = spec
  return config


def _parse_bool(text: str) -> bool:
  lowered = text.strip().lower()
  if lowered in ('1', 'true', 'yes', 'on'):
    return True
  if lowered in ('0', 'false', 'no', 'off'):
    return False
  raise ValueError(text)


def _parse_like(default: Any, text: str) -> Any:
  """Parses `text` into the type of `default` (bool before int: bool is an int)."""
  if isinstance(default, bool):
    return _parse_bool(text)
  if isinstance(default, int):
    return int(text)
  if isinstance(default, float):
    return float(text)
  if isinstance(default, str):
    return text
  if isinstance(default, (tuple, list)):
    element = default[0] if default else ''
    # Brackets are stripped around numbers only: strings may be regexes, '(G|F)/.*'.
    if isinstance(element, str):
      items = split_top_level(text)
    else:
      items = text.strip('()[] ').split(',')
    return type(default)(_parse_like(element, t.strip()) for t in items if t.strip())
  raise ValueError(f'cannot override a value of type {type(default).__name__}')


def split_top_level(text: str) -> list[str]:
  """`text` split on the commas outside brackets, so that the items of a tuple of
  strings may be regexes with commas of their own: 'G/conv_{1,3}/.*=0.1,D/.*=2' is two
  items, and so is '(G|F)/b{0,2}=0.5,x=1'."""
  items, depth, start = [], 0, 0
  for i, ch in enumerate(text):
    if ch in '([{':
      depth += 1
    elif ch in ')]}':
      depth = max(0, depth - 1)
    elif ch == ',' and depth == 0:
      items.append(text[start:i])
      start = i + 1
  items.append(text[start:])
  return items


def apply_override(config: ml_collections.ConfigDict, key: str, text: str) -> None:
  """Sets `config.<key>` from the string `text`, checking the key and the type."""
  node = config
  parts = key.split('.')
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = '.'.join(parts[:depth]) or 'the top level'
      valid = ', '.join(sorted(node.keys())) if isinstance(
          node, ml_collections.ConfigDict) else '(none: not a group)'
      raise JaxganError(
          f"unknown config key '{key}' (valid keys under {where}: {valid})")
    if depth < len(parts) - 1:
      node = node[part]
  leaf = parts[-1]
  default = node[leaf]
  if default is None:  # a placeholder (unset, typed): parse as its declared type
    declared = node.get_type(leaf)
    default = declared() if declared in (bool, int, float, str, tuple) else None
    if default is None:
      raise JaxganError(f"config key '{key}' cannot be set from the command line")
  if isinstance(default, ml_collections.ConfigDict):
    raise JaxganError(f"config key '{key}' is a group, not a value; set one of "
                      f"its keys: {', '.join(sorted(default.keys()))}")
  try:
    value = _parse_like(default, text)
  except ValueError:
    raise JaxganError(
        f"bad value for config key '{key}': {text!r} is not a valid "
        f"{type(default).__name__}") from None
  with node.unlocked():
    node[leaf] = value


def parse_overrides(args: Sequence[str]) -> list[tuple[str, str]]:
  """Reads `--config.KEY=VALUE` (or `--config.KEY VALUE`) pairs from argv."""
  pairs = []
  i = 0
  while i < len(args):
    arg = args[i]
    if not arg.startswith('--config.'):
      raise JaxganError(f"unrecognized argument '{arg}'")
    body = arg[len('--config.'):]
    if '=' in body:
      key, value = body.split('=', 1)
    elif i + 1 < len(args) and not args[i + 1].startswith('--'):
      key, value = body, args[i + 1]
      i += 1
    else:
      raise JaxganError(f"config override '{arg}' has no value (use --config.KEY=VALUE)")
    pairs.append((key, value))
    i += 1
  return pairs


def flatten(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Dotted key ('data.batch_size') -> leaf value, for every leaf of `config`."""
  out = {}

  def visit(node, prefix):
    for key, value in node.items():
      if isinstance(value, dict):
        visit(value, f'{prefix}{key}.')
      else:
        out[f'{prefix}{key}'] = value
  visit(config.to_dict(), '')
  return out


def to_json(config: ml_collections.ConfigDict) -> str:
  return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def from_json(text: str) -> ml_collections.ConfigDict:
  """The inverse of `to_json` (JSON arrays back to the tuples configs hold)."""
  def tuples(node):
    if isinstance(node, dict):
      return {k: tuples(v) for k, v in node.items()}
    return tuple(tuples(v) for v in node) if isinstance(node, list) else node
  return ml_collections.ConfigDict(tuples(json.loads(text)))
