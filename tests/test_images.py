"""Tests for jaxgan.images: PIL modes to RGB, broken files, grids, pixel conversion."""

import numpy as np
from PIL import Image
import pytest

from jaxgan import images
from jaxgan.errors import JaxganError


def _roundtrip(tmp_path, img, name):
  path = tmp_path / name
  img.save(path)
  return images.read_rgb(path)


def test_extensions_case_insensitive():
  assert images.is_image_file('a/B.JPG')
  assert images.is_image_file('x.TiFf')
  assert images.is_image_file('x.webp')
  assert not images.is_image_file('x.txt')


def test_rgb_and_l(tmp_path):
  rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
  np.testing.assert_array_equal(_roundtrip(tmp_path, Image.fromarray(rgb), 'a.png'), rgb)
  out = _roundtrip(tmp_path, Image.new('L', (3, 2), 77), 'l.png')
  assert out.shape == (2, 3, 3) and out.dtype == np.uint8
  assert (out == 77).all()


def test_rgba_composited_on_white(tmp_path):
  img = Image.new('RGBA', (2, 2), (200, 100, 0, 128))
  img.putpixel((1, 1), (10, 20, 30, 0))  # Fully transparent: white.
  out = _roundtrip(tmp_path, img, 'a.png')
  a = 128 / 255
  expected = np.rint(np.array([200, 100, 0]) * a + 255 * (1 - a))
  np.testing.assert_array_equal(out[0, 0], expected)
  np.testing.assert_array_equal(out[1, 1], [255, 255, 255])


def test_la_composited_on_white(tmp_path):
  out = _roundtrip(tmp_path, Image.new('LA', (2, 2), (0, 255)), 'la.png')
  assert (out == 0).all()
  out = _roundtrip(tmp_path, Image.new('LA', (2, 2), (0, 0)), 'la0.png')
  assert (out == 255).all()


def test_palette(tmp_path):
  img = Image.new('P', (2, 2), 1)
  img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
  img.putpixel((0, 0), 0)
  out = _roundtrip(tmp_path, img, 'p.png')
  np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
  np.testing.assert_array_equal(out[1, 1], [10, 20, 30])


def test_palette_with_transparency(tmp_path):
  img = Image.new('P', (2, 1), 1)
  img.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
  img.putpixel((0, 0), 0)
  img.info['transparency'] = 0
  out = _roundtrip(tmp_path, img, 'pt.png')
  np.testing.assert_array_equal(out[0], [[255, 255, 255], [10, 20, 30]])


def test_16_bit_scaled_not_clipped(tmp_path):
  values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
  img = Image.fromarray(values)
  assert img.mode == 'I;16'
  out = _roundtrip(tmp_path, img, 'g16.png')
  np.testing.assert_array_equal(out[0, :, 0], [0, 1, 128, 255])
  assert (out == out[..., :1]).all()  # Gray.


def test_other_wide_modes():
  values = np.array([[0, 65535, 1000]], dtype=np.uint16)
  # Built from bytes: PIL's convert('I;16B') clips to 8-bit values.
  big_endian = Image.frombytes('I;16B', (3, 1), values.astype('>u2').tobytes())
  as_int32 = Image.fromarray(values).convert('I')
  for img in (big_endian, as_int32):
    np.testing.assert_array_equal(images.pil_to_rgb(img)[0, :, 1], [0, 255, 4])


def test_cmyk(tmp_path):
  img = Image.new('CMYK', (2, 2), (255, 0, 0, 0))  # Pure cyan ink.
  img.putpixel((1, 1), (0, 0, 0, 255))  # Black ink.
  out = _roundtrip(tmp_path, img, 'c.tif')
  np.testing.assert_array_equal(out[0, 0], [0, 255, 255])
  np.testing.assert_array_equal(out[1, 1], [0, 0, 0])


def test_one_bit(tmp_path):
  img = Image.new('1', (2, 1), 0)
  img.putpixel((1, 0), 1)
  out = _roundtrip(tmp_path, img, 'b.png')
  np.testing.assert_array_equal(out[0], [[0, 0, 0], [255, 255, 255]])


def test_truncated_jpeg_names_file(tmp_path):
  path = tmp_path / 'broken.jpg'
  noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
  Image.fromarray(noise).save(path, quality=95)
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])
  with pytest.raises(JaxganError, match='broken.jpg') as err:
    images.read_rgb(path)
  assert '\n' not in str(err.value)


def test_not_an_image_and_missing(tmp_path):
  (tmp_path / 'x.png').write_text('hello')
  with pytest.raises(JaxganError, match='x.png'):
    images.read_rgb(tmp_path / 'x.png')
  with pytest.raises(JaxganError, match='nope.png'):
    images.read_rgb(tmp_path / 'nope.png')


def test_write_png_roundtrip(tmp_path):
  img = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
  images.write_png(tmp_path / 'sub' / 'o.png', img)
  np.testing.assert_array_equal(images.read_rgb(tmp_path / 'sub' / 'o.png'), img)


def test_to_uint8():
  np.testing.assert_array_equal(images.to_uint8(np.array([-1.0, 0.0, 1.0, -3, 2])),
                                [0, 128, 255, 0, 255])
  assert images.to_uint8(np.zeros(2)).dtype == np.uint8


def test_make_grid_layout():
  n, h, w, pad = 3, 4, 5, 2
  rng = np.random.default_rng(0)
  columns = [rng.uniform(-1, 1, (n, h, w, 3)) for _ in range(2)]
  columns.append(rng.uniform(-1, 1, (n, h, w, 1)))  # Grayscale column.
  grid = images.make_grid(columns, pad=pad)
  assert grid.dtype == np.uint8
  assert grid.shape == (n * (h + pad) + pad, 3 * (w + pad) + pad, 3)
  for i in range(n):
    for j, col in enumerate(columns):
      y, x = pad + i * (h + pad), pad + j * (w + pad)
      cell = grid[y:y + h, x:x + w]
      expected = images.to_uint8(col[i])
      np.testing.assert_array_equal(cell, np.broadcast_to(expected, (h, w, 3)))
  assert (grid[:pad] == 255).all() and (grid[:, :pad] == 255).all()


def test_make_grid_rejects_mismatched_columns():
  with pytest.raises(ValueError):
    images.make_grid([np.zeros((2, 4, 4, 3)), np.zeros((3, 4, 4, 3))])
