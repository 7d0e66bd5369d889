"""Grafana dashboards and provisioning files (package data), the code that builds them
(`build.py`) and the checker that runs every panel against a real store (`_check.py`, with the
Grafana macro expander `_grafana_macros.py`); see `driftline dashboards`.

It reads through the store and the runbooks; never the hooks or the receiver.
"""
