"""`driftline serve`: the OTLP receiver (HTTP and gRPC) in front of the store."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from driftline.collector import _config
from driftline.collector._errors import StoreUnavailable

from ._common import handle_errors, store_option

_MIB = 1 << 20


def _token(token: str | None, token_file: Path | None) -> str | None:
    """--token, else --token-file's first line, else $DRIFTLINE_SERVE_TOKEN; never logged."""
    if token and token_file:
        raise click.BadParameter("give --token or --token-file, not both")
    if token_file is not None:
        token = token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise click.BadParameter(f"{token_file} is empty", param_hint="--token-file")
    return token or None


@click.command("serve")
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the OTLP receivers listen on (0.0.0.0 for every interface).")
@click.option("--http-port", type=click.IntRange(0, 65535), default=4318, show_default=True, help="OTLP/HTTP port (0 picks a free one).")
@click.option("--grpc-port", type=click.IntRange(-1, 65535), default=4317, show_default=True, help="OTLP/gRPC port (0 picks one, -1 turns gRPC off).")
@click.option("--query-port", type=click.IntRange(-1, 65535), default=8124, show_default=True,
              help="Read-only ClickHouse HTTP endpoint for an embedded store, on 127.0.0.1 (0 picks one, -1 off).")
@click.option("--token", envvar=_config.DRIFTLINE_SERVE_TOKEN, default=None, metavar="SECRET",
              help=f"Require `Authorization: Bearer SECRET` (and SECRET as the query endpoint's password). Also ${_config.DRIFTLINE_SERVE_TOKEN}.")
@click.option("--insecure", is_flag=True, help="Allow --host beyond loopback without a token (serve refuses to start otherwise).")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Read the token from this file (keeps it out of `ps`).")
@click.option("--spool-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where acknowledged batches wait for the store. Default: next to the embedded store, else ./.driftline/spool.")
@click.option("--spool-max-mb", type=click.IntRange(min=1), default=1024, show_default=True, help="Backlog size past which requests get 503 + Retry-After.")
@click.option("--max-body-mb", type=click.IntRange(min=1), default=16, show_default=True, help="Largest request body as sent (413 beyond).")
@click.option("--max-decoded-mb", type=click.IntRange(min=1), default=64, show_default=True, help="Largest body after decompression (413 beyond; bombs stop here).")
@click.option("--max-in-flight", type=click.IntRange(min=1), default=8, show_default=True, help="Requests decoded at once per transport (429 / RESOURCE_EXHAUSTED beyond).")
@click.option("--request-timeout", type=click.FloatRange(min=1), default=30.0, show_default=True,
              help="Seconds from a request's first byte to its whole body, however slowly it arrives (408 beyond).")
@click.option("--max-connections", type=click.IntRange(min=1), default=512, show_default=True, help="Open OTLP/HTTP connections in all (more are closed at once).")
@click.option("--max-connections-per-client", type=click.IntRange(min=1), default=128, show_default=True,
              help="Open OTLP/HTTP connections from one client address (more are closed at once).")
@click.option("--inserters", type=click.IntRange(1, 8), default=None,
              help="Groups inserted at once. Default: 1 for an embedded store (it shares this process's memory), 2 for a server.")
@click.option("--max-value-chars", type=click.IntRange(min=16), default=65536, show_default=True, help="Attribute values, bodies and names are cut to this many characters.")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True, help="Seconds SIGTERM waits for the spool to reach the store.")
@click.option("--fault-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Outage drill: while this file exists the writer treats the store as down (batches wait in the spool).")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write {pid, ports, query_url} as JSON here once listening (for supervisors and tests).")
@click.option("--replay-dead-letters", is_flag=True,
              help="At start, put the batches the store refused (SPOOL_DIR/dead-letter) back into the spool, to retry them.")
@click.option("--query-timeout", type=click.IntRange(min=1), default=30, show_default=True,
              help="Seconds a query on the query endpoint may run (a request can ask for less, never more).")
@click.option("--query-max-memory-mb", type=click.IntRange(min=16), default=512, show_default=True,
              help="Memory a query on the query endpoint may use (a request can ask for less, never more).")
@click.option("--query-max-result-mb", type=click.IntRange(min=1), default=32, show_default=True,
              help="Result size (uncompressed blocks) a query on the query endpoint may return (a request can ask for less, never more).")
