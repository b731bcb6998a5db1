"""The one exception type users see: a bad input, reported as a single line."""


class JaxganError(Exception):
  """A user-facing error; the entry points print `jaxgan: error: <message>` and exit."""
