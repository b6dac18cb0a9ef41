"""Where things are: test/vm (this package's parent), the source tree, the
flavour scripts and the guest's init."""

import os

HERE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
TOP = os.path.realpath(os.path.join(HERE, "..", ".."))
FLAVOURS_DIR = os.path.join(HERE, "flavours")
INIT_SCRIPT = os.path.join(HERE, "init")
