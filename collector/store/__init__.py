"""The store: connect by URL (chdb:// or http(s)://), versioned migrations and their SQL, status,
and how spans become otel_traces rows.

Everything else reads and writes through here. It imports only the collector's shared modules
(_errors, _config, _names): never the hooks, the receiver or the analyzers.
"""
