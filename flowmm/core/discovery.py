"""Finding node modules: the built-in library (``flowmm.nodes``) and user folders."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

from flowmm.errors import FlowmmError, Location

_builtin_loaded = False
_plugin_dirs: dict[Path, list[str]] = {}


def load_builtin_nodes() -> None:
    """Import every module of the built-in node library once."""
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True
    import flowmm.nodes as pkg

    for info in pkgutil.walk_packages(pkg.__path__, prefix="flowmm.nodes."):
        importlib.import_module(info.name)


def load_plugin_dir(path: str | Path, location: Location | None = None) -> list[str]:
    """Import every ``*.py`` in a folder (not ``_*.py``) as a node module.

    Modules get a stable name derived from their content, so the fused backend (and numba's
    cache) can import their kernels by name. Loading the same folder twice is a no-op."""
    load_builtin_nodes()  # first: a plugin redefining a built-in type fails at its own file
    folder = Path(path).expanduser().resolve()
    if folder in _plugin_dirs:
        return _plugin_dirs[folder]
    if not folder.is_dir():
        raise FlowmmError(f"node folder not found: {path}", location, hint="check --nodes / plugins:")
    names = []
    for file in sorted(folder.glob("*.py")):
        if file.name.startswith("_"):
            continue
        # named by content, not path: numba's on-disk cache pickles the module name, so a
        # path-derived name breaks when a folder is copied or moved with its __pycache__
        tag = hashlib.sha1(file.read_bytes()).hexdigest()[:10]
        modname = f"flowmm_plugins_{tag}_{file.stem}"
        if modname in sys.modules:
            other = getattr(sys.modules[modname], "__file__", "?")
            raise FlowmmError(
                f"node module {file} is defined twice: {other} has the same content",
                location,
                hint="load each node folder once",
            )
        spec = importlib.util.spec_from_file_location(modname, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        try:
            spec.loader.exec_module(module)
        except FlowmmError as exc:  # e.g. a type that redefines a built-in: say which file
            del sys.modules[modname]
            if exc.location.file is None:
                raise FlowmmError(exc.message, Location(str(file)), exc.hint) from None
            raise
        except Exception as exc:  # a user's module failed: say which, keep the cause
            del sys.modules[modname]
            raise FlowmmError(
                f"cannot load node module {file}: {type(exc).__name__}: {exc}", location
            ) from exc
        names.append(modname)
    _plugin_dirs[folder] = names
    return names
