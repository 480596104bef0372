"""Command-line scripts of cluscam-bench (result tables, training helpers)."""
