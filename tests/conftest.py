"""Project-wide test configuration. Fixtures users also get live in safeguard.testing."""

from __future__ import annotations
