"""Helpers the tests share: servers on loopback, recorders, SLO and web UI drivers, paths. Not tests themselves."""
