"""Hypothesis strategies for what a hostile registry or a careless config can send.

Shared by the property-based tests: header values (as the bytes a server puts on
the wire, ASCII or not), numbers written in other scripts, URLs that almost parse,
JSON documents of any shape, and images.json texts built around valid entries.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

FAST = settings(max_examples=200, deadline=None)
"""Enough to find the odd input, cheap enough for every CI run."""

# Digits that str.isdigit() accepts but int() refuses or reads unexpectedly.
ODD_DIGITS = "\u00b2\u00b3\u00b9\u2070\u2074\u0663\u0967\u06f5\uff11\u2460"
_TOKENS = ["Bearer", "Basic", "realm", "service", "scope", "=", '"', "\\", ",", ";", " ", "w=", "-", "bytes "]

text_pieces = st.sampled_from(
    [*_TOKENS, *ODD_DIGITS, "0", "9", "1e9", "nan", "inf", "\x00", "\u00e9", "\u2603"]
)
"""Fragments that parsers of header grammar care about."""

header_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(text_pieces, st.text(max_size=5)), max_size=20).map("".join),
    st.integers(min_value=0).map(str),
    st.text(alphabet="0123456789", min_size=1, max_size=6000),
)
"""A header value as a server might write it (decoded text)."""

header_bytes = st.one_of(
    header_text.map(lambda t: t.encode("utf-8")),
    st.binary(max_size=80).filter(lambda b: b"\r" not in b and b"\n" not in b),
)
"""A header value as raw wire bytes (UTF-8, latin-1 or junk)."""

json_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
"""Any JSON-ish value, NaN and infinities included (Python's json writes them)."""


def _huge_number(text: str) -> str:
    return text.replace("1", "9" * 5000, 1)


json_texts = st.one_of(
    json_values.map(json.dumps),
    json_values.map(json.dumps).map(_huge_number),
    st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.text(max_size=60),
)
"""JSON text of any shape: valid, deeply nested, with thousand-digit numbers, or not JSON at all."""

token_bodies = st.one_of(
    json_texts.map(str.encode),
    st.fixed_dictionaries(
        {},
        optional={
            "token": st.one_of(st.text(max_size=30), json_values),
            "access_token": st.one_of(st.text(max_size=30), json_values),
            "expires_in": st.one_of(json_values, st.text(alphabet=ODD_DIGITS + "0123456789.e-", max_size=8)),
        },
    ).map(lambda d: json.dumps(d).encode()),
    st.binary(max_size=60),
)
"""What a token service may answer with status 200."""

url_texts = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda scheme, host, port, path: f"{scheme}{host}{port}{path}",
        st.sampled_from(["http://", "https://", "ftp://", "//", "", "http:", "https:///"]),
        st.one_of(
            st.sampled_from(
                [
                    "127.0.0.1",
                    "[::1",
                    "[::1]",
                    "registry.example",
                    "a b",
                    "\u00e9.example",
                    "",
                    "[fe80::1%eth0]",
                ]
            ),
            st.text(max_size=15),
        ),
        st.one_of(
            st.just(""),
            st.integers(min_value=-99999, max_value=999999).map(lambda p: f":{p}"),
            st.text(max_size=6).map(lambda p: f":{p}"),
        ),
        st.one_of(st.just("/v2/x/blobs/uploads/1?_state=abc"), st.text(max_size=15)),
    ),
)
"""A ``Location`` header or token realm: URLs that parse, almost parse, or do not."""

_ENTRY = {"source": "nginx:1.25", "target": "nginx", "tags": ["1.25"], "architectures": ["amd64"]}
_FIELDS = ["source", "target", "tags", "architectures", "arch_tags", "allow_partial", "extra"]

config_entries = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(_FIELDS), json_values, max_size=6).map(lambda d: {**_ENTRY, **d}),
    st.dictionaries(st.sampled_from(_FIELDS), json_values, max_size=6),
)
"""One element of the images.json array: nearly valid, or anything."""

config_texts = st.one_of(
    st.lists(config_entries, max_size=4).map(lambda entries: json.dumps(entries, indent=2)),
    st.lists(config_entries, max_size=4).map(json.dumps).map(_huge_number),
    json_texts,
)
"""images.json texts: valid-looking arrays with odd fields, other JSON, or not JSON."""
