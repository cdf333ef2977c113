"""``python -m plexica_sdk.remote MODULE:OBJECT --host-url URL``: see :mod:`plexica_sdk.remote.run`."""

from __future__ import annotations

import sys

from plexica_sdk.remote.run import main

sys.exit(main())
