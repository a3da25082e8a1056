import sys

from customer360.serving.cli import main

sys.exit(main())
