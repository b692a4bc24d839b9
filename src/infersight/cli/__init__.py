"""The `infersight` command line: one module per command group, helpers shared in `_common`.

Commands are adapters: they parse flags, call a use case of their area and print. No area imports
this package.
"""
