"""The engine a bench run uses: the one ``flowmm run`` picks (shared by the bench scripts)."""

from __future__ import annotations


def engine_kwargs(broker, backend: str | None = None) -> dict:
    """Graph.run's engine keywords as ``flowmm run`` picks them: an explicit ``backend`` wins; a
    run with a broker takes Graph.run's default (the compiled loop whenever the broker has
    kernels, as the paper broker does); a run without one ``flowmm.cli.default_backend()``."""
    if backend is not None:
        return {"backend": backend}
    if broker is not None:
        return {}
    try:
        from flowmm.cli import default_backend
    except ImportError:  # no choice left to make
        return {}
    return {"backend": default_backend()}
