"""fc-wsgi: Alibaba Cloud Function Compute HTTP-trigger behaviour for any WSGI app."""

from .auth.gate import AuthGate
from .common import ALL_METHODS, FC_EXPOSE_HEADERS
from .config import ConfigError, TriggerConfig, load_config
from .cors import CorsDefaults
from .dispatch import AsyncDispatcher
from .errors import FcError
from .factory import make_project_app, make_trigger_app
from .headers import HeaderFilter
from .limits import LimitGuard
from .runtime import FunctionRuntime

__all__ = [
    "ALL_METHODS",
    "AsyncDispatcher",
    "FC_EXPOSE_HEADERS",
    "AuthGate",
    "ConfigError",
    "CorsDefaults",
    "FcError",
    "FunctionRuntime",
    "HeaderFilter",
    "LimitGuard",
    "TriggerConfig",
    "load_config",
    "make_project_app",
    "make_trigger_app",
]
