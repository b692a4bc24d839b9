"""Values written into SQL text: the one escaping rule for ClickHouse string literals (backslash, then quote)."""
from __future__ import annotations


def string_literal(text: str) -> str:
    """`text` as a ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
