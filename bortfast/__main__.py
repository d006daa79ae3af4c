import sys

from bortfast.cli import main

sys.exit(main())
