"""The reward service's FastAPI app: routes, access and size checks, and metrics, over a
:class:`Service` (the recipe's scorers, loaded once by :func:`load_service`).

Every request is read into conversations (:mod:`rmkit.apps.serve.protocols`), checked against
``score.max_length``, and scored with other requests' by the :class:`~rmkit.apps.serve.batcher.Batcher`.
Bad input gets a 4xx whose JSON body names the field (``{"error": {"message", "type", "param",
"code"}}``, as vLLM's and OpenAI's servers write errors); the server goes on answering.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from rmkit.apps.serve.batcher import Batcher
from rmkit.apps.serve.metrics import Metrics
from rmkit.apps.serve.protocols import (
    ClassifyRequest,
    Items,
    RewardRequest,
    ScoreRequest,
    classify_items,
    classify_response,
    reward_items,
    reward_response,
    score_items,
    score_response,
)
from rmkit.config.sections import Recipe
from rmkit.conversation import RecordError
from rmkit.data.encode import SpecialTokens, encode_conversation
from rmkit.data.templates import TemplateShape, template_shape
from rmkit.errors import UserError

ROUTES = ("/get_reward", "/classify", "/score", "/health", "/metrics")
OPEN_ROUTES = ("/health",)  # answered without the API key (load balancers, readiness probes)
log = logging.getLogger("rmkit.apps.serve")


@dataclass
class Service:
    """The recipe's scorers, loaded, and how each protocol's texts are read back into conversations."""

    recipe: Recipe
    scorers: object  # a ScorerSet: its reward models, verifiers and functions
    query_shape: TemplateShape | None  # the policy's chat template, for OpenRLHF's queries; None: /get_reward is off
    input_shape: TemplateShape | None  # the reward model's template, for /classify inputs; None: /classify is off
    model_name: str  # what /classify answers as "model"
    off: dict[str, str] = field(default_factory=dict)  # route -> why it is off
    special: dict = field(default_factory=dict)  # reward model name -> its tokenizer's special tokens

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.scorers.specs]

    def token_count(self, items: Items) -> int:
        """Tokens of the conversations as the first reward model reads them, each checked against
        ``score.max_length`` (capped at the positions it reads) for every reward model: a longer one
        is refused, naming it, rather than cut (offline scoring would drop its oldest turns and score what is left)."""
        total = 0
        for n, (name, model) in enumerate(self.scorers.models.items()):
            limit = model.max_length
            if name not in self.special:
                self.special[name] = SpecialTokens.of(model.tokenizer)
            special = self.special[name]
            for i, conversation in enumerate(items.conversations):
                length = len(encode_conversation(model.tokenizer, conversation, sys.maxsize, special))
                if length > limit:
                    where = f" as reward model {name!r} reads it" if len(self.scorers.models) > 1 else ""
                    message = f"{length} tokens{where}, longer than score.max_length={limit}"
                    raise RecordError(message, field=f"{items.field}[{i}]")
                total += length if n == 0 else 0
        return total

    def close(self) -> None:
        self.scorers.close()


def load_service(recipe: Recipe, scorers=None) -> Service:
    """The recipe's scorers (or ``scorers``, already loaded) and the chat templates to read texts back with:
    the policy's (``sample.policy`` / ``sample.tokenizer``) for OpenRLHF, the first reward model's for /classify."""
    from rmkit.sampling.policy import load_policy_tokenizer
    from rmkit.scoring.scorer_set import ScorerSet

    scorers = scorers if scorers is not None else ScorerSet(recipe.score)
    off = {}
    try:
        query_shape = template_shape(load_policy_tokenizer(recipe.sample)[0])
    except (UserError, OSError) as err:
        query_shape = None
        off["/get_reward"] = f"OpenRLHF's queries are read back with the policy's chat template, which did not load: {err}"
    models = list(scorers.models.items())
    try:
        input_shape = template_shape(models[0][1].tokenizer) if models else query_shape
    except UserError as err:
        input_shape = None
        off["/classify"] = f"/classify inputs are read back with the reward model's chat template: {err}"
    if input_shape is None and "/classify" not in off:
        off["/classify"] = off["/get_reward"]
    name = next((spec.reward_model for spec in scorers.specs if spec.reward_model), "rmkit")
    return Service(recipe, scorers, query_shape, input_shape, name, off)


def error_body(status: int, message: str, param: str | None = None) -> dict:
    kinds = {401: "authentication_error", 413: "request_too_large", 500: "internal_error", 503: "unavailable"}
    kind = kinds.get(status, "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": status}}


def error_response(status: int, message: str, param: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param), status_code=status, headers=headers)


def field_name(loc: tuple) -> str:
    """pydantic's error location as the field's name: ("query", 2) -> "query[2]"."""
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


class Gate:
    """ASGI middleware in front of the routes: counts and times every request (by route and
    status), checks the API key (a bearer token) on every route but /health, and refuses bodies
    over ``serve.max_request_bytes`` (413) by their Content-Length or as they stream in."""

    def __init__(self, app, metrics: Metrics, api_key: str | None, max_bytes: int):
        self.app, self.metrics, self.api_key, self.max_bytes = app, metrics, api_key, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began, status = time.perf_counter(), 500

        async def send_counted(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send_counted)
            else:
                await self.app(scope, self.limited(receive), send_counted)
        finally:
            path = scope["path"]
            self.metrics.observe_request(path if path in ROUTES else "other", status, time.perf_counter() - began)

    def refusal(self, scope) -> JSONResponse | None:
        headers = dict(scope["headers"])
        if self.api_key is not None and scope["path"] not in OPEN_ROUTES:
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not secrets.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                message = "a valid API key is needed: send the header 'Authorization: Bearer KEY'"
                return error_response(401, message, headers={"WWW-Authenticate": "Bearer"})
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return self.too_large(int(length))
        return None

    def too_large(self, size: int) -> JSONResponse:
        return error_response(413, self.too_large_message(f"{size} bytes"))

    def too_large_message(self, size: str) -> str:
        return f"{size} is over serve.max_request_bytes={self.max_bytes}: send fewer conversations per request"

    def limited(self, receive):
        received = 0

        async def receive_limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # a body without Content-Length (chunked)
                    raise HTTPException(413, self.too_large_message("the body"))
            return message

        return receive_limited


def build_app(service: Service, api_key: str | None = None) -> FastAPI:
    """The app; ``api_key``: the bearer token every route but /health needs (None: none needed)."""
    serve, score = service.recipe.serve, service.recipe.score
    metrics = Metrics(service.names)
    batcher = Batcher(
        service.scorers, score.batch_size, serve.max_batch_wait, serve.batching, metrics.observe_batch,
        serve.max_batch_conversations,
    )  # fmt: skip

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await batcher.close()

    app = FastAPI(
        title="rmkit serve", summary="rewards from a recipe's reward models, verifiers and functions", lifespan=lifespan,
        strict_content_type=False,  # JSON without a Content-Type header is read as JSON too
    )  # fmt: skip
    app.add_middleware(Gate, metrics=metrics, api_key=api_key, max_bytes=serve.max_request_bytes)
    app.state.metrics, app.state.batcher = metrics, batcher

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, exc: RequestValidationError):
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            reason = first.get("ctx", {}).get("error", "not JSON")
            return error_response(400, f"malformed JSON at character {first['loc'][-1]}: {reason}")
        name = field_name(first["loc"][1:])
        if not name and not isinstance(exc.body, (dict, list)):  # not JSON: sent as a form, or empty
            return error_response(422, "the body must be a JSON object, sent with Content-Type: application/json")
        return error_response(422, f"field {name!r}: {first['msg']}" if name else f"the body: {first['msg']}", name or None)

    @app.exception_handler(RecordError)
    async def bad_record(request, exc: RecordError):
        return error_response(422, str(exc), exc.field or None)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(Exception)
    async def failure(request, exc: Exception):
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error_response(500, f"scoring failed: {type(exc).__name__}: {exc}")

    async def scored(items: Items) -> tuple[list[dict], int]:
        tokens = await asyncio.to_thread(service.token_count, items)
        results = await batcher.score(items.conversations, items.records)
        metrics.observe_results(results)
        return results, tokens

    def check(route: str, count: int, name: str) -> None:
        if route in service.off:
            raise HTTPException(503, service.off[route])
        if count > serve.max_conversations:
            raise HTTPException(413, f"{count} {name} in one request, over serve.max_conversations={serve.max_conversations}")

    @app.post("/get_reward", summary="OpenRLHF's remote reward (--reward.remote_url http://HOST:PORT/get_reward)")
    async def get_reward(request: RewardRequest):
        check("/get_reward", len(request.query), "queries")
        items = await asyncio.to_thread(reward_items, request, service.query_shape)
        results, _ = await scored(items)
        return reward_response(results, service.names)

    @app.post("/classify", summary="vLLM's pooling /classify, as verl's reward loop reads it")
    async def classify(request: ClassifyRequest):
        check("/classify", len(request.input) if isinstance(request.input, list) else 1, "inputs")
        items = await asyncio.to_thread(classify_items, request, service.input_shape)
        results, tokens = await scored(items)
        return classify_response(results, service.model_name, tokens)

    @app.post("/score", summary="conversations in, each one's reward and every scorer's value out")
    async def score_route(request: ScoreRequest):
        check("/score", len(request.conversations), "conversations")
        results, _ = await scored(score_items(request))
        return score_response(results)

    @app.get("/health", summary="200 while the server answers (no API key needed)")
    async def health():
        return {"status": "ok"}

    @app.get("/metrics", summary="Prometheus metrics: requests, latency, batch sizes, scorer failures")
    async def metrics_route():
        content, media_type = metrics.text()
        return Response(content, media_type=media_type)

    return app
