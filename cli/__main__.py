"""``python -m cli``: the same as the ``lsr`` command."""

from .app import app

app()
