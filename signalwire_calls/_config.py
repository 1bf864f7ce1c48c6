"""Client settings: validation of every option, and the only reader of ``os.environ``."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import urllib.request
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

import attrs
from yarl import URL

from signalwire_calls._errors import ConfigError

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "Proxy",
    "Settings",
    "env_options",
    "env_proxy",
    "make_proxy",
    "make_settings",
]

#: A Call is about 2 KiB and a page of 1,000 about 2 MiB; anything far larger
#: is refused before it is read into memory.
DEFAULT_MAX_BODY_SIZE: Final = 8 * 1024 * 1024
API_PREFIX: Final = "/api/laml/2010-04-01"
_PATH_SAFE: Final = re.compile(r"[A-Za-z0-9._~-]+")  # RFC 3986 unreserved characters
_EXAMPLE_PROJECT: Final = "3f6c1d2a-8b4e-4c71-9a05-6d2e7b1c9f40"

_ENV_NAMES: Final = {
    "space_url": ("SIGNALWIRE_SPACE_URL", "SIGNALWIRE_SPACE"),
    "project_id": ("SIGNALWIRE_PROJECT_ID", "SIGNALWIRE_PROJECT"),
    "api_token": ("SIGNALWIRE_API_TOKEN", "SIGNALWIRE_TOKEN"),
    "base_url": ("SIGNALWIRE_BASE_URL",),
}


@attrs.frozen(repr=False)
class Settings:
    """Validated connection settings. The token is kept only inside the auth header."""

    project_id: str
    base_url: URL
    authorization: str = attrs.field(repr=False)
    #: What a server could echo back and must never reach a message: the token
    #: and the base64 credential of the Authorization header.
    secrets: tuple[bytes, ...] = attrs.field(repr=False, default=())
    #: The forward proxy every request goes through, or ``None``.
    proxy: Proxy | None = None

    def __repr__(self) -> str:
        return f"Settings(project_id={self.project_id!r}, base_url={str(self.base_url)!r})"


@attrs.frozen(repr=False)
class Proxy:
    """A validated forward proxy: its URL without credentials, and the credentials' header.

    The credentials of the proxy URL go only into ``Proxy-Authorization``, which is
    sent to the proxy alone; they are never shown.
    """

    url: URL
    authorization: str | None = attrs.field(repr=False, default=None)
    #: What must never reach a message: the password and the base64 credential.
    secrets: tuple[bytes, ...] = attrs.field(repr=False, default=())

    def __repr__(self) -> str:
        return f"Proxy({str(self.url)!r})"


def _masked(url: URL) -> str:
    """Return the URL for a message: any user name and password replaced by ``***``."""
    if url.user is None and url.password is None:
        return str(url)
    return str(url.with_user("***").with_password(None))


def make_proxy(value: object, option: str = "proxy") -> Proxy:
    """Validate a proxy URL, ``http://[user:password@]host[:port]``.

    Args:
        value: The URL (a ``str`` or a :class:`yarl.URL`).
        option: What to call it in an error: the option or the variable it came from.

    Raises:
        ConfigError: The URL is not an ``http://`` proxy URL; the message names
            ``option`` and never shows the credentials.
    """
    if not isinstance(value, str | URL):
        raise ConfigError(f"{option} must be a URL such as 'http://proxy.example:3128'")
    try:
        url = URL(value.strip()) if isinstance(value, str) else value
        host = url.host
        url.port  # noqa: B018 - yarl checks the port only when it is read
    except (TypeError, ValueError):
        # The exception may quote the URL, and the URL its password.
        raise ConfigError(
            f"{option} is not a URL: expected 'http://[user:password@]host:port'"
        ) from None
    shown = _masked(url)
    if url.scheme != "http" or not host:
        raise ConfigError(
            f"{option} must be an http:// proxy URL such as 'http://proxy.example:3128', "
            f"got {shown!r} (the tunnel through it to the API is still TLS; "
            "https:// and SOCKS proxies are not supported)"
        )
    if url.path not in {"", "/"} or url.query_string or url.fragment:
        raise ConfigError(f"{option} must not have a path, query or fragment, got {shown!r}")
    user, password = url.user, url.password
    bare = url.with_user(None).with_password(None).with_path("")
    if user is None and password is None:
        return Proxy(url=bare)
    credential = f"{unquote(user or '')}:{unquote(password or '')}"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in credential):  # noqa: PLR2004
        raise ConfigError(f"{option}: the proxy credentials contain control characters")
    secret = base64.b64encode(credential.encode()).decode("ascii")
    secrets = tuple(s.encode() for s in (secret, password or "", unquote(password or "")) if s)
    return Proxy(url=bare, authorization=f"Basic {secret}", secrets=secrets)


def env_proxy(target: URL) -> Proxy | None:
    """Return the proxy the environment names for ``target``, as curl would pick it.

    ``HTTPS_PROXY`` for an ``https://`` target, ``HTTP_PROXY`` for ``http://`` (the
    lower-case names win, and ``HTTP_PROXY`` is ignored in a CGI script: the standard
    library's reading, which aiohttp's ``trust_env`` uses too); none when ``NO_PROXY``
    matches the host. Loopback hosts are not exempt unless ``NO_PROXY`` names them,
    as with aiohttp. Read once, when the client is created.

    Raises:
        ConfigError: The variable holds something that is not an ``http://`` proxy URL.
    """
    scheme = target.scheme or ""
    # The standard library's reading of the variables (lower case wins; HTTP_PROXY is
    # ignored in a CGI script), which aiohttp's trust_env uses too.
    proxies = urllib.request.getproxies()
    value = proxies.get(scheme)
    if not value or _bypassed(target, proxies.get("no", "")):
        return None
    name = next(
        (n for n in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY") if os.environ.get(n)),
        f"{scheme.upper()}_PROXY",
    )
    return make_proxy(value, name)


def _bypassed(target: URL, no_proxy: str) -> bool:
    """Tell whether ``NO_PROXY`` exempts the target: ``*``, its host, or a parent domain.

    Entries are comma-separated; a leading dot is ignored (``.example.com`` and
    ``example.com`` both match ``api.example.com``), and an entry with ``:port``
    matches only that port: curl's rules.
    """
    host = (target.host or "").lower().strip("[]")
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        if not entry:
            continue
        name, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if port and (not port.isdigit() or int(port) != target.port):
            continue
        name = name.lstrip(".").strip("[]")
        if host == name or host.endswith("." + name):
            return True
    return False


def env_options(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the client options that are set in the environment.

    ``SIGNALWIRE_SPACE_URL`` (or ``SIGNALWIRE_SPACE``), ``SIGNALWIRE_PROJECT_ID``
    (or ``SIGNALWIRE_PROJECT``), ``SIGNALWIRE_API_TOKEN`` (or ``SIGNALWIRE_TOKEN``)
    and ``SIGNALWIRE_BASE_URL``; empty variables count as unset.
    """
    env = os.environ if environ is None else environ
    found: dict[str, str] = {}
    for option, names in _ENV_NAMES.items():
        for name in names:
            value = env.get(name, "").strip()
            if value:
                found[option] = value
                break
    return found


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _base_from_space(space_url: str) -> str:
    space = space_url.strip().rstrip("/")
    if "://" not in space:
        if "." not in space and ":" not in space:  # a bare space name: "example"
            space = f"{space}.signalwire.com"
        space = f"https://{space}"
    url = URL(space)
    path = url.path.rstrip("/")
    return str(url.with_path(path if path.endswith("2010-04-01") else path + API_PREFIX))


