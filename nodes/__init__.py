"""The flowmm node library (installed as ``flowmm.nodes``): one module per concept."""
