"""Serve a recipe's scorers over HTTP: the reward service that online-RL trainers call.

    rmkit serve RECIPE [section.key=value ...] [--host 127.0.0.1] [--port 5000] [--api-key KEY]

The recipe's ``score`` section — every reward model, verifier and ``module:function`` scorer,
their weights and the weighted sum — answers, encoded exactly as ``rmkit score`` encodes it, so
a served reward equals the offline one for the same conversation. Routes: ``POST /get_reward``
(OpenRLHF's ``--reward.remote_url``), ``POST /classify`` (vLLM's pooling route, as verl reads it),
``POST /score`` (conversations), ``GET /health``, ``GET /metrics`` (Prometheus) and ``/docs``.
Concurrent requests are scored together (:mod:`rmkit.apps.serve.batcher`; ``serve`` section).

Built on FastAPI and uvicorn: they come with vLLM (its OpenAI-compatible server runs on them, as
OpenRLHF's ``serve_rm`` does), so nothing new is installed; FastAPI checks each request against
its model and names the field of a mistake, and serves the OpenAPI page; uvicorn speaks
HTTP/1.1 keep-alive and shuts down cleanly on Ctrl-C. The server listens on 127.0.0.1; any other
``--host`` needs an API key (``--api-key`` or ``$RMKIT_API_KEY``), checked as a bearer token on
every route but /health, as vLLM's server does.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import sys

from rmkit import logs
from rmkit.errors import ConfigError, MissingDependency

DEFAULT_PORT = 5000  # OpenRLHF's serve_rm's, so a trainer's http://localhost:5000/get_reward keeps working


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", metavar="RECIPE", help="a recipe YAML: its score section is served")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides, e.g. score.batch_size=32")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; any other needs --api-key)"
    )
    parser.add_argument(
        "--port", type=port_number, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT}; 0: a free one, printed)"
    )
    parser.add_argument(
        "--api-key", default=os.environ.get("RMKIT_API_KEY"),
        help="the bearer token every route but /health needs (default: $RMKIT_API_KEY); needed beyond 127.0.0.1",
    )  # fmt: skip


def port_number(text: str) -> int:
    """argparse's type for a port: 0 (a free one) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def check_access(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this machine without an API key."""
    from rmkit.apps.ui import is_loopback

    if api_key is not None and not api_key.strip():
        raise ConfigError("--api-key is empty: give a key (or unset RMKIT_API_KEY)")
    if api_key is None and not is_loopback(host):
        raise ConfigError(f"--host {host} serves rewards beyond this machine: give --api-key KEY (or set RMKIT_API_KEY)")


def listen(host: str, port: int) -> socket.socket:
    """The bound socket (before any model loads, so a taken port fails at once)."""
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None


def banner(service, host: str, port: int, api_key: str | None) -> str:
    """What the start-up prints: the URL, the scorers, the trainer settings and a curl to try."""
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    scorers = []
    for spec in service.scorers.specs:
        what = next(f"{kind} {value}" for kind in ("reward_model", "verifier", "function") if (value := getattr(spec, kind)))
        scorers.append(f"{spec.weight:g} x {spec.name} ({what.replace('_', ' ')})")
    auth = ' -H "Authorization: Bearer $RMKIT_API_KEY"' if api_key else ""
    example = '{"conversations": [[{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]]}'
    lines = [
        f"rmkit serve: {url} (Ctrl-C stops){'; API key required' if api_key else ''}",
        f"  reward = {' + '.join(scorers)}",
        f"  OpenRLHF: --reward.remote_url {url}/get_reward"
        + (f" (off: {off})" if (off := service.off.get("/get_reward")) else ""),
        f"  vLLM-style: POST {url}/classify; metrics: {url}/metrics; API page: {url}/docs",
        f"  try: curl -s {url}/score{auth} -H 'Content-Type: application/json' -d {shlex.quote(example)}",
    ]
    if logs.log_file():
        lines.append(f"  log: {logs.log_file()}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from rmkit.config.recipe import load_recipe
    from rmkit.scoring.scorer_set import scorer_specs

    try:
        import uvicorn

        from rmkit.apps.serve.app import build_app, load_service
    except ModuleNotFoundError as err:
        package = (err.name or "").split(".")[0]
        if package not in ("fastapi", "uvicorn", "prometheus_client", "pydantic", "starlette"):
            raise
        raise MissingDependency(f"rmkit serve needs {package}: pip install 'rmkit[serve]'") from err
    recipe = load_recipe(args.recipe, args.overrides)
    check_access(args.host, args.api_key)
    scorer_specs(recipe.score)  # a recipe without scorers fails before anything loads
    sock = listen(args.host, args.port)
    logs.log_file()  # the server's log records (uvicorn's too) go to the log file from here
    print(f"rmkit: loading the scorers of {args.recipe}", file=sys.stderr)
    service = load_service(recipe)
    try:
        app = build_app(service, args.api_key)
        print(banner(service, args.host, sock.getsockname()[1], args.api_key), flush=True)
        # log_config=None: uvicorn's records go to rmkit's log file like every library's (the screen with -v).
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=5))
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn shut down cleanly, then raised the Ctrl-C it had held back
            pass
        print("rmkit serve: stopped", file=sys.stderr)
    finally:
        service.close()
    return 0
