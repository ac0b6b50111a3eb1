"""`python -m sitesight` runs the CLI."""

from sitesight.cli.main import main

raise SystemExit(main())
