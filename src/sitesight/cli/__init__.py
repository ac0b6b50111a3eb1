"""The `sitesight` command line: one module per command group, each a thin wrapper over the library."""
