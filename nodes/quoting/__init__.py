"""Quoting stages (seed 000 Components 3, 4, 6, 8; seed 004 Stages 2-6) and the legacy gates."""
