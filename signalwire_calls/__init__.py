"""An asyncio client for SignalWire call records (Compatibility REST API, Calls).

>>> import signalwire_calls as swc
>>> swc.CallStatus.COMPLETED == "completed"
True
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from signalwire_calls._bulk import BulkProgress
from signalwire_calls._client import CallsClient
from signalwire_calls._errors import (
    APIError,
    AuthenticationError,
    BulkLookupError,
    ConfigError,
    ConnectError,
    DecodeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestTimeoutError,
    ServerError,
    SignalWireError,
    TransportError,
    UnreachableError,
    WaitTimeoutError,
)
from signalwire_calls._models import (
    BulkResult,
    Call,
    CallDirection,
    CallDirectionName,
    CallFound,
    CallResult,
    CallStatus,
    CallStatusName,
    FailedLookup,
    LookupFailure,
    SubresourceUris,
    UnknownValue,
)
from signalwire_calls._retry import RetryPolicy
from signalwire_calls._shards import (
    ShardOptions,
    SidShard,
    WindowShard,
    iter_shard,
    plan_sid_shards,
    plan_window_shards,
    run_shard,
)

try:
    __version__ = version("signalwire-calls")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "APIError",
    "AuthenticationError",
    "BulkLookupError",
    "BulkProgress",
    "BulkResult",
    "Call",
    "CallDirection",
    "CallDirectionName",
    "CallFound",
    "CallResult",
    "CallStatus",
    "CallStatusName",
    "CallsClient",
    "ConfigError",
    "ConnectError",
    "DecodeError",
    "FailedLookup",
    "LookupFailure",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServerError",
    "ShardOptions",
    "SidShard",
    "SignalWireError",
    "SubresourceUris",
    "TransportError",
    "UnknownValue",
    "UnreachableError",
    "WaitTimeoutError",
    "WindowShard",
    "__version__",
    "iter_shard",
    "plan_sid_shards",
    "plan_window_shards",
    "run_shard",
]
