"""The caller's identity, as proven by the transport (the mTLS client certificate)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .request import caller_from_spiffe_id


def caller_from_auth_context(auth: Mapping[str, Sequence[bytes]]) -> dict[str, str] | None:
    """`caller.id` / `caller.trust_domain` / `caller.path` from a gRPC auth context.

    The SPIFFE ID of the URI SAN when the certificate has exactly one; else the subject DN
    (with no trust domain, so rules that need one fail closed). A certificate with several
    SPIFFE IDs is invalid (SPIFFE X.509-SVID) and yields no identity at all. Without a client
    certificate there is no caller.
    """
    spiffe = [u.decode() for u in auth.get("peer_uri", ()) if u.startswith(b"spiffe://")]
    if len(spiffe) > 1:
        return None
    if spiffe:
        try:
            return caller_from_spiffe_id(spiffe[0])
        except ValueError:
            return None
    subject = auth.get("x509_subject")
    if subject:
        return {"id": subject[0].decode()}
    return None


def caller_of(context: Any) -> dict[str, str] | None:
    """The caller of a gRPC call, from its transport (None without a client certificate)."""
    return caller_from_auth_context(context.auth_context())
