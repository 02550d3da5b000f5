"""The requests ``rmkit serve`` answers, as plain data: each read into conversations and their
prompt records, each answer written from the scorers' results (one dict per conversation, as
:class:`rmkit.scoring.scorer_set.ScorerSet` gives them: ``reward``, ``scores``, ``errors`` when one failed).

- **OpenRLHF** ``POST /get_reward``: ``{"query": [str], "prompts": [str]?, "labels": [...]?}`` →
  ``{"rewards", "scores", "extra_logs": {scorer: [value]}}``, as OpenRLHF 0.11.2 posts and reads it
  (``openrlhf/utils/agent.py``, ``SingleTurnAgentExecutor``). A query is the policy's whole text,
  prompt and reply, rendered with the policy's chat template; it is read back into a conversation
  with that template (:func:`rmkit.data.templates.parse_rendered`). A label is the prompt record
  the verifiers read: a JSON object (or a string holding one) as it is, anything else as its ``answer``.
- **vLLM-style** ``POST /classify``: ``{"model", "input": str | [str], "use_activation"}`` →
  ``{"data": [{"index", "probs": [reward]}]}``, as verl 0.9.1 reads it
  (``verl/experimental/reward_loop/reward_loop.py``: ``output["data"][-1]["probs"][-1]``). An input
  is a conversation rendered with the reward model's template, read back with it.
- **Conversations** ``POST /score``: ``{"conversations": [[{"role", "content"}, ...]], "records": [...]?}``
  → ``{"results": [{"reward", "scores", "errors"?}]}``.

Request shapes are pydantic models, so FastAPI checks types and names the field of a mistake;
what they cannot check (roles, a text that does not read back) raises RecordError naming the field.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from rmkit.conversation import Conversation, RecordError, validate_conversation
from rmkit.data.templates import TemplateShape, parse_rendered


class RewardRequest(BaseModel):
    """OpenRLHF's remote reward request."""

    query: list[str] = Field(min_length=1, description="prompt and reply as the policy's chat template renders them")
    prompts: list[str] | None = Field(None, description="the prompt part of each query (not needed: the query holds it)")
    labels: list[Any] | None = Field(None, description="per query: the prompt record the verifiers read, or its answer")


class ClassifyRequest(BaseModel):
    """vLLM's pooling ``/classify`` request; other vLLM fields are accepted and ignored."""

    model: str | None = None
    input: Any = Field(description="a conversation rendered with the reward model's chat template, or a list of them")
    use_activation: bool | None = Field(None, description="ignored: probs hold the raw reward, as vLLM's for a regression head")


class ScoreRequest(BaseModel):
    """Conversations to score, with the prompt records their verifiers and functions read."""

    conversations: list[list[dict[str, Any]]] = Field(min_length=1, description="each ends with the assistant reply to score")
    records: list[dict[str, Any]] | None = Field(None, description="one prompt record per conversation (default: {})")


@dataclass
class Items:
    """What a request asks to score: conversations, each with its prompt record."""

    conversations: list[Conversation]
    records: list[dict]
    field: str  # the request's field that holds them, for errors: query, input, conversations


def reward_items(request: RewardRequest, shape: TemplateShape) -> Items:
    """OpenRLHF's queries read back with the policy's template, and their labels as records."""
    count = len(request.query)
    for name in ("prompts", "labels"):
        given = getattr(request, name)
        if given is not None and len(given) != count:
            raise RecordError(f"expected {count}, one per query, got {len(given)}", field=name)
    conversations = [read_back(shape, text, f"query[{i}]", "the policy's") for i, text in enumerate(request.query)]
    labels = request.labels if request.labels is not None else [None] * count
    return Items(conversations, [label_record(label) for label in labels], "query")


def label_record(label: Any) -> dict:
    """A label as a prompt record: a JSON object (or a string of one) as it is; else ``{"answer": label}``;
    None or "" (OpenRLHF's label without ``--data.label_key``): {}."""
    if isinstance(label, str) and label.lstrip().startswith("{"):
        try:
            label = json.loads(label)
        except json.JSONDecodeError:
            pass
    if isinstance(label, dict):
        return label
    return {} if label is None or label == "" else {"answer": label}


def classify_items(request: ClassifyRequest, shape: TemplateShape) -> Items:
    """The inputs read back with the reward model's template (records empty: /classify carries none)."""
    texts = [request.input] if isinstance(request.input, str) else request.input
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        raise RecordError("expected a string or a non-empty list of strings", field="input")
    fields = ["input"] if isinstance(request.input, str) else [f"input[{i}]" for i in range(len(texts))]
    conversations = [read_back(shape, text, field, "the reward model's") for text, field in zip(texts, fields)]
    return Items(conversations, [{} for _ in texts], "input")


def score_items(request: ScoreRequest) -> Items:
    """The conversations, checked as any conversation rmkit reads, each ending with a reply."""
    conversations = []
    for i, messages in enumerate(request.conversations):
        conversation = validate_conversation(messages, field_name=f"conversations[{i}]")
        if conversation[-1]["role"] != "assistant":
            last = f"conversations[{i}][{len(messages) - 1}]"
            raise RecordError("the last message must be the assistant reply to score", field=last)
        conversations.append(conversation)
    records = request.records if request.records is not None else [{} for _ in conversations]
    if len(records) != len(conversations):
        raise RecordError(f"expected {len(conversations)}, one per conversation, got {len(records)}", field="records")
    return Items(conversations, records, "conversations")


def read_back(shape: TemplateShape, text: str, field: str, whose: str) -> Conversation:
    try:
        return parse_rendered(shape, text)
    except ValueError as err:
        raise RecordError(f"not a conversation in {whose} chat template: {err}", field=field) from None


# ----------------------------------------------------------------------------- answers


def reward_response(results: list[dict], names: list[str]) -> dict:
    """OpenRLHF's answer: the weighted sum as rewards and scores, each scorer's values in extra_logs
    (which OpenRLHF logs), and per query the errors of scorers that failed when any did."""
    rewards = [result["reward"] for result in results]
    answer = {"rewards": rewards, "scores": rewards, "extra_logs": {name: [r["scores"][name] for r in results] for name in names}}
    if any("errors" in result for result in results):
        answer["errors"] = [result.get("errors") for result in results]
    return answer


def classify_response(results: list[dict], model: str, tokens: int) -> dict:
    """vLLM's classification answer, one class: probs[0] is the reward."""
    data = []
    for index, result in enumerate(results):
        item = {"index": index, "label": "reward", "probs": [result["reward"]], "num_classes": 1}
        if "errors" in result:
            item["errors"] = result["errors"]
        data.append(item)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    answer_id = f"classify-{uuid.uuid4().hex}"
    return {"id": answer_id, "object": "list", "created": int(time.time()), "model": model, "data": data, "usage": usage}


def score_response(results: list[dict]) -> dict:
    return {"results": results}
