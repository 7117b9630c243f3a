"""Start-up cost of the command line: keep imports to what a run uses.

``import httpx`` also imports httpx's own command line (``httpx._main``), which pulls in
rich's console, progress, table and syntax modules and pygments' lexers whenever they are
installed, as they are here (rich draws our progress bars). That is about 37 ms of every
``docker-transfer`` start (docs/performance.md), spent on code a run never calls: our bars
import rich only when stderr is a terminal.

:func:`defer_httpx_cli` registers a stand-in for ``httpx._main`` before httpx is first
imported. Its ``main`` loads and runs the real one, so ``httpx.main`` keeps working for
anyone who calls it. Only ``sys.modules`` is touched: no httpx import, no I/O.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

HTTPX_CLI = "httpx._main"


class _DeferredHttpxCli(types.ModuleType):
    """Stands in for ``httpx._main`` until its ``main`` is called."""

    def __init__(self) -> None:
        super().__init__(HTTPX_CLI, "httpx's command line, loaded on first use by docker_transfer")

    @staticmethod
    def main(*args: Any, **kwargs: Any) -> Any:
        """Load the real ``httpx._main`` and run its ``main``."""
        if isinstance(sys.modules.get(HTTPX_CLI), _DeferredHttpxCli):
            del sys.modules[HTTPX_CLI]
        return importlib.import_module(HTTPX_CLI).main(*args, **kwargs)


def defer_httpx_cli() -> None:
    """Register the stand-in, unless httpx (or its CLI) is already imported."""
    if "httpx" in sys.modules or HTTPX_CLI in sys.modules:
        return
    sys.modules[HTTPX_CLI] = _DeferredHttpxCli()
