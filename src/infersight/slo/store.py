"""Persistent SLO/alert state tables; filled in by the SLO engine work."""


def ddl(database: str) -> list[str]:
    return []
