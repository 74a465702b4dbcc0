"""``python -m alignscope.cli``: the same as the ``alignscope`` command."""
import sys

from alignscope.cli import main

sys.exit(main())