@click.option("--allow-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Also answer the query endpoint for this Host/Origin name (default: loopback names only). Repeatable.")
@click.option("--redaction", "redaction_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help=f"Redaction policy (TOML) applied before the spool. Default: ${_config.DRIFTLINE_REDACTION}, else the built-in "
                   "detectors over content attributes, span events and log bodies.")
@click.option("--no-redaction", is_flag=True, help="Store content exactly as sent (no masking at all).")
@click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True, help="Log lines on stderr.")
@handle_errors
def serve_command(store_url: str | None, host: str, http_port: int, grpc_port: int, query_port: int, token: str | None,
                  insecure: bool, token_file: Path | None, spool_dir: Path | None, spool_max_mb: int, max_body_mb: int, max_decoded_mb: int,
                  max_in_flight: int, request_timeout: float, max_connections: int, max_connections_per_client: int,
                  inserters: int | None, max_value_chars: int, drain_timeout: float, fault_file: Path | None,
                  ready_file: Path | None, replay_dead_letters: bool, query_timeout: int, query_max_memory_mb: int,
                  query_max_result_mb: int, allowed_hosts: tuple[str, ...], redaction_file: Path | None, no_redaction: bool,
                  log_format: str) -> None:  # fmt: skip
    """Receive OTLP traces and logs (HTTP :4318, gRPC :4317) into the store.

    Every acknowledged batch is on disk first (spool, fsynced), so a store outage, a restart or
    kill -9 loses nothing; replays do not duplicate rows. Past the spool limit clients get 503 /
    UNAVAILABLE with Retry-After, which the OTel exporters retry. Metrics are refused with an
    OTLP partial success. With an embedded store, other commands read through the query
    endpoint while this runs: --store http://127.0.0.1:8124 (with --token: http://default:SECRET@...);
    it runs reads only, under --query-* limits. Beyond loopback serve needs a token (or --insecure).
    Batches the store keeps refusing are set aside in SPOOL_DIR/dead-letter (--replay-dead-letters).
    Secrets and personal data in content (prompts, completions, tool arguments, event bodies) are
    masked before the spool writes a batch (--redaction FILE for your own policy); /metrics counts
    the values each rule changed. SIGTERM drains the spool, then exits.

    \b
    Example:
      driftline serve                                   # ./.driftline/store, loopback only
      driftline serve --host 0.0.0.0 --token-file /run/secrets/otlp
      driftline serve --redaction redaction.toml        # hash e-mails, drop user.* ...
      OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 python app.py
      driftline db status --store http://127.0.0.1:8124
      curl -s 127.0.0.1:4318/healthz; curl -s 127.0.0.1:4318/metrics
    """
    from driftline.collector.receiver._ingest import IngestLimits
    from driftline.collector.receiver._serve import ServeConfig, run

    if redaction_file is not None and no_redaction:
        raise click.BadParameter("give --redaction FILE or --no-redaction, not both")
    _setup_logging(log_format)
    limits = IngestLimits(spool_bytes=spool_max_mb * _MIB, inserters=inserters, max_value_chars=max_value_chars)
    config = ServeConfig(
        store_url=store_url, host=host, http_port=http_port, grpc_port=grpc_port, query_port=query_port,
        token=_token(token, token_file), spool_dir=spool_dir, limits=limits, max_body=max_body_mb * _MIB,
        max_decoded=max_decoded_mb * _MIB, max_in_flight=max_in_flight, request_seconds=request_timeout,
        max_connections=max_connections, max_connections_per_client=max_connections_per_client, drain_seconds=drain_timeout,
        fault_file=fault_file, ready_file=ready_file, query_timeout_seconds=query_timeout,
        query_max_memory=query_max_memory_mb * _MIB, query_max_result=query_max_result_mb * _MIB, allowed_hosts=frozenset(allowed_hosts), replay_dead_letters=replay_dead_letters,
        insecure=insecure, redaction=False if no_redaction else redaction_file,
    )
    if not run(config):
        raise StoreUnavailable("stopped with batches still in the spool (the store did not take them in time); they go in at the next start")


def _setup_logging(log_format: str) -> None:
    from driftline.collector.receiver._serve import JsonLogFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter() if log_format == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("driftline")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
