import sys

from synapserve.cli import main

sys.exit(main())
