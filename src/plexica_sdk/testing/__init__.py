"""Test helpers for plugin authors.

Importing this package stays light (no database or web library); the helpers import the host
(``plexica``) when they run, since plugin tests run with the host installed.
"""

from __future__ import annotations

from plexica_sdk.testing.policies import PolicyCase, PolicySubject, PolicyTable, policy_table

__all__ = ["PolicyCase", "PolicySubject", "PolicyTable", "policy_table"]
