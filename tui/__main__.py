"""`python -m tui`: the same as the `tunetui` command."""

import sys

from tui.entry import main

sys.exit(main())
