import sys

from settlerd.cli import main

sys.exit(main())
