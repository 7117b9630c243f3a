"""docker-transfer: mirror container images between OCI/Docker registries."""

__version__ = "0.1.0"
