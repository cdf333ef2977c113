"""The ``plexica`` command line."""
