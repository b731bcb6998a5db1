"""Image files as RGB (every PIL mode), PNG output and sample grids."""

import io

import numpy as np
import pytest
from PIL import Image

from jaxgan import images
from jaxgan.errors import JaxganError


def _save(tmp_path, name, img, **kw):
  path = tmp_path / name
  img.save(path, **kw)
  return path


def test_grayscale_palette_and_cmyk(tmp_path):
  gray = np.array([[0, 100], [200, 255]], np.uint8)
  rgb = images.read_rgb(_save(tmp_path, 'g.png', Image.fromarray(gray, 'L')))
  assert rgb.shape == (2, 2, 3) and (rgb == gray[..., None]).all()
  pal = Image.new('P', (2, 1))
  pal.putpalette([10, 20, 30, 200, 150, 100] + [0] * 762)
  pal.putdata([0, 1])
  rgb = images.read_rgb(_save(tmp_path, 'p.png', pal))
  assert rgb[0].tolist() == [[10, 20, 30], [200, 150, 100]]
  cmyk = Image.new('CMYK', (1, 1), (0, 255, 255, 0))  # no cyan, full magenta+yellow
  assert images.read_rgb(_save(tmp_path, 'c.tif', cmyk))[0, 0].tolist() == [255, 0, 0]


def test_rgba_composited_on_white(tmp_path):
  rgba = np.array([[[255, 0, 0, 255], [255, 0, 0, 0], [0, 0, 0, 128]]], np.uint8)
  rgb = images.read_rgb(_save(tmp_path, 'a.png', Image.fromarray(rgba, 'RGBA')))
  # opaque red stays red; transparent becomes white; half-transparent black -> grey
  # 255 * (1 - 128/255) = 127.
  assert rgb[0].tolist() == [[255, 0, 0], [255, 255, 255], [127, 127, 127]]


def test_16_bit_is_scaled_not_clipped(tmp_path):
  wide = np.array([[0, 257 * 100, 65535]], np.uint16)
  img = Image.fromarray(wide)  # mode I;16
  rgb = images.read_rgb(_save(tmp_path, 'w.png', img))
  assert rgb[0, :, 0].tolist() == [0, 100, 255]


def test_truncated_and_missing_files_name_the_file(tmp_path):
  buf = io.BytesIO()
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
      buf, format='JPEG')
  path = tmp_path / 'cut.jpg'
  path.write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
  with pytest.raises(JaxganError, match='cut.jpg'):
    images.read_rgb(path)
  with pytest.raises(JaxganError, match='image file not found: .*nope.png'):
    images.read_rgb(tmp_path / 'nope.png')


def test_to_uint8_and_grid_layout():
  assert images.to_uint8(np.array([-1.0, 0.0, 1.0, 2.0])).tolist() == [0, 128, 255, 255]
  n, h, w = 2, 3, 4
  cols = [np.full((n, h, w, 3), -1.0 + 0.5 * j, np.float32) for j in range(3)]
  cols[1][1] = 1.0  # column 1, row 1 is white
  grid = images.make_grid(cols, pad=2)
  assert grid.shape == (n * (h + 2) + 2, 3 * (w + 2) + 2, 3)
  cell = lambda i, j: grid[2 + i * (h + 2):2 + i * (h + 2) + h, 2 + j * (w + 2):2 + j * (w + 2) + w]
  assert (cell(0, 0) == 0).all() and (cell(0, 2) == 128).all()
  assert (cell(1, 1) == 255).all() and (cell(0, 1) == 64).all()
  gray = images.make_grid([np.zeros((1, 2, 2, 1))], pad=0)
  assert gray.shape == (2, 2, 3)
