"""Subcommands of this area (placeholder until the area lands)."""


def register(sub) -> None:
    return None
