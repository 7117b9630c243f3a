"""OCI image layouts and tar archives as sources and destinations of a copy.

Pure parts (``names``, ``tarfmt``) parse transport-prefixed locations, name the
files of a layout and build tar headers; the I/O parts (``ocidir``,
``archive``, ``endpoints``) read and write them behind the small seam the
layout copy engine (``engine/layout_copy.py``) talks to.
"""
