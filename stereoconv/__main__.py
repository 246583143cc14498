"""`python -m stereoconv`: the same as the `stereoconv` command."""

import sys

from stereoconv.cli import main

sys.exit(main())
