"""Execution layer: reconciler, paper broker, accounting."""
