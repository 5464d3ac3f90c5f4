"""Prometheus metrics of one gateway (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class GatewayMetrics:
    """Counters, gauges and per-stage latency histograms (each connection's ``observe`` feeds them)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions_active = Gauge("gateway_sessions_active", "Streaming sessions now running", registry=r)
        self.sessions_started = Counter("gateway_sessions_started", "Sessions started", registry=r)
        self.sessions_refused = Counter("gateway_sessions_refused", "Sessions refused", ["reason"], registry=r)
        self.audio_seconds = Counter("gateway_audio_seconds", "Seconds of audio received", registry=r)
        self.errors = Counter("gateway_errors", "Error messages sent, by code", ["code"], registry=r)
        self.stage_seconds = Histogram("gateway_stage_seconds", "Time per pipeline stage", ["stage"],
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("gateway_queue_depth", "Requests waiting for a model worker", ["worker"], registry=r)
        self.busy_lanes = Gauge("gateway_worker_busy_lanes", "A model worker's lanes running a request now "
                                "(of gateway_worker_lanes)", ["worker"], registry=r)
        self.lanes = Gauge("gateway_worker_lanes", "Requests a model worker can run at once", ["worker"], registry=r)
        self.models_loaded = Gauge("gateway_models_loaded", "1 once the models are loaded", registry=r)

    def observe(self, stage: str, seconds: float) -> None:
        self.stage_seconds.labels(stage).observe(seconds)

    def watch_workers(self, workers: dict[str, object]) -> None:
        """Export each worker's pending count and busy lanes, read at scrape time, and its lanes."""
        for name, worker in workers.items():
            self.queue_depth.labels(name).set_function(lambda w=worker: w.pending)
            self.busy_lanes.labels(name).set_function(lambda w=worker: w.running)
            self.lanes.labels(name).set(worker.lanes)
        self.models_loaded.set(1)

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
