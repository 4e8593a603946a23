"""pytest fixtures shipped with safeguard (loaded through the ``pytest11`` entry point)."""