def _check_base_url(text: str, allow_insecure_http: bool) -> URL:
    try:
        url = URL(text.strip())
    except (TypeError, ValueError) as err:
        raise ConfigError(f"base_url {text!r} is not a URL: {err}") from None
    if url.scheme not in ("https", "http") or not url.host:
        raise ConfigError(
            f"base_url must be an absolute https:// URL such as "
            f"'https://example.signalwire.com{API_PREFIX}', got {text!r}"
        )
    if url.user or url.password:
        raise ConfigError(
            "base_url must not contain credentials; pass project_id and api_token instead"
        )
    if url.query_string or url.fragment:
        raise ConfigError(f"base_url must not have a query or fragment, got {text!r}")
    if url.scheme == "http" and not (allow_insecure_http or _is_loopback(url.host)):
        raise ConfigError(
            f"Refusing plain http:// to {url.host}: the API token would travel unencrypted. "
            "Use https://, or pass allow_insecure_http=True for a trusted proxy."
        )
    return url.with_path(url.path.rstrip("/") or "/")


def _credential(name: str, value: object, env_name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} is empty: pass {name}=... or set {env_name}")
    text = value.strip()
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):  # noqa: PLR2004
        raise ConfigError(f"{name} contains control characters")
    return text


def make_settings(
    *,
    project_id: Any,
    api_token: Any,
    space_url: str | None,
    base_url: str | None,
    allow_insecure_http: bool = False,
    proxy: object = None,
    trust_env: bool = False,
) -> Settings:
    """Validate the connection options; raise :class:`ConfigError` naming the bad one.

    An explicit ``proxy`` wins over the environment; with ``trust_env`` (and no
    ``proxy``), the environment's proxy for the API's URL is used (:func:`env_proxy`).
    """
    if not isinstance(trust_env, bool):
        raise ConfigError(f"trust_env must be True or False, got {trust_env!r}")
    project = _credential("project_id", project_id, "SIGNALWIRE_PROJECT_ID")
    token = _credential("api_token", api_token, "SIGNALWIRE_API_TOKEN")
    if ":" in project:
        raise ConfigError("project_id must not contain ':' (it is the Basic auth user name)")
    if not _PATH_SAFE.fullmatch(project) or project in {".", ".."}:
        # It becomes a path segment (/Accounts/{project}/Calls): nothing in it may
        # change the request's path or query.
        raise ConfigError(
            f"project_id must be a Project ID such as '{_EXAMPLE_PROJECT}', got {project!r}"
        )
    if base_url is None:
        if not space_url or not space_url.strip():
            raise ConfigError(
                "No space given: pass space_url='example.signalwire.com' (or base_url=...), "
                "or set SIGNALWIRE_SPACE_URL"
            )
        base_url = _base_from_space(space_url)
    url = _check_base_url(base_url, allow_insecure_http)
    secret = base64.b64encode(f"{project}:{token}".encode()).decode("ascii")
    via = make_proxy(proxy) if proxy is not None else env_proxy(url) if trust_env else None
    return Settings(
        project_id=project,
        base_url=url,
        authorization=f"Basic {secret}",
        secrets=(token.encode(), secret.encode(), *(via.secrets if via else ())),
        proxy=via,
    )
