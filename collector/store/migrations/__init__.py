"""Versioned schema migrations (NNNN_name.sql, applied in order by `driftline db migrate`) and the
SQL the materialized views share (package data, read through importlib.resources); no code.
"""
