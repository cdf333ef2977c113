"""Sphinx configuration: MyST Markdown pages only; the references are generated Markdown (no autodoc)."""

from __future__ import annotations

project = "Plexica"
author = "Plexica developers"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
nitpicky = False
suppress_warnings = ["myst.header", "myst.xref_missing"]
