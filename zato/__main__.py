import sys

from zato.cli.main import main

sys.exit(main())
