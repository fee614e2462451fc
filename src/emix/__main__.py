"""``python -m emix``: the same as the ``emix`` command."""

from emix.cli import main

raise SystemExit(main())
