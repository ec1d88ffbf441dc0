"""Feature extractors (seed 000, Component 7): raw features and their drift observations."""
