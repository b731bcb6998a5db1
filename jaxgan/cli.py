"""What every jaxgan command shares: logging to the console and one-line errors."""

import logging
import sys

from absl import logging as absl_logging

from jaxgan.errors import JaxganError


class _QuietLibraries(logging.Filter):
  """Drops INFO records from libraries that log every save or compile (Orbax, JAX,
  TF): they go through absl's logger like CLU's metric lines, which must stay."""

  NOISY = ('/orbax/', '/jax/', '/jaxlib/', '/tensorflow/', '/etils/')

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not any(
        part in record.pathname for part in self.NOISY)


def setup_logging() -> None:
  absl_logging.set_verbosity(absl_logging.INFO)
  absl_logging.set_stderrthreshold(absl_logging.INFO)
  absl_logging.use_absl_handler()
  absl_logging.get_absl_handler().addFilter(_QuietLibraries())


def run(main, argv=None) -> int:
  """Runs `main(argv)`; a JaxganError becomes `jaxgan: error: <msg>` and exit 1."""
  try:
    main(sys.argv[1:] if argv is None else argv)
  except JaxganError as e:
    print(f'jaxgan: error: {e}', file=sys.stderr)
    return 1
  return 0
