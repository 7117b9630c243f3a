"""Benchmarks of docker-transfer against skopeo and the raw registry limit (``make bench``)."""
