"""Image files and sample grids: reading any image as RGB uint8, writing PNGs, tiling.

This module owns the one definition of "an image file as RGB pixels" that the rest of
jaxgan relies on (PIL + numpy only; TensorFlow stays in `jaxgan.data.pipeline`):

* every PIL mode is brought to RGB uint8. Transparent images (LA, PA, RGBA, P with a
  transparent colour) are composited onto WHITE rather than having alpha dropped: the
  colour under a fully transparent pixel is arbitrary (often black) and would otherwise
  show up as noise. 16-bit images are scaled (65535 -> 255), never clipped.
* a file that cannot be fully decoded raises `JaxganError` naming it; `.load()` forces
  the whole decode so truncated files fail here, not mid-training.
* `make_grid` tiles model outputs (in [-1, 1]) into one uint8 picture.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from jaxgan.errors import JaxganError

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.ppm', '.tif', '.tiff',
                  '.webp')

# Modes whose pixel values span 16 bits. PIL opens 16-bit PNG/TIFF as I;16* (Pillow
# >= 10) or as 32-bit 'I' (older Pillow, some TIFFs); both are read as 0..65535.
_WIDE_INT_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I')
_ALPHA_MODES = ('LA', 'La', 'PA', 'RGBA', 'RGBa')


def is_image_file(name: str | os.PathLike) -> bool:
  """Whether `name` has one of IMG_EXTENSIONS (case-insensitive)."""
  return os.fspath(name).lower().endswith(IMG_EXTENSIONS)


def list_images(folder) -> list[Path]:
  """The image files directly in `folder`, sorted by name."""
  folder = Path(folder)
  if not folder.is_dir():
    raise JaxganError(f'{folder} is not a folder of images')
  files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p.name))
  if not files:
    raise JaxganError(f'no image files ({", ".join(IMG_EXTENSIONS)}) in {folder}')
  return files


def _has_alpha(img: Image.Image) -> bool:
  return img.mode in _ALPHA_MODES or (img.mode == 'P' and 'transparency' in img.info)


def pil_to_rgb(img: Image.Image) -> np.ndarray:
  """Converts a loaded PIL image of any mode to uint8 [H, W, 3] (see module doc)."""
  mode = img.mode
  if mode == 'RGB':
    return np.asarray(img, dtype=np.uint8).copy()
  if mode in _WIDE_INT_MODES:
    wide = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
    # Rounded 65535 -> 255 scaling: 257 * v8 == v16 exactly for 8-bit-origin data.
    gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)
  if mode == 'F':
    # Float images follow PIL's own convert('L') convention: values are 0..255.
    gray = np.clip(np.rint(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)
  if _has_alpha(img):
    rgba = np.asarray(img.convert('RGBA'), dtype=np.float64)
    alpha = rgba[..., 3:] / 255.0
    rgb = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
  # L, 1, P, CMYK, YCbCr, RGBX, ...: PIL's conversions are exact for these.
  return np.asarray(img.convert('RGB'), dtype=np.uint8).copy()


def read_rgb(path: str | os.PathLike) -> np.ndarray:
  """Reads an image file as uint8 [H, W, 3]; the first frame of animated files."""
  path = os.fspath(path)
  try:
    with Image.open(path) as img:
      img.load()  # Forces the full decode: truncated files must fail here.
      return pil_to_rgb(img)
  except FileNotFoundError:
    raise JaxganError(f'image file not found: {path}') from None
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    reason = ' '.join(str(e).split()) or type(e).__name__
    raise JaxganError(f'cannot read image {path}: {reason}') from None


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
  """Writes uint8 [H, W, 3] (or [H, W] / [H, W, 1] grayscale) as a PNG file."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f'write_png wants uint8 pixels, got {image.dtype}')
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
    raise ValueError(f'write_png wants [H, W, 3] pixels, got shape {image.shape}')
  path = os.fspath(path)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  Image.fromarray(image).save(path, format='PNG')


def to_uint8(x) -> np.ndarray:
  """Maps model pixels in [-1, 1] to uint8 0..255 (rounded, out-of-range clipped)."""
  x = np.asarray(x, dtype=np.float32)
  return np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(columns: Sequence[np.ndarray], pad: int = 2,
              pad_value: int = 255) -> np.ndarray:
  """Tiles images into one uint8 picture: row i is sample i, column j is columns[j][i].

  Args:
    columns: C arrays, each [N, H, W, 3] or [N, H, W, 1] with values in [-1, 1]
      (e.g. real A | G(A) | F(G(A)) | real B | F(B) | G(F(B)) for CycleGAN).
    pad: pixels of border around and between cells.
    pad_value: the border's gray level (white by default, like the reference's HTML
      sample pages).

  Returns:
    uint8 [N * (H + pad) + pad, C * (W + pad) + pad, 3].
  """
  if not columns:
    raise ValueError('make_grid needs at least one column')
  cols = [np.asarray(c) for c in columns]
  shape = cols[0].shape[:3]
  for c in cols:
    if c.ndim != 4 or c.shape[:3] != shape or c.shape[-1] not in (1, 3):
      raise ValueError('make_grid columns must all be [N, H, W, 1|3] with the same '
                       f'N, H, W; got {[x.shape for x in cols]}')
  n, h, w = shape
  grid = np.full((n * (h + pad) + pad, len(cols) * (w + pad) + pad, 3), pad_value,
                 dtype=np.uint8)
  for j, col in enumerate(cols):
    cells = to_uint8(col)
    if cells.shape[-1] == 1:
      cells = np.repeat(cells, 3, axis=-1)
    x0 = pad + j * (w + pad)
    for i in range(n):
      y0 = pad + i * (h + pad)
      grid[y0:y0 + h, x0:x0 + w] = cells[i]
  return grid
