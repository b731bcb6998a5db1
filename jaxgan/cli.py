"""What every jaxgan command shares: logging to the console and one-line errors."""

import logging
import sys

from absl import logging as absl_logging

from jaxgan.errors import JaxganError


def setup_logging() -> None:
  absl_logging.set_verbosity(absl_logging.INFO)
  absl_logging.set_stderrthreshold(absl_logging.INFO)
  absl_logging.use_absl_handler()
  # Third-party INFO chatter (orbax's per-save lines, tf) would drown the progress line.
  for name in ('absl', 'orbax', 'jax', 'tensorflow'):
    logging.getLogger(name).setLevel(logging.WARNING)


def run(main, argv=None) -> int:
  """Runs `main(argv)`; a JaxganError becomes `jaxgan: error: <msg>` and exit 1."""
  try:
    main(sys.argv[1:] if argv is None else argv)
  except JaxganError as e:
    print(f'jaxgan: error: {e}', file=sys.stderr)
    return 1
  return 0
