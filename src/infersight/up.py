"""`infersight up`: the all-in-one server plus an agent for this node."""


def register(sub) -> None:
    return None
