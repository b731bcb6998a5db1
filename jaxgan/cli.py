"""What every jaxgan command shares: logging to the console and one-line errors."""

import logging
import signal
import sys

from absl import logging as absl_logging

from jaxgan.errors import JaxganError


class _QuietLibraries(logging.Filter):
  """Drops INFO records from libraries that log every save or compile (Orbax, JAX,
  TF): they go through absl's logger like CLU's metric lines, which must stay."""

  NOISY = ('/orbax/', '/jax/', '/jaxlib/', '/tensorflow/', '/etils/')

  def filter(self, record: logging.LogRecord) -> bool:
    if not any(part in record.pathname for part in self.NOISY):
      return True
    if record.exc_info:
      # A library's failure (e.g. Orbax's background save thread on a full disk) is
      # one line: the error the user acts on is raised, and reported, by jaxgan.
      record.exc_info, record.exc_text = None, None
    return record.levelno >= logging.WARNING


def _closed_loop_callback(exc_type, exc, tb) -> bool:
  """A callback of a failed async write landing on its already-closed event loop
  (TensorStore prints one traceback per pending write when a save fails)."""
  if exc_type is not RuntimeError or str(exc) != 'Event loop is closed':
    return False
  while tb is not None and tb.tb_next is not None:
    tb = tb.tb_next
  return tb is not None and tb.tb_frame.f_code.co_name == '_check_closed'


def _quiet_unraisablehook(previous):
  def hook(unraisable):
    if not _closed_loop_callback(unraisable.exc_type, unraisable.exc_value,
                                 unraisable.exc_traceback):
      previous(unraisable)
  hook.jaxgan_quiet = True
  return hook


def setup_logging() -> None:
  absl_logging.set_verbosity(absl_logging.INFO)
  absl_logging.set_stderrthreshold(absl_logging.INFO)
  absl_logging.use_absl_handler()
  absl_logging.get_absl_handler().addFilter(_QuietLibraries())
  if not getattr(sys.unraisablehook, 'jaxgan_quiet', False):
    sys.unraisablehook = _quiet_unraisablehook(sys.unraisablehook)


def run(main, argv=None) -> int:
  """Runs `main(argv)`; a JaxganError becomes `jaxgan: error: <msg>` (one such line
  per line of the message: one per problem) and exit 1."""
  try:
    main(sys.argv[1:] if argv is None else argv)
  except JaxganError as e:
    for line in str(e).splitlines() or ['']:
      print(f'jaxgan: error: {line}', file=sys.stderr)
    return 1
  return 0


class StopRequest:
  """SIGTERM/SIGINT set a flag: the training loop finishes its step, checkpoints and
  returns (start-up stops at its next phase); the command exits 0. A second signal
  falls back to the default behaviour. `jaxgan.main` installs it before loading JAX,
  so that a signal during start-up is never lost."""

  def __init__(self):
    self.signal_name = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not the main thread: signals cannot be caught here
        pass
    return self

  def _handle(self, signum, frame):
    self.signal_name = signal.Signals(signum).name
    logging.warning('%s received: finishing this step and writing a checkpoint',
                    self.signal_name)
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  @property
  def requested(self) -> bool:
    return self.signal_name is not None
