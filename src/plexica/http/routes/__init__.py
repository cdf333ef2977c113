"""Core API route tables, one module per area."""
