"""``python -m alignscope.cli``: the same as the ``alignscope`` command."""
import sys

from alignscope.cli.parser import main

sys.exit(main())
