"""What ``GET /metrics`` shows, in Prometheus' text format (prometheus_client): requests by
route and status, their latency, the size and time of each scoring call, and the failures of
each scorer. Latency quantiles come from the histograms (``histogram_quantile`` in PromQL):
prometheus_client's Summary keeps no quantiles.
"""

from __future__ import annotations

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    """One registry per server (so servers in one process, as in tests, count apart)."""

    def __init__(self, scorer_names: list[str]):
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        kw = {"registry": self.registry}
        self.requests = Counter("rmkit_serve_requests", "HTTP requests by route and status code", ["route", "status"], **kw)
        self.latency = Histogram(
            "rmkit_serve_request_seconds", "seconds from request to response, by route", ["route"], buckets=LATENCY_BUCKETS, **kw
        )
        self.batch_conversations = Histogram(
            "rmkit_serve_batch_conversations", "conversations per scoring call", buckets=SIZE_BUCKETS, **kw
        )
        self.batch_requests = Histogram("rmkit_serve_batch_requests", "requests per scoring call", buckets=SIZE_BUCKETS, **kw)
        self.batch_seconds = Histogram("rmkit_serve_batch_seconds", "seconds per scoring call", buckets=LATENCY_BUCKETS, **kw)
        self.conversations = Counter("rmkit_serve_conversations", "conversations scored", **kw)
        self.failures = Counter(
            "rmkit_serve_scorer_failures", "conversations a verifier or function failed on, by scorer", ["scorer"], **kw
        )
        for name in scorer_names:
            self.failures.labels(name)  # every scorer shows, at 0 until it fails

    def observe_batch(self, requests: int, conversations: int, seconds: float) -> None:
        self.batch_requests.observe(requests)
        self.batch_conversations.observe(conversations)
        self.batch_seconds.observe(seconds)
        self.conversations.inc(conversations)

    def observe_results(self, results: list[dict]) -> None:
        for result in results:
            for name in result.get("errors", ()):
                self.failures.labels(name).inc()

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def text(self) -> tuple[bytes, str]:
        """The exposition and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
