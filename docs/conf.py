"""Sphinx configuration: MyST pages, furo, API reference from Google-style docstrings.

The build is nitpicky and warnings are errors (``nox -s docs``). It must pass
offline: the intersphinx inventories are configured, but when they cannot be
fetched the external names they would resolve are listed in ``nitpick_ignore``.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sphinx.util import logging

project = "signalwire-calls"
author = "signalwire-calls contributors"
copyright = "2026, signalwire-calls contributors"
try:
    release = version("signalwire-calls")
except PackageNotFoundError:  # pragma: no cover - building from an uninstalled tree
    release = "0+unknown"
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "bench/*.json", "bench/*.csv", "README*"]

myst_enable_extensions = ["colon_fence", "deflist", "fieldlist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"signalwire-calls {release}"
html_static_path = ["_static"]
html_css_files = ["wrap.css"]  # long code lines wrap instead of scrolling sideways

# -- API reference ------------------------------------------------------------

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
# False: a default is shown as its value (1048576), not as the name of a constant
# (DEFAULT_MAX_BODY_SIZE) or attrs' internals (attr_dict['call'].default).
autodoc_preserve_defaults = False
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True


def _public_module_names() -> None:
    """Give each public class the module users import it from, for the rendered pages.

    Types in signatures and their link titles are printed with ``__module__``, which
    is where a class is defined (``signalwire_calls._models.Call``); the reference
    shows where it is imported from instead. Only this build is affected.
    """
    import importlib  # noqa: PLC0415

    for name in ("signalwire_calls", "signalwire_calls.testing", "signalwire_calls.webhooks"):
        module = importlib.import_module(name)
        for attribute in module.__all__:
            value = getattr(module, attribute)
            if isinstance(value, type) and value.__module__.startswith(f"{name}._"):
                value.__module__ = name


_public_module_names()

# -- Cross-references -----------------------------------------------------------

# The inventories cannot be fetched in an offline build (only PyPI is reachable
# where this project is built). Set SPHINX_INTERSPHINX=1 to use them; otherwise
# the mapping is empty and the external names below are accepted unresolved.
if os.environ.get("SPHINX_INTERSPHINX") == "1":
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "aiohttp": ("https://docs.aiohttp.org/en/stable", None),
        "attrs": ("https://www.attrs.org/en/stable", None),
    }
else:
    intersphinx_mapping = {}
intersphinx_timeout = 5

# The optional engines of signalwire_calls.dask and .arrow: the docs build without them.
autodoc_mock_imports = ["dask", "distributed", "pandas", "pyarrow"]

nitpicky = True
# Names from the standard library and dependencies: resolved by intersphinx when it
# is on, accepted as plain text when it is off.
_MODULES = (
    "aiohttp|yarl|multidict|attrs|cattrs|ssl|datetime|decimal|asyncio|collections|typing|"
    "types|enum|random|contextvars|email|json|os|pathlib|io|uuid|hmac|starlette|fastapi|web|"
    "logging|opentelemetry|dask|distributed|pandas|pyarrow|pa|pd|db|dd"
)
_CLASSES = (
    "Decimal|datetime|Path|Mapping|Sequence|Iterable|AsyncIterable|AsyncIterator|"
    "AsyncGenerator|Awaitable|Callable|Coroutine|Any|Self|TracebackType|SSLContext|"
    "ClientSession|ClientRequest|ClientResponse|URL|Random|Event|Server|BaseRequest|"
    "StreamResponse|Response|RequestHandler|Attribute|ContextVar|ClientHandlerType|"
    "NamedTuple|Generic|StrEnum|TypeVar|Counter|date|time|timedelta|UUID|Request|"
    "TracerProvider|MeterProvider"
)
_BUILTINS = (
    "str|int|float|bool|bytes|None|object|list|dict|tuple|set|frozenset|type|Exception|"
    "BaseException|ValueError|TypeError|TimeoutError|KeyboardInterrupt|ResourceWarning|"
    "OSError|RuntimeError|NotImplemented|Ellipsis"
)
nitpick_ignore_regex = [
    (r"py:.*", rf"({_MODULES})(\..*)?"),
    (r"py:class", rf"({_CLASSES})"),
    (r"py:(class|exc|obj|data|func|meth)", rf"({_BUILTINS})"),
    # Type variables and private helpers that appear in signatures and docstrings.
    (r"py:(class|obj|func)", r"(K|V|T|fan_out|signalwire_calls\._.*|_.*)"),
]


# -- Pages written by other tools -------------------------------------------------

#: Pages the benchmark run and the security review write; until they exist, the
#: index's toctree leaves them out instead of failing the build.
LATE_PAGES = ("performance", "security")
_log = logging.getLogger(__name__)


def _drop_missing_pages(app: Any, docname: str, source: list[str]) -> None:
    if docname != root_doc:
        return
    for page in LATE_PAGES:
        if not (Path(app.srcdir) / f"{page}.md").exists():
            _log.info("docs/%s.md does not exist yet: left out of the toctree", page)
            source[0] = source[0].replace(f"\n{page}\n", "\n")


def setup(app: Any) -> dict[str, Any]:
    """Register the hook that leaves not-yet-written pages out of the index."""
    app.connect("source-read", _drop_missing_pages)
    return {"parallel_read_safe": True}
