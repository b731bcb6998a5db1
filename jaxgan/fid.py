"""FID (and KID, Inception Score) between two image sets, as pytorch-fid's CLI:

  python -m jaxgan.fid PATH1 PATH2 [--kid] [--inception-score] [--batch-size B]
                       [--weights FILE]
  python -m jaxgan.fid --save-stats FOLDER OUTPUT.npz

Each PATH is a folder of images or a statistics `.npz` (mu, sigma) saved before, so a
dataset's reference statistics are computed once. Images are read as RGB (any mode),
resized to 299×299 bilinearly and passed through the standard FID Inception-v3.
"""

import argparse
import logging
import sys
from pathlib import Path

from jaxgan import cli
from jaxgan.errors import JaxganError


def parse_args(argv):
  p = argparse.ArgumentParser(prog='python -m jaxgan.fid',
                              description=__doc__.split('\n')[0])
  p.add_argument('path', nargs=2, help='two folders of images or statistics .npz files '
                 '(with --save-stats: a folder and the output .npz)')
  p.add_argument('--batch-size', type=int, default=50)
  p.add_argument('--weights', default=None, help='FID Inception weights (.npz, pytorch-fid '
                 '.pth or TorchScript .pt); default: see `python -m jaxgan.metrics.weights`')
  p.add_argument('--kid', action='store_true', help='also the Kernel Inception Distance')
  p.add_argument('--inception-score', action='store_true',
                 help='also the Inception Score of the first folder (needs weights with '
                 'the classifier, e.g. pytorch-fid\'s .pth)')
  p.add_argument('--save-stats', action='store_true',
                 help='write the statistics of the folder PATH1 to PATH2 and exit')
  p.add_argument('--num-images', type=int, default=0, help='use the first N images (0: all)')
  return p.parse_args(argv)


def _features(path: Path, extractor, num_images: int) -> dict:
  from jaxgan import images
  from jaxgan.metrics import features
  files = images.list_images(path)
  if num_images:
    files = files[:num_images]
  skipped: list = []
  feats = extractor(features.read_images(files, skipped))
  if skipped:
    logging.warning('%s: skipped %d unreadable image(s): %s', path, len(skipped),
                    ', '.join(skipped[:5]))
  return feats


def main(argv):
  args = parse_args(argv)
  cli.setup_logging()
  from jaxgan.metrics import features, feature_scores
  paths = [Path(p) for p in args.path]
  is_stats = [p.suffix == '.npz' and not p.is_dir() for p in paths]
  if args.save_stats:
    if is_stats[0]:
      raise JaxganError(f'--save-stats needs a folder of images first, got {paths[0]}')
  elif (args.kid or args.inception_score) and any(is_stats):
    raise JaxganError('--kid and --inception-score need folders of images, not saved statistics')
  for p, stats in zip(paths, is_stats):
    if not stats and not args.save_stats and not p.is_dir():
      raise JaxganError(f'{p} is neither a folder of images nor a statistics .npz')
  extractor = None
  if not all(is_stats) or args.save_stats:
    extractor = features.Extractor(features.load_variables(args.weights),
                                   batch_size=args.batch_size)
  if args.save_stats:
    feats = _features(paths[0], extractor, args.num_images)
    feature_scores.save_statistics(paths[1],
                                   *feature_scores.statistics(feats['pool3']))
    print(f'saved statistics of {len(feats["pool3"])} images to {paths[1]}')
    return
  if args.inception_score and not extractor.has_logits:
    raise JaxganError('the Inception Score needs weights with the 1008-way classifier '
                      '(e.g. pytorch-fid\'s pt_inception-2015-12-05-6726825d.pth); '
                      'these weights have none')
  feats, stats = [], []
  for p, saved in zip(paths, is_stats):
    if saved:
      feats.append(None)
      stats.append(feature_scores.load_statistics(p))
    else:
      f = _features(p, extractor, args.num_images)
      feats.append(f)
      stats.append(feature_scores.statistics(f['pool3']))
  print(f'FID:  {feature_scores.frechet_distance(*stats[0], *stats[1]):.6f}')
  if args.kid:
    mean, std = feature_scores.kernel_inception_distance(feats[0]['pool3'],
                                                         feats[1]['pool3'])
    print(f'KID:  {mean:.6f} ± {std:.6f}')
  if args.inception_score:
    mean, std = feature_scores.inception_score(feats[0]['logits'])
    print(f'IS:   {mean:.4f} ± {std:.4f}')


if __name__ == '__main__':
  sys.exit(cli.run(main))
