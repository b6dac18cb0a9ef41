"""ktlsvm: the code of test/vm/vm-run, one concern per module (layout and
import order: test/vm/README, "The vm-run package").  Imports nothing
itself: vm-run calls ktlsvm.cli.main()."""
