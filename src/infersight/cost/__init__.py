"""Inference cost: price catalog and importers, usage from the rollups and spans, exact derivation."""
