"""FC handler strings (``index.handler``, ``pkg/sub.mod.func``) resolved under a code root.

FC's Python runtime splits the handler at its last dot into module and function; the module
part may hold ``/`` (sub-directories) and ``.`` (packages), and the code root is first on
``sys.path`` (fc-spec-runtime.md 14.1). A handler that cannot be loaded is not a startup crash:
every invocation answers the runtime's error for it (ImportModuleError, UserCodeSyntaxError,
InvalidHandleName, UserCodeError, HandlerNotFound), as FC does, with the traceback in the log.

Several functions in one process (a project) may each have an ``index.py``. Each load runs
with its own code root first on ``sys.path`` and with the modules loaded from *other* code roots
hidden from ``sys.modules``, so ``import index`` and the imports it makes at load time find this
function's files. Afterwards the first function to load a name keeps it in ``sys.modules``;
a later function's module of the same name stays reachable only through its handler. Limits:
an import made later, inside a call, resolves through ``sys.path`` (every code root stays on
it, the latest first) and ``sys.modules``, so it may find another function's module of the same
name; ``pickle`` finds a class only in the module that holds its name in ``sys.modules``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[..., Any]

#: Code roots loaded in this process, so one function's modules can be hidden from another's.
_code_roots: list[str] = []
#: Modules loaded per (code root, dotted name): a function reached through several stacks (a
#: project's default endpoint and custom domains) loads its module once, as one FC instance.
_loaded: dict[tuple[str, str], ModuleType] = {}
_load_lock = threading.Lock()


class HandlerLoadError(Exception):
    """The handler cannot be loaded; the class name is FC's ``errorType``."""


class ImportModuleError(HandlerLoadError):
    pass


class UserCodeSyntaxError(HandlerLoadError):
    pass


class InvalidHandleName(HandlerLoadError):
    pass


class UserCodeError(HandlerLoadError):
    pass


class HandlerNotFound(HandlerLoadError):
    pass


def load_handler(handler: str, code_root: str) -> Handler:
    """Import ``handler`` (``module.function``) from ``code_root``; raise FC's load errors."""
    module_path, dot, name = handler.rpartition(".")
    if not dot or not module_path or not name:
        raise InvalidHandleName(f"Invalid handler '{handler}'")
    module = import_from(module_path, code_root)
    target = getattr(module, name, None)
    if target is None or not callable(target):
        raise HandlerNotFound(f"Handler '{name}' is missing on module '{module_path}'")
    return target  # type: ignore[no-any-return]


def import_from(module_path: str, code_root: str) -> ModuleType:
    """Import ``module_path`` (dots or slashes) with ``code_root`` first on ``sys.path``."""
    root = os.path.abspath(code_root)
    dotted = module_path.replace("/", ".").strip(".")
    with _load_lock:
        loaded = _loaded.get((root, dotted))
        if loaded is not None:
            return loaded
        if root not in _code_roots:
            _code_roots.append(root)
        others = tuple(r + os.sep for r in _code_roots if r != root)
        hidden = {n: m for n, m in list(sys.modules.items()) if _loaded_from(m, others)}
        for n in hidden:
            del sys.modules[n]
        if root in sys.path:
            sys.path.remove(root)
        sys.path.insert(0, root)
        importlib.invalidate_caches()
        try:
            module = _loaded[root, dotted] = importlib.import_module(dotted)
            return module
        except SyntaxError as exc:
            log.error("handler module %r: syntax error", module_path, exc_info=exc)
            raise UserCodeSyntaxError(f"Syntax error in module '{module_path}'") from exc
        except ImportError as exc:
            log.error("handler module %r: cannot import", module_path, exc_info=exc)
            raise ImportModuleError(f"Unable to import module '{module_path}'") from exc
        except Exception as exc:
            log.error("handler module %r: error while loading", module_path, exc_info=exc)
            raise UserCodeError(f"Module initialization error: '{exc}'") from exc
        finally:
            sys.modules.update(hidden)  # the earlier function keeps its names


def _loaded_from(module: ModuleType | None, roots: tuple[str, ...]) -> bool:
    path = getattr(module, "__file__", None)
    return bool(roots) and isinstance(path, str) and path.startswith(roots)
