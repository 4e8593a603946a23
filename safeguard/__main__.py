import sys

from safeguard.cli import main

sys.exit(main())
