import sys

from controller.guard.main import main

sys.exit(main())
