"""FID feature extraction speed, and the maps sanity FID.

  python experiments/bench_fid.py [--batch-sizes 8,50] [--maps ../shared/datasets/maps]

1. images/s of the jitted, sharded Inception feature extraction (uint8 256×256 in,
   resize to 299 inside), compile time apart, median of 3 timed batches after a
   warm-up, per batch size;
2. FID (and KID) between the left halves (aerial photos) of the first 200 `maps/val`
   and the first 200 `maps/train` images: a sanity figure (same domain, different
   images: small but not zero).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxgan import images
from jaxgan.metrics import features, feature_scores


def _csv(text):
  return [int(t) for t in text.split(',') if t]


def main(argv):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--batch-sizes', type=_csv, default=[8, 50])
  p.add_argument('--maps', default=str(Path(__file__).resolve().parents[1].parent /
                                       'shared' / 'datasets' / 'maps'))
  p.add_argument('--num', type=int, default=200)
  p.add_argument('--weights', default=None)
  args = p.parse_args(argv)
  variables = features.load_variables(args.weights)
  dev = jax.devices()[0]
  print(f'# {jax.device_count()} x {dev.device_kind} ({dev.platform}); jax {jax.__version__}')
  print('| batch | compile+first s | s/batch (median of 3) | images/s |')
  print('|---|---|---|---|', flush=True)
  rng = np.random.default_rng(0)
  for bs in args.batch_sizes:
    ex = features.Extractor(variables, batch_size=bs)
    batch = [rng.integers(0, 255, (256, 256, 3), np.uint8) for _ in range(ex.batch_size)]
    t0 = time.perf_counter()
    ex(batch)
    first = time.perf_counter() - t0
    times = []
    for _ in range(3):
      t0 = time.perf_counter()
      ex(batch)
      times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f'| {ex.batch_size} | {first:.1f} | {med:.3f} | {ex.batch_size / med:.1f} |',
          flush=True)
  maps = Path(args.maps)
  if not maps.is_dir():
    print(f'(maps not found at {maps}: no sanity FID)')
    return
  ex = features.Extractor(variables, batch_size=50)

  def left_halves(split):
    files = sorted((maps / split).glob('*.jpg'), key=lambda f: int(f.stem))[:args.num]
    for f in files:
      img = images.read_rgb(f)
      yield img[:, :img.shape[1] // 2]

  t0 = time.perf_counter()
  f_val = ex(left_halves('val'))['pool3']
  f_train = ex(left_halves('train'))['pool3']
  value = feature_scores.frechet_distance(*feature_scores.statistics(f_val),
                                          *feature_scores.statistics(f_train))
  kid_mean, kid_std = feature_scores.kernel_inception_distance(f_val, f_train)
  print(f'maps left halves (aerial), first {args.num} of val vs first {args.num} of train '
        f'(sorted by number): FID {value:.2f}, KID {kid_mean:.5f} ± {kid_std:.5f} '
        f'({time.perf_counter() - t0:.0f} s)')


if __name__ == '__main__':
  main(sys.argv[1:])
