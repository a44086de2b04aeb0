"""Typed values of the policy language that are written as strings: timestamps, IPs, CIDRs, globs.

Shared by the validator (to reject bad literals early) and every evaluator (for request values),
so that a literal and a request value are read by exactly the same rules.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timezone

_RFC3339 = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})\Z",
    re.ASCII,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_timestamp(text: str) -> int:
    """RFC 3339 text (with an offset) -> microseconds since the epoch; ValueError if invalid."""
    match = _RFC3339.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"`{text}` is not an RFC 3339 timestamp with a time zone")
    date, clock, fraction, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    if int(offset[4:]) > 59:  # Python would read `+00:60` as one hour; RFC 3339 does not
        raise ValueError(f"`{text}` is not a valid timestamp: offset minutes must be 00-59")
    try:  # Python reads at most 6 fractional digits: nanoseconds are truncated
        moment = datetime.fromisoformat(f"{date}T{clock}.{(fraction or '')[:6]:0<6}{offset}")
    except ValueError as exc:
        raise ValueError(f"`{text}` is not a valid timestamp: {exc}") from None
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_network(text: str) -> IPNetwork:
    """`10.0.0.0/8` or `2001:db8::/32` (host bits must be zero); ValueError if invalid."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"`{text}` is not a CIDR range such as `10.0.0.0/8`")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ValueError(f"`{text}` is not a CIDR range: {exc}") from None


def parse_address(text: str) -> IPAddress:
    """An IPv4 or IPv6 address in text; ValueError if invalid."""
    if not isinstance(text, str):
        raise ValueError("an IP address must be a string")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"`{text}` is not an IP address") from None


def glob_match(text: str, pattern: str) -> bool:
    """`*` matches any run of characters, `?` exactly one; everything else is literal.

    Greedy two-pointer matching: O(len(text) * len(pattern)) at worst, no backtracking blow-up.
    """
    t = p = 0
    star_p, star_t = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star_p, star_t = p, t
            p += 1
        elif p < len(pattern) and (pattern[p] == "?" or pattern[p] == text[t]):
            t += 1
            p += 1
        elif star_p >= 0:
            star_t += 1
            t, p = star_t, star_p + 1
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def is_unicode(text: str) -> bool:
    """Whether `text` is valid Unicode: no half of a surrogate pair (`"\\ud800"` in JSON
    decodes to one), which UTF-8, and so JSON output, cannot hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


MAX_EXACT_INTEGER = 2**53 - 1  # numbers compare as doubles; past this, integers round


def is_exact_number(value: int) -> bool:
    """Whether an integer is one a double holds exactly (|value| <= 2^53 - 1)."""
    return abs(value) <= MAX_EXACT_INTEGER
