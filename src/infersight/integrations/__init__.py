"""Integrations with tools outside infersight, each in its own module behind its own extra."""
