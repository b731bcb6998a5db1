"""Shared test fixtures: paths to ../shared and a fast subprocess environment."""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / 'shared'
MAPS = SHARED / 'datasets' / 'maps'


def require(path: Path, what: str) -> Path:
  if not path.exists():
    pytest.skip(f'{what} not found at {path} (../shared is absent in this checkout)')
  return path


def subprocess_env(**extra) -> dict:
  env = dict(os.environ)
  env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  env['PYTHONUNBUFFERED'] = '1'
  env.update(extra)
  return env


PYTHON = sys.executable
