"""Estimators and posteriors (seed 000 Components 1, 2, 5; seed 004 Stage 1)."""
