"""Telling a manifest PUT refused for its content from one failed for access or missing blobs."""

from __future__ import annotations

from docker_transfer.errors import ManifestRefusedError, RegistryError
from docker_transfer.reference import Reference

REFUSAL_STATUSES = frozenset({400, 403, 415, 422})
"""Answers to a manifest PUT that mean "not this content" (ACR: 403 DENIED, others 400 MANIFEST_INVALID)."""
# Answers about blobs missing (overlapping runs, a broken upload) or access, not about the content.
_NOT_REFUSALS = frozenset({"BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN", "DIGEST_INVALID", "UNAUTHORIZED"})


def is_refusal(exc: RegistryError) -> bool:
    """True when a manifest PUT failed because of what the manifest is, not access or missing blobs."""
    if isinstance(exc, ManifestRefusedError) or exc.status not in REFUSAL_STATUSES:
        return False
    if exc.code in _NOT_REFUSALS:
        return False
    return "requested access to the resource is denied" not in (exc.detail or "")


def refusal(
    exc: RegistryError, destination: Reference, identifier: str, media_type: str, kind: str
) -> ManifestRefusedError:
    """One line naming what was refused, the registry's own words, and what to do about it."""
    host = destination.api_host
    if kind.startswith("attestation"):
        hint = 'set "attestations": "auto" or "drop" for this entry, or pass --attestations drop'
    elif media_type.startswith("application/vnd.oci."):
        hint = f"{host} may not accept OCI media types; mirror to a registry that does"
    else:
        hint = f"{host} does not accept this manifest as it is"
    where = identifier if identifier.startswith("sha256:") else f"tag {identifier}"
    return ManifestRefusedError(
        f"{host} refused the {kind} ({media_type}) for {destination.name} {where}: "
        f"{exc.status} {exc.words}; {hint}",
        media_type=media_type,
        cause=exc,
    )
