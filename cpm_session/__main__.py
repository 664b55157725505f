"""Allow ``python -m cpm_session``."""

from cpm_session.cli import main

raise SystemExit(main())
