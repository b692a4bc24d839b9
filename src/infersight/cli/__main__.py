"""`python -m infersight.cli`: what `infersight up` and the tests start as child processes."""
import sys

from infersight.cli.main import main

sys.exit(main())
