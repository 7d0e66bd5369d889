"""Labelled incident scenarios and the scoring of detection and attribution on them.

Scenario worlds are simulated apps: they may write through the hooks or the store. The scoring
calls the analyzers' public functions, as an on-call engineer would.
"""
