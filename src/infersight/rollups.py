"""Request rollups (materialized views); filled in by the inference/cost work."""


def ddl(database: str) -> list[str]:
    return []
