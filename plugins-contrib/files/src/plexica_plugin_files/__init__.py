"""The files plugin: workspace-scoped attachments, uploaded and downloaded through presigned URLs."""

from __future__ import annotations

from plexica_plugin_files.plugin import FilesPlugin

__all__ = ["FilesPlugin"]
