"""Caches: the in-process default, Redis, and the views the host builds on either.

Every key is a full key (``tenant:{slug}:...``) and every value is bytes. The host builds one
cache with :func:`create_cache`, enters it on the lifespan's exit stack, and hands plugins a
:class:`PrefixedCache` over it; the permission engine reads through a :class:`RequestCache`, and
the tenant directory through a :class:`LayeredCache` (L1 per process, invalidated over pub/sub).
"""

from __future__ import annotations

from plexica.cache.base import ManagedCache
from plexica.cache.factory import create_cache
from plexica.cache.layered import LayeredCache, RequestCache
from plexica.cache.memory import MemoryCache
from plexica.cache.redis import RedisCache
from plexica.cache.scoped import PrefixedCache

__all__ = [
    "LayeredCache",
    "ManagedCache",
    "MemoryCache",
    "PrefixedCache",
    "RedisCache",
    "RequestCache",
    "create_cache",
]
