"""Allow ``python -m fetal_keras``."""

import sys

from fetal_keras.cli.main import main

sys.exit(main())
