"""On-call runbooks (Markdown), shipped as package data; read them with `driftline runbook`."""
