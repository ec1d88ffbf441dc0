"""Project exceptions. Every error a user can cause carries a location.

The CLI prints these as ``file:line:col: error: message`` lines, never as a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file position and/or a node and port of the graph."""

    file: str | None = None
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based
    node: str | None = None
    port: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            pos = self.file
            if self.line is not None:
                pos += f":{self.line}"
                if self.col is not None:
                    pos += f":{self.col}"
            parts.append(pos)
        where = ".".join(p for p in (self.node, self.port) if p)
        if where:
            parts.append(f"[{where}]")
        return " ".join(parts) if parts else "<graph>"


@dataclass(frozen=True)
class Diagnostic:
    """One finding of validation: an error or a warning, located, with a hint."""

    message: str
    location: Location = field(default_factory=Location)
    severity: str = "error"  # "error" | "warning"
    hint: str | None = None

    def format(self) -> str:
        text = f"{self.location}: {self.severity}: {self.message}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class FlowmmError(Exception):
    """Base of all errors flowmm reports to a user (printed without a traceback)."""

    exit_code = 1

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        self.message = message
        self.location = location or Location()
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        return Diagnostic(self.message, self.location, "error", self.hint).format()


class GraphError(FlowmmError):
    """A graph file failed to load or validate; holds *all* of its diagnostics."""

    exit_code = 2

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"]
        first = errors[0] if errors else self.diagnostics[0]
        Exception.__init__(self, self.format())
        self.message = first.message
        self.location = first.location
        self.hint = first.hint

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def format(self) -> str:
        n = len(self.errors)
        body = "\n".join(d.format() for d in self.diagnostics)
        return f"{body}\n{n} error{'s' if n != 1 else ''}"


class SourceError(FlowmmError):
    """Bad input data (an event file, a recording): located to the file and line."""

    exit_code = 2


class EngineError(FlowmmError):
    """A run-time failure of the engine (e.g. a consumer fell behind a ring buffer)."""

    exit_code = 3


class UsageError(FlowmmError):
    """A request that cannot be carried out (a bad option value, a source not available)."""

    exit_code = 2

    def format(self) -> str:
        if self.location != Location():
            return super().format()
        text = f"flowmm: error: {self.message}"  # not about a graph: no "<graph>" prefix
        return text + (f"\n    hint: {self.hint}" if self.hint else "")
