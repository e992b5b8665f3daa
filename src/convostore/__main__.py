import sys

from convostore.cli import main

sys.exit(main())
