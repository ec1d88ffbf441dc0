"""``python -m flowmm``: the same as the ``flowmm`` command."""

from flowmm.cli import main

raise SystemExit(main())
