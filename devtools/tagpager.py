"""A proxy that pages ``/tags/list`` the way Docker Hub, ghcr.io and Distribution 3 do.

Distribution 2.8 (Debian's ``docker-registry``) ignores ``n`` and ``last`` on
``GET /v2/<name>/tags/list`` and answers every tag at once. Registries users mirror
from page it: at most ``n`` tags (capped by the server), sorted, and a
``Link: </v2/<name>/tags/list?last=<tag>&n=<n>>; rel="next"`` header while more
remain. This proxy reads the full list from a real registry and answers that way;
every other request is forwarded unchanged.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, quote

from devtools.httpbase import (
    HasURL,
    QuietHandler,
    ThreadedServer,
    forward_request,
    plain_http_upstream,
    relay_response,
)


class TagPagingProxy(ThreadedServer):
    """Reverse proxy to a plain-http registry whose tag lists come back in pages."""

    def __init__(self, upstream: HasURL, *, default_page: int = 100, max_page: int = 1000) -> None:
        self._up = plain_http_upstream(upstream, "TagPagingProxy")
        self.default_page = default_page
        self.max_page = max_page
        self.pages_served: list[str] = []
        """The request target of every tag-list page answered (path and query)."""
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                path, _, query = self.path.partition("?")
                conn = http.client.HTTPConnection(*owner._up, timeout=30)
                try:
                    if self.command == "GET" and path.endswith("/tags/list"):
                        self._page(conn, path, query)
                    else:
                        forward_request(self, conn, None)
                        relay_response(self, conn.getresponse())
                finally:
                    conn.close()

            def _page(self, conn: http.client.HTTPConnection, path: str, query: str) -> None:
                conn.request(
                    "GET", path, headers={k: v for k, v in self.headers.items() if k.lower() != "host"}
                )
                upstream = conn.getresponse()
                body = upstream.read()
                if upstream.status != 200:
                    headers = {"Content-Type": upstream.getheader("Content-Type") or "application/json"}
                    self.send_bytes(upstream.status, body, headers)
                    return
                doc = json.loads(body)
                params = parse_qs(query)
                size = min(int(params.get("n", [owner.default_page])[0]), owner.max_page)
                last = params.get("last", [""])[0]
                tags = sorted(doc.get("tags") or [])
                after = [t for t in tags if t > last] if last else tags
                page = after[:size]
                headers = {"Content-Type": "application/json"}
                if len(after) > size:
                    headers["Link"] = f'<{path}?last={quote(page[-1])}&n={size}>; rel="next"'
                with owner._lock:
                    owner.pages_served.append(self.path)
                self.send_bytes(200, json.dumps({"name": doc.get("name"), "tags": page}).encode(), headers)

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        return Handler
