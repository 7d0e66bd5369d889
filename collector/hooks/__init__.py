"""What an app imports: instrument(), release(), llm_call(), scores, confidence, annotations.

Hooks are OpenTelemetry plug-ins (a SpanProcessor, a SpanExporter) and context managers that
run inside the app, so they stay cheap to import. They may import the store (to write spans
straight into it) and the collector's shared modules (_errors, _config, _names); never the
receiver or the analyzers. The public names are re-exported by `driftline.collector`.
"""
