import sys

from edgecascade.cli import main

sys.exit(main())
