"""Transitional alias: `jaxgan.evaluation` is the same module object as
`jaxgan.evaluators` (not a copy, so a monkeypatch of either is seen through both).

It exists only because `jaxgan/train.py`, which is being rewritten elsewhere, still says
`from jaxgan import evaluation`; delete this file once it imports `evaluators`.
"""

import sys

from jaxgan import evaluators

sys.modules[__name__] = evaluators
