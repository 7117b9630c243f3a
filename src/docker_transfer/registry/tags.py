"""Tag listing verb: ``GET /v2/<name>/tags/list``, following ``Link: <…>; rel="next"`` pages.

Listing is not a pull: Docker Hub does not count it against the pull limit.
"""

from __future__ import annotations

import functools
import json
import re
from typing import TYPE_CHECKING

import httpx

from docker_transfer.errors import RegistryError, UnsafeRedirectError
from docker_transfer.reference import Reference
from docker_transfer.registry.httperrors import error_from_response, read_bounded

if TYPE_CHECKING:
    # The client's verbs (RegistryClient.get_manifest…) call these: no import at run time.
    from docker_transfer.registry.client import RegistryClient

PAGE_SIZE = 1000
"""Tags asked for per page (``n=``); registries may answer fewer."""

MAX_TAGS = 10_000
"""A repository listing more tags than this is refused: rules must not run unbounded."""

MAX_PAGE_BYTES = 4 * 1024 * 1024
_LINK_PART = re.compile(r"\s*<([^>]*)>\s*((?:;\s*[^;,]*)*)")


class TagListError(RegistryError):
    """A tag list that cannot be read: not JSON, wrong shape, too long, a bad next page."""


def next_link(header: str | None) -> str | None:
    """The URI of the ``rel="next"`` entry of a ``Link`` header (RFC 8288), or None.

    Distribution sends ``</v2/x/tags/list?last=t&n=1000>; rel="next"``. Anything
    unparsable means "no next page" rather than an error, as the list so far is valid.
    """
    if not header:
        return None
    position = 0
    while position < len(header):
        match = _LINK_PART.match(header, position)
        if match is None:
            return None
        target, params = match.group(1), match.group(2)
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').lower().split():
                return target
        position = match.end()
        rest = header[position:].lstrip()
        if not rest.startswith(","):
            return None
        position = len(header) - len(rest) + 1
    return None


def parse_tag_page(data: bytes, where: str) -> list[str]:
    """The ``tags`` of one page (``null`` or absent is an empty list); a wrong shape is a TagListError."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise TagListError(f"{where}: the tag list is not JSON") from None
    if not isinstance(doc, dict):
        raise TagListError(f"{where}: the tag list is not a JSON object")
    tags = doc.get("tags")
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise TagListError(f'{where}: "tags" in the tag list is not a list of strings')
    return tags


async def list_tags(
    client: RegistryClient, ref: Reference, *, page_size: int = PAGE_SIZE, cap: int = MAX_TAGS
) -> list[str]:
    """Every tag of ``ref``'s repository, in the registry's order, following pages (each retried)."""
    url = httpx.URL(
        await client.url(ref.api_host, f"/v2/{ref.repository}/tags/list"), params={"n": page_size}
    )
    tags: list[str] = []
    seen: set[str] = set()
    where = f"tags of {ref.name}"
    while True:
        page, link = await client.retry.call(functools.partial(_page, client, url, where))
        tags.extend(t for t in page if t not in seen)
        seen.update(page)
        if len(tags) > cap:
            raise TagListError(
                f"{where}: more than {cap} tags; the listing stops there (choose tags by name instead)",
                host=ref.api_host,
            )
        if link is None or not page:
            return tags
        try:
            following = url.join(link)
            following.netloc  # noqa: B018 - a bad port raises only when the URL is used
        except (httpx.InvalidURL, ValueError):
            raise TagListError(f"{where}: the next page's address is not a URL", host=ref.api_host) from None
        if (following.scheme, following.netloc) != (url.scheme, url.netloc):
            raise UnsafeRedirectError(str(following.copy_with(query=None)), "next page is on another host")
        if following == url:
            return tags  # a server pointing at the same page again would loop forever
        url = following


async def _page(client: RegistryClient, url: httpx.URL, where: str) -> tuple[list[str], str | None]:
    response = await client.send("GET", url, headers={"Accept": "application/json"}, stream=True)
    if response.status_code != 200:
        raise await error_from_response(response, f"GET {where}", subject=where)
    data = await read_bounded(response, MAX_PAGE_BYTES + 1, strict=True)
    if len(data) > MAX_PAGE_BYTES:
        raise TagListError(f"{where}: a page of the tag list exceeds {MAX_PAGE_BYTES} bytes")
    client.stats.bytes_read += len(data)
    return parse_tag_page(data, where), next_link(response.headers.get("Link"))
