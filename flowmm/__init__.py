"""flowmm: a market maker's whole decision process as a declarative dataflow graph."""

from flowmm.errors import FlowmmError, GraphError
from flowmm.graph import Graph, Run, load_graph

__version__ = "0.1.0"
__all__ = ["FlowmmError", "Graph", "GraphError", "Run", "load_graph", "__version__"]
