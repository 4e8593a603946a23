"""What safeguard tests itself with, for testing your own strategies.

The pytest fixtures in :mod:`safeguard.testing.plugin` are registered automatically when
safeguard is installed (a ``pytest11`` entry point).
"""
