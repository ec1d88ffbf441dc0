"""The framework core: port types, nodes, graph spec, plan and engines."""
