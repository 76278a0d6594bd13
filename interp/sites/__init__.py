"""Attention sites: resolving addresses (``select``) and intercepting the kernel call (``intercept``)."""

from interp.sites.intercept import BackendError, Installation, SDPACall, SiteHooks, check_backend
from interp.sites.select import resolve_sites

__all__ = ["BackendError", "Installation", "SDPACall", "SiteHooks", "check_backend", "resolve_sites"]
