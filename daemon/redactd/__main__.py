"""Allow ``python -m redactd``."""

from redactd.cli import main

raise SystemExit(main())
