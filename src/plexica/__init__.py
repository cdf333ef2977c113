"""Plexica: a host for multi-tenant SaaS platforms built from plugins."""
