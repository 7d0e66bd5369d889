"""`driftline serve`: OTLP over HTTP and gRPC, decoding, the durable spool, ingest, the query endpoint.

The receiver runs as its own process and writes through the store; it may import the store and
the collector's shared modules (_errors, _config, _names), never the hooks or the analyzers.
"""
