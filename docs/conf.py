"""Sphinx configuration: MyST Markdown pages plus autodoc for the SDK and the host API."""

from __future__ import annotations

project = "Plexica"
author = "Plexica developers"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
myst_heading_anchors = 3
nitpicky = False
suppress_warnings = ["myst.header", "myst.xref_missing"]
