"""The one map from a ClickHouse error to its kind, shared by both backends.

Callers catch the kind (QueryError, DataError, Timeout, ...), never match "Code: N." text.
"""
from __future__ import annotations

import re

from infersight.storage.base import DataError, LimitExceeded, QueryError, StorageError, Timeout, Unavailable

# The rows themselves are refused: CANNOT_PARSE_TEXT, CANNOT_PARSE_INPUT_ASSERTION_FAILED, CANNOT_PARSE_DATE,
# CANNOT_PARSE_DATETIME, TYPE_MISMATCH, ARGUMENT_OUT_OF_BOUND, CANNOT_CONVERT_TYPE, VIOLATED_CONSTRAINT,
# PY_EXCEPTION_OCCURED (chDB reading an Arrow table), UNKNOWN_EXCEPTION.
DATA_ERROR_CODES = frozenset((6, 27, 38, 41, 53, 69, 70, 469, 800, 1002))
TIMEOUT_CODES = frozenset((159, 160))  # TIMEOUT_EXCEEDED, TOO_SLOW
# MEMORY_LIMIT_EXCEEDED, TOO_MANY_ROWS, TOO_MANY_BYTES, TOO_MANY_ROWS_OR_BYTES, SET_SIZE_LIMIT_EXCEEDED,
# TOO_MANY_COLUMNS, TOO_DEEP_SUBQUERIES, TOO_DEEP_AST, TOO_BIG_AST, QUERY_IS_TOO_LARGE, TOO_DEEP_RECURSION,
# TOO_SLOW_PARSING, MEMORY_RESERVATION_KILLED.
LIMIT_CODES = frozenset((241, 158, 307, 396, 191, 161, 162, 167, 168, 229, 306, 718, 777))
# The statement is wrong, refers to something that does not exist, or is not allowed.
QUERY_ERROR_CODES = frozenset((
    1, 2, 7, 8, 10, 11, 12, 13, 15, 16, 19, 20, 25, 26, 28, 34, 35, 36, 37, 42, 43, 44, 46, 47, 48, 50, 51, 52,
    55, 56, 59, 60, 62, 63, 72, 73, 78, 80, 81, 85, 89, 90, 113, 115, 116, 120, 121, 122, 124, 125, 127, 128,
    129, 130, 131, 133, 134, 135, 141, 145, 152, 153, 164, 165, 166, 169, 170, 174, 179, 181, 182, 183, 184,
    186, 187, 190, 206, 207, 208, 211, 215, 223, 258, 260, 262, 264, 277, 284, 290, 291, 309, 321, 344, 346,
    352, 353, 358, 370, 376, 377, 378, 386, 392, 395, 397, 399, 403, 406, 407, 408, 417, 418, 419, 427, 440,
    441, 446, 452, 455, 456, 457, 466, 467, 471, 472, 475, 476, 477, 481, 482, 490, 497, 498, 503, 527, 538,
    544, 545, 549, 552, 557, 558, 563, 582, 596, 620, 621, 628, 632, 645, 675, 676, 691, 703, 717, 721, 728,
    760, 801,
))
_CODE = re.compile(r"Code: (\d+)\.")


def code_of(message: str) -> int | None:
    """The ClickHouse error code a message starts with (the first one it names), if any."""
    m = _CODE.search(message)
    return int(m.group(1)) if m else None


def classify(message: str) -> StorageError:
    """The typed exception for a ClickHouse error message; unknown codes and no code mean Unavailable."""
    code = code_of(message)
    if code in DATA_ERROR_CODES:
        return DataError(message)
    if code in TIMEOUT_CODES:
        return Timeout(message)
    if code in LIMIT_CODES:
        return LimitExceeded(message)
    if code in QUERY_ERROR_CODES:
        return QueryError(message)
    return Unavailable(message)
