"""Public test doubles: stand-ins for hardware interfaces, so the real collectors run without the hardware.

`nvml_replay` replays a real GPU's NVML answers (see docs/collectors/nvml.md). Nothing here is
imported by the agent or the server.
"""
