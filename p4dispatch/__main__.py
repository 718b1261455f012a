import sys

from p4dispatch.cli import main

sys.exit(main())
