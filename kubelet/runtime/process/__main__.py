"""``python -m kubelet.runtime.process ARGS``: the OCI runtime command line (same arguments as runc's subset)."""

import sys

from kubelet.runtime.process.cli import main

sys.exit(main(sys.argv[1:]))
