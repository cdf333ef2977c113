"""The HTTP layer: middleware, problem details, core routes, plugin mounts, OpenAPI."""

from __future__ import annotations

from plexica.http.problems import PROBLEM_JSON, problem, problem_for

__all__ = ["PROBLEM_JSON", "problem", "problem_for"]
