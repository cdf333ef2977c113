"""``python -m plexica.cli``: the same as the ``plexica`` script."""

from __future__ import annotations

from plexica.cli.main import main

main()
