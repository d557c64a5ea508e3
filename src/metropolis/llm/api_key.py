"""The API key: read from an environment variable, checked, and never shown.

Why check it: a key copied with a trailing `\\r` or `\\n` makes httpx raise "Illegal header value" with the whole
key in the message. A key is printable ASCII without spaces (every provider's keys are); anything else is
refused with a message that names the variable and the position of the bad character, never the key.

Why warn on plain http: the key travels in the `Authorization` header, readable by anyone on the path, unless
the server is on this machine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def read_api_key(env_var: str | None, env: Mapping[str, str]) -> str | None:
    """The key in `env[env_var]` (None when unset or empty), or a ValueError that never contains it."""
    if env_var is None:
        return None
    key = env.get(env_var) or None
    if key is not None:
        check_api_key(key, env_var)
    return key


def check_api_key(key: str, env_var: str) -> None:
    for position, char in enumerate(key, start=1):
        if not "\x21" <= char <= "\x7e":
            kind = (
                "a control character"
                if char < " " or char == "\x7f"
                else "a space"
                if char == " "
                else ("a non-ASCII character")
            )
            raise ValueError(
                f"the API key in ${env_var} holds {kind} at position {position} of {len(key)}: a key is printable "
                "ASCII without spaces (a copied key often ends in a stray newline); set it again"
            )


def is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_warning(url: str, env_var: str | None, env: Mapping[str, str]) -> str | None:
    """One warning line when a key would go over plain http to another machine; None otherwise."""
    if env_var is None or not env.get(env_var) or not url.startswith("http://") or is_loopback(url):
        return None
    host = urlsplit(url).hostname
    return (
        f"metropolis: warning: the API key in ${env_var} goes to {host} over plain http (unencrypted); "
        "use https, or unset the variable if the server needs no key"
    )
