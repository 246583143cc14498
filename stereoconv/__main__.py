"""`python -m stereoconv`: the same as the `stereoconv` command."""

import sys

from stereoconv.cli.main import main

sys.exit(main())
