"""YAML loading that remembers where every key and value came from.

PyYAML silently keeps the last of two equal keys; a graph file with a duplicated
node name would then lose a node without a word. We compose the node tree ourselves,
so duplicated keys become located errors and every value keeps its file:line:col.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from flowmm.errors import Diagnostic, GraphError, Location

Path_ = tuple[Any, ...]


class Located:
    """Plain Python data from a YAML document plus the position of every path in it."""

    def __init__(
        self,
        data: Any,
        marks: dict[Path_, tuple[int, int]],
        file: str | None,
        diagnostics: list[Diagnostic] | None = None,
    ):
        self.data = data
        self.diagnostics = diagnostics or []  # duplicated keys, found while composing
        self.marks = marks  # path -> (line, col), 1-based; the key's position for mapping entries
        self.file = file

    def loc(self, path: Path_, node: str | None = None, port: str | None = None) -> Location:
        """Location of the deepest known prefix of ``path``."""
        path = tuple(path)
        while path and path not in self.marks:
            path = path[:-1]
        line, col = self.marks.get(path, (None, None))
        return Location(self.file, line, col, node, port)


def _construct(node: yaml.Node, path: Path_, marks: dict, diags: list, file: str | None) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                diags.append(
                    Diagnostic(
                        "YAML merge keys ('<<') are not supported in graph files",
                        Location(file, key_node.start_mark.line + 1, key_node.start_mark.column + 1),
                        hint="write the keys out explicitly",
                    )
                )
                continue
            key = _construct(key_node, path + ("<key>",), {}, diags, file)
            kpos = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in out:
                first = marks.get(path + (key,), ("?", "?"))
                diags.append(
                    Diagnostic(
                        f"duplicated key {key!r} (first defined at line {first[0]})",
                        Location(file, *kpos),
                        hint="YAML keeps only the last of two equal keys; rename or remove one",
                    )
                )
                continue
            marks[path + (key,)] = kpos
            out[key] = _construct(value_node, path + (key,), marks, diags, file)
            # the value's own position, for errors about the value rather than the key
            marks[path + (key, "<value>")] = (
                value_node.start_mark.line + 1,
                value_node.start_mark.column + 1,
            )
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            marks[path + (i,)] = (item.start_mark.line + 1, item.start_mark.column + 1)
            items.append(_construct(item, path + (i,), marks, diags, file))
        return items
    return yaml.SafeLoader("").construct_object(node, deep=True)


MAX_DEPTH = 64  # nesting of mappings/sequences; a graph needs < 10, the composer recurses


def _screen(text: str, file: str | None) -> None:
    """Refuse anchors/aliases and deep nesting from the event stream, before composing.

    An alias is expanded by value: 9 levels of 9 aliases in 700 bytes become 9**9 nodes
    (a "billion laughs" bomb). Graph files have no need for them, so they are refused at the
    first one; the events are read without building anything, in time linear in the text."""
    depth = 0
    for ev in yaml.parse(text, Loader=yaml.SafeLoader):
        where = Location(file, ev.start_mark.line + 1, ev.start_mark.column + 1)
        if isinstance(ev, yaml.AliasEvent) or getattr(ev, "anchor", None) is not None:
            raise GraphError(
                [
                    Diagnostic(
                        "YAML anchors and aliases ('&name', '*name') are not supported in graph files",
                        where,
                        hint="write the values out explicitly",
                    )
                ]
            )
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise GraphError(
                    [Diagnostic(f"YAML nested deeper than {MAX_DEPTH} levels", where, hint="flatten it")]
                )
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def load_located(text: str, file: str | None = None) -> Located:
    """Parse one YAML document; raise ``GraphError`` on syntax errors, duplicated keys,
    anchors/aliases or nesting deeper than ``MAX_DEPTH``."""
    try:
        _screen(text, file)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = exc.problem or str(exc)
        ctx = f" ({exc.context})" if exc.context else ""
        if exc.context and exc.context_mark and exc.problem_mark:
            # an unclosed bracket or quote is found lines later: say where it was opened
            if exc.context_mark.line != exc.problem_mark.line:
                ctx = f" ({exc.context} that starts at line {exc.context_mark.line + 1})"
        raise GraphError([Diagnostic(f"YAML syntax error: {problem}{ctx}", loc)]) from None
    except yaml.YAMLError as exc:
        raise GraphError([Diagnostic(f"YAML error: {exc}", Location(file))]) from None
    marks: dict[Path_, tuple[int, int]] = {}
    diags: list[Diagnostic] = []
    if root is None:
        return Located({}, marks, file)
    marks[()] = (root.start_mark.line + 1, root.start_mark.column + 1)
    data = _construct(root, (), marks, diags, file)
    return Located(data, marks, file, diags)


def load_located_file(path: str | Path) -> Located:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GraphError(
            [Diagnostic(f"cannot read graph file: {exc.strerror}", Location(str(path)))]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise GraphError(
            [
                Diagnostic(
                    f"not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded",
                    Location(str(path), line, col),
                    hint="graph files are UTF-8",
                )
            ]
        ) from None
    return load_located(text, str(path))
