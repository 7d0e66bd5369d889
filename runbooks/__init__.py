"""On-call runbooks (Markdown, package data) and their loader (`_loader.py`); read them with
`driftline runbook`. Imports only the collector's errors.
"""
