"""Serve a whole Serverless Devs project: ``s.yaml`` → functions, custom domains, a router.

``load_project`` reads either edition into plain specs (``spec.py``); :class:`Router` serves
one trigger stack per function behind FC's default endpoint and the custom domains
(fc-spec-runtime sections 18 and 19).
"""

from .describe import describe_project
from .loader import load_project
from .router import Router
from .spec import DomainSpec, Endpoint, FunctionSpec, Project, RewriteConfig, RouteSpec

__all__ = [
    "DomainSpec",
    "Endpoint",
    "FunctionSpec",
    "Project",
    "RewriteConfig",
    "RouteSpec",
    "Router",
    "describe_project",
    "load_project",
]
