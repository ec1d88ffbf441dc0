"""Compile once, visibly: what numba compiles for a run is said on stderr as it happens.

A fresh cache compiles every kernel a graph uses and then its generated engine loop, which
takes a while (tens of seconds for a flagship graph); a later process loads them from numba's
cache in well under a second. numba reports each real compilation (a cache miss) as a
``numba:compile`` event; this listener turns those into one line announcing the compile and
one line per node kernel and for the loop, with its time. A run that loads everything from the
cache prints nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from numba.core import event as ev


class CompileNotice(ev.Listener):
    """Prints compile progress for one engine: ``labels`` maps id(dispatcher) to a name."""

    def __init__(self, graph: str, labels: dict[int, str], loop: Any, where: str, stream: TextIO):
        self.graph, self.labels, self.loop, self.where, self.stream = graph, labels, loop, where, stream
        self.started: dict[int, float] = {}
        self.announced = False
        self.done: set[int] = set()
        self.helpers = 0
        self.t0 = 0.0

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def on_start(self, event: ev.Event) -> None:
        d = event.data["dispatcher"]
        if not self.announced:
            self.announced = True
            self.t0 = time.perf_counter()
            self._say(
                f"flowmm: compiling the engine of graph {self.graph!r} once: {len(self.labels)} kernels, "
                f"then its loop (cached in {self.where}; later runs start at once)"
            )
        self.started[id(d)] = time.perf_counter()

    def on_end(self, event: ev.Event) -> None:
        d = event.data["dispatcher"]
        took = time.perf_counter() - self.started.pop(id(d), time.perf_counter())
        label = self.labels.get(id(d))
        if d is self.loop:
            self._say(
                f"  engine loop compiled in {took:.1f} s ({self.helpers} helper functions); "
                f"{time.perf_counter() - self.t0:.1f} s in all"
            )
        elif label is not None and id(d) not in self.done:
            self.done.add(id(d))
            self._say(f"  [{len(self.done)}/{len(self.labels)}] {label} compiled in {took:.1f} s")
        else:
            self.helpers += 1


@contextmanager
def compile_notice(
    graph: str, kernels: dict[Any, str], loop: Any, where: str, stream: TextIO | None = None
) -> Iterator[CompileNotice]:
    """Report, while the block runs, every compilation of ``kernels`` (dispatcher -> label)
    and of ``loop`` (the generated ``run``)."""
    labels = {id(d): name for d, name in kernels.items()}
    notice = CompileNotice(graph, labels, loop, where, stream or sys.stderr)
    with ev.install_listener("numba:compile", notice):
        yield notice
