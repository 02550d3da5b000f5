"""`rmkit serve`: a real server on a free loopback port, with tiny models, driven by the clients' own code.

The reward model is the tiny Llama with a score head and its own template (plain); the policy
whose text OpenRLHF sends is the tiny Llama with chatml. Served rewards are compared with what
`rmkit score` writes for the same conversations: exactly, when both score the same batch.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import pytest

from rmkit.apps.serve.batcher import Batcher
from rmkit.apps.serve.protocols import (
    ClassifyRequest,
    RewardRequest,
    ScoreRequest,
    classify_items,
    label_record,
    reward_items,
    score_items,
)
from rmkit.config.recipe import load_recipe
from rmkit.config.sections import ServeConfig
from rmkit.conversation import RecordError, message
from rmkit.data.templates import TEMPLATES, parse_rendered, render, template_shape
from rmkit.errors import ConfigError
from tests.conftest import REPO

CONVERSATION = [
    message("system", "Be brief."),
    message("user", "What is the capital of France?"),
    message("assistant", "Paris."),
    message("user", "And of the sea?"),
    message("assistant", "The sea is blue and wide."),
]


@pytest.fixture(scope="module")
def tokenizer():
    from tests.tiny import build_tokenizer

    return build_tokenizer()


def reply_length(record: dict, messages: list[dict]) -> float:
    """A `module:function` scorer for the test recipe; raises on a reply that says boom."""
    if "boom" in messages[-1]["content"]:
        raise RuntimeError("cannot score this one")
    return len(messages[-1]["content"]) / 10


# ----------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_each_template_reads_back_what_it_renders_and_what_a_policy_generates(tokenizer, name):
    tokenizer.chat_template = TEMPLATES[name]
    shape = template_shape(tokenizer)
    for conversation in (CONVERSATION, CONVERSATION[1:], CONVERSATION[1:3]):
        assert parse_rendered(shape, render(tokenizer, conversation)) == conversation
        # OpenRLHF's query: the generation prompt, the generated reply and the EOS it stopped on, maybe batch pads around it
        generated = render(tokenizer, conversation[:-1], add_generation_prompt=True) + conversation[-1]["content"]
        for text in (generated, generated + tokenizer.eos_token, f"<|endoftext|>{generated}{tokenizer.eos_token}<|endoftext|>"):
            assert parse_rendered(shape, text) == conversation, text
    with pytest.raises(ValueError, match="does not end with a reply"):
        parse_rendered(shape, render(tokenizer, CONVERSATION[1:2]))
    with pytest.raises(ValueError, match="does not start as the chat template starts|the system message does not end"):
        parse_rendered(shape, "Paris is the capital of France.")  # vicuna and plain take any start for a system message


def test_a_left_off_bos_is_put_back(tokenizer):
    """verl strips the BOS from the text it sends; Llama 3's template writes one."""
    tokenizer.chat_template = TEMPLATES["llama-3"]
    tokenizer.bos_token = "<|im_start|>"  # any token: the template writes it first
    try:
        shape = template_shape(tokenizer)
        text = render(tokenizer, CONVERSATION[1:3])
        assert text.startswith("<|im_start|>") and parse_rendered(shape, text.removeprefix("<|im_start|>")) == CONVERSATION[1:3]
    finally:
        tokenizer.bos_token = None


def test_labels_are_the_records_verifiers_read():
    ifeval = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    assert label_record(json.dumps(ifeval)) == ifeval == label_record(ifeval)
    assert label_record("42") == {"answer": "42"} and label_record(3) == {"answer": 3}
    assert label_record("{not json") == {"answer": "{not json"} and label_record(None) == label_record("") == {}


def test_requests_read_into_conversations_or_a_record_error_naming_the_field(tokenizer):
    tokenizer.chat_template = TEMPLATES["chatml"]
    shape = template_shape(tokenizer)
    query = render(tokenizer, CONVERSATION[1:3])
    items = reward_items(RewardRequest(query=[query, query], labels=["4", None]), shape)
    assert items.conversations == [CONVERSATION[1:3]] * 2 and items.records == [{"answer": "4"}, {}]
    with pytest.raises(RecordError, match="field 'labels': expected 2, one per query, got 1"):
        reward_items(RewardRequest(query=[query, query], labels=["4"]), shape)
    with pytest.raises(RecordError, match=r"field 'query\[1\]': not a conversation in the policy's chat template"):
        reward_items(RewardRequest(query=[query, "plain text"]), shape)
    assert classify_items(ClassifyRequest(input=query), shape).conversations == [CONVERSATION[1:3]]
    for bad in ([], [1], {"a": 1}):
        with pytest.raises(RecordError, match="field 'input': expected a string or a non-empty list of strings"):
            classify_items(ClassifyRequest(input=bad), shape)
    assert score_items(ScoreRequest(conversations=[CONVERSATION])).conversations == [CONVERSATION]
    with pytest.raises(RecordError, match=r"field 'conversations\[0\]\[1\].role': role must be one of"):
        score_items(ScoreRequest(conversations=[[message("user", "hi"), message("robot", "yes")]]))
    with pytest.raises(RecordError, match=r"field 'conversations\[0\]\[0\]': the last message must be the assistant reply"):
        score_items(ScoreRequest(conversations=[[message("user", "hi")]]))
    with pytest.raises(RecordError, match="field 'records': expected 1, one per conversation, got 2"):
        score_items(ScoreRequest(conversations=[CONVERSATION], records=[{}, {}]))


def fake_scorer(calls: list):
    def score(conversations, records):
        calls.append(len(conversations))
        if any(c[-1]["content"] == "crash" for c in conversations):
            raise RuntimeError("the model fell over")
        return [{"reward": float(len(c[-1]["content"])), "scores": {}} for c in conversations]

    return score


def conversation_with(reply: str) -> list[dict]:
    return [message("user", "q"), message("assistant", reply)]


@pytest.mark.parametrize("batching", [True, False])
def test_waiting_requests_are_scored_together_up_to_the_most_a_call_takes(batching):
    async def main():
        calls = []
        batcher = Batcher(fake_scorer(calls), batch_size=2, max_wait=0.0, batching=batching, most=5)
        batcher.start()
        replies = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff"]
        results = await asyncio.gather(*(batcher.score([conversation_with(r)], [{}]) for r in replies))
        await batcher.close()
        return calls, results

    calls, results = asyncio.run(main())
    assert [r[0]["reward"] for r in results] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # each request gets its own results back
    assert calls == ([5, 1] if batching else [1] * 6)  # every waiting request joins, up to five conversations


@pytest.mark.parametrize("batch_size, calls", [(2, [2]), (1, [1, 1])])
def test_a_call_short_of_the_batch_size_waits_for_more(batch_size, calls):
    """A second request 0.05 s after the first joins it when the call waits (up to 30 s) to fill score.batch_size."""

    async def main():
        made = []
        batcher = Batcher(fake_scorer(made), batch_size=batch_size, max_wait=30.0)
        batcher.start()

        async def later():
            await asyncio.sleep(0.05)
            return await batcher.score([conversation_with("b")], [{}])

        await asyncio.gather(batcher.score([conversation_with("a")], [{}]), later())
        await batcher.close()
        return made

    assert asyncio.run(main()) == calls


def test_a_failed_batch_fails_its_requests_and_the_next_batch_is_scored():
    async def main():
        batcher = Batcher(fake_scorer([]), batch_size=2, max_wait=0.0)
        batcher.start()
        failed = await asyncio.gather(
            *(batcher.score([conversation_with(r)], [{}]) for r in ("crash", "ok")), return_exceptions=True
        )
        after = await batcher.score([conversation_with("fine")], [{}])
        await batcher.close()
        return failed, after

    failed, after = asyncio.run(main())
    assert [type(f).__name__ for f in failed] == ["RuntimeError", "RuntimeError"] and after[0]["reward"] == 4.0


def test_hosts_beyond_this_machine_need_an_api_key():
    from rmkit.apps.serve.verb import check_access

    check_access("127.0.0.1", None)
    check_access("localhost", None)
    check_access("0.0.0.0", "secret")
    with pytest.raises(
        ConfigError, match=r"--host 0.0.0.0 serves rewards beyond this machine: give --api-key KEY \(or set RMKIT_API_KEY\)"
    ):
        check_access("0.0.0.0", None)


def test_serve_settings_are_checked():
    with pytest.raises(ConfigError, match="serve.max_batch_wait must be at least 0, got -1"):
        ServeConfig(max_batch_wait=-1)
    with pytest.raises(ConfigError, match="serve.max_conversations must be at least 1"):
        load_recipe(None, ["serve.max_conversations=0"])


# ----------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def reward_model(tiny_llama, tmp_path_factory):
    """A reward model saved by rmkit (random head): the tiny Llama with the plain template, unlike the policy's chatml."""
    import torch

    from rmkit.config.sections import ModelConfig
    from rmkit.models.classifier import load_tokenizer
    from rmkit.training.reward_model import build_reward_model, save_reward_model

    cfg = ModelConfig(name_or_path=str(tiny_llama), chat_template="plain", force_chat_template=True)
    tokenizer = load_tokenizer(cfg)
    torch.manual_seed(1)
    folder = tmp_path_factory.mktemp("rm")
    save_reward_model(build_reward_model(cfg, None, tokenizer), tokenizer, folder)
    return folder


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    rows = [
        {"id": "a", "messages": [{"role": "user", "content": "What is two plus two?"}], "answer": "4"},
        {"id": "b", "messages": [{"role": "user", "content": "Tell me a story."}], "answer": "once"},
        {
            "id": "c",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How are you?"}],
            "answer": "1/2",
        },
    ]
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(scope="module")
def recipe_file(tiny_llama, reward_model, prompts, tmp_path_factory):
    """A recipe of three weighted scorers: the reward model, the math verifier, a Python function."""
    path = tmp_path_factory.mktemp("recipe") / "recipe.yaml"
    path.write_text(
        f"""
sample: {{policy: {tiny_llama}, backend: transformers, prompts: {prompts}, n: 2, max_tokens: 8, dtype: float32, temperature: 1.0}}
score:
  scorers:
    - {{name: reward, reward_model: {reward_model}}}
    - {{name: math, verifier: math, weight: 0.5}}
    - {{name: length, function: "tests.test_serve:reply_length", weight: 0.1}}
  batch_size: 4
  max_length: 96
  verifier_workers: 1
serve: {{max_batch_wait: 0.0}}
"""
    )
    return path


@pytest.fixture(scope="module")
def service(recipe_file):
    from rmkit.apps.serve.app import load_service

    service = load_service(load_recipe(recipe_file))
    yield service
    service.close()


def free_socket() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


@contextlib.contextmanager
def running(service, api_key=None, **serve):
    """The app on a free loopback port, in uvicorn in a thread; yields its URL. ``serve``: serve-section settings."""
    import dataclasses

    import uvicorn

    from rmkit.apps.serve.app import build_app

    recipe = dataclasses.replace(service.recipe, serve=dataclasses.replace(service.recipe.serve, **serve))
    app = build_app(dataclasses.replace(service, recipe=recipe), api_key)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None))
    sock = free_socket()
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def server(service):
    with running(service) as url:
        yield url


def post(url: str, payload, headers=None, **kwargs):
    import httpx

    return httpx.post(url, json=payload, headers=headers, timeout=120, **kwargs)


def metric(url: str, name: str, headers=None, **labels) -> float:
    """A sample's value from GET /metrics (0 when absent)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", headers=headers).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def offline(service, conversations, records):
    """What the recipe's scorers give these conversations, scored together in one call (as `rmkit score` calls them)."""
    return service.scorers(conversations, records)


@pytest.mark.slow
def test_served_rewards_are_those_rmkit_score_writes(recipe_file, server, tmp_path):
    """`rmkit sample` then `rmkit score` on a run folder; the same conversations and prompt records posted to /score."""
    from rmkit import cli
    from rmkit.sampling.candidates import prompt_record
    from rmkit.sampling.runs import RunFolder

    run = tmp_path / "run"
    assert cli.main(["sample", str(recipe_file), "-o", str(run)]) == 0
    assert cli.main(["score", str(run)]) == 0
    lines = [line for group in RunFolder(run).groups() for line in group]
    answer = post(
        f"{server}/score",
        {"conversations": [line["messages"] for line in lines], "records": [prompt_record(line) for line in lines]},
    )
    assert answer.status_code == 200
    served = answer.json()["results"]
    assert [r["reward"] for r in served] == [line["reward"] for line in lines]  # exactly: the same batches
    assert [r["scores"] for r in served] == [line["scores"] for line in lines]
    assert all(r["reward"] == r["scores"]["reward"] + 0.5 * r["scores"]["math"] + 0.1 * r["scores"]["length"] for r in served)


def load_openrlhf_agent(monkeypatch):
    """OpenRLHF's own agent module (openrlhf/utils/agent.py: SingleTurnAgentExecutor posts to --reward.remote_url).

    ``openrlhf.utils``' package init imports its math grader, whose dependencies a ``--no-deps``
    install lacks; the agent needs only ``openrlhf.utils.logging_utils``, so the two files are loaded by path.
    """
    spec = importlib.util.find_spec("openrlhf")
    if spec is None:
        pytest.skip("OpenRLHF is not installed: pip install --no-deps openrlhf==0.11.2 (make setup does)")
    root = Path(spec.origin).parent / "utils"

    def load(name, path):
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, path))
        module.__spec__.loader.exec_module(module)
        return module

    monkeypatch.setitem(
        sys.modules, "openrlhf.utils.logging_utils", load("openrlhf.utils.logging_utils", root / "logging_utils.py")
    )
    return load("openrlhf_agent_under_test", root / "agent.py")


class FakeEngine:
    """Stands in for OpenRLHF's vLLM engine: the reply to each prompt text, as token ids ending with the EOS."""

    def __init__(self, tokenizer, replies: dict[str, str]):
        self.tokenizer, self.replies = tokenizer, replies

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        reply = self.replies[self.tokenizer.decode(prompt_token_ids)]
        ids = self.tokenizer(reply, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
        return SimpleNamespace(outputs=[SimpleNamespace(token_ids=ids, text=reply, finish_reason="stop", logprobs=None)])


def openrlhf_rollouts(agent, url, policy_tokenizer, questions: dict[str, str], labels: dict[str, str]):
    """OpenRLHF's SingleTurnAgentExecutor.execute for each question, all at once; its outputs."""
    prompts = {
        q: policy_tokenizer.apply_chat_template([message("user", q)], tokenize=False, add_generation_prompt=True)
        for q in questions
    }
    engine = FakeEngine(policy_tokenizer, {prompts[q]: reply for q, reply in questions.items()})
    executor = agent.SingleTurnAgentExecutor(f"{url}/get_reward")
    params = SimpleNamespace(max_tokens=32, logprobs=None)

    async def main():
        return await asyncio.gather(
            *(executor.execute(prompts[q], labels[q], params, 512, policy_tokenizer, engine) for q in questions)
        )

    return asyncio.run(main())


@pytest.fixture(scope="module")
def policy_tokenizer(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


@pytest.mark.slow
def test_openrlhf_gets_the_offline_reward_of_each_rollout(service, server, policy_tokenizer, monkeypatch):
    agent = load_openrlhf_agent(monkeypatch)
    questions = {"What is two plus two?": "The answer is 4.", "Tell me a story.": "Once upon a time there was a small robot."}
    labels = {"What is two plus two?": "4", "Tell me a story.": json.dumps({"answer": "7"})}
    for question, reply in questions.items():  # one at a time: each scored alone, as offline
        (output,) = openrlhf_rollouts(agent, server, policy_tokenizer, {question: reply}, labels)
        (expected,) = offline(
            service, [[message("user", question), message("assistant", reply)]], [label_record(labels[question])]
        )
        assert output["reward"] == [expected["reward"]] and output["scores"] == [expected["reward"]]
        assert output["extra_logs"] == {name: [value] for name, value in expected["scores"].items()}
    assert expected["scores"]["math"] == 0.0 and output["reward"][0] != 0.0  # the story's label is not its answer


def load_verl_disrm():
    """verl's own request and response handling for a discriminative reward model (RewardLoopWorker's
    ``_post_request`` and ``compute_score_disrm``, verl/experimental/reward_loop/reward_loop.py), compiled
    from the installed source: ``import verl`` needs tensordict and Ray, which a ``--no-deps`` install lacks."""
    import aiohttp

    spec = importlib.util.find_spec("verl")
    if spec is None:
        pytest.skip("verl is not installed: pip install --no-deps verl==0.9.1 (make setup does)")
    path = Path(spec.origin).parent / "experimental" / "reward_loop" / "reward_loop.py"
    worker = next(n for n in ast.parse(path.read_text()).body if isinstance(n, ast.ClassDef) and n.name == "RewardLoopWorker")
    wanted = [
        n for n in worker.body if isinstance(n, ast.AsyncFunctionDef) and n.name in ("_post_request", "compute_score_disrm")
    ]
    namespace = {"aiohttp": aiohttp, "asyncio": asyncio, "logger": logging.getLogger("verl"), "DataProto": object}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(path), "exec"), namespace)
    return namespace


@pytest.mark.slow
def test_verl_reads_the_offline_reward_from_classify(service, server, reward_model):
    """verl renders the chat with the reward model's tokenizer, strips its BOS (reward_loop.py
    ``_preprocess_reward_inputs``) and posts it to /classify; it reads ``data[-1].probs[-1]``."""
    from transformers import AutoTokenizer

    disrm = load_verl_disrm()
    rm_tokenizer = AutoTokenizer.from_pretrained(reward_model / "model")
    chat = [message("user", "What is the capital of France?"), message("assistant", "Paris is the capital of France.")]
    rm_prompt = rm_tokenizer.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)

    async def preprocess(data):
        return rm_prompt

    worker = SimpleNamespace(
        config=SimpleNamespace(
            reward=SimpleNamespace(
                reward_model=SimpleNamespace(rollout=SimpleNamespace(name="vllm"), model_path=str(reward_model))
            )
        ),
        reward_router_address=server.removeprefix("http://"),
        _preprocess_reward_inputs=preprocess,
    )
    worker._post_request = partial(disrm["_post_request"], worker)
    score = asyncio.run(disrm["compute_score_disrm"](worker, [None]))
    (expected,) = offline(service, [chat], [{}])
    assert score == {"reward_score": expected["reward"]}


@pytest.mark.slow
def test_the_readme_reward_function_for_verl_scores_through_the_server(service, server):
    """The README's `rmkit_reward.py`, run as verl's naive reward manager calls it (keyword arguments, awaited)."""
    readme = (REPO / "README.md").read_text()
    code = next(block for block in readme.split("```python\n")[1:] if block.startswith("# rmkit_reward.py")).split("```")[0]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    namespace["URL"] = f"{server}/score"
    call = namespace["compute_score"](
        data_source="gsm8k", solution_str="The answer is 4.", ground_truth="4", extra_info={"question": "What is 2+2?"}
    )
    result = asyncio.run(call)
    (expected,) = offline(
        service, [[message("user", "What is 2+2?"), message("assistant", "The answer is 4.")]], [{"answer": "4"}]
    )
    assert result == {"score": expected["reward"], **expected["scores"]} and result["math"] == 1.0


@pytest.mark.slow
def test_concurrent_requests_are_scored_in_one_batch(service, policy_tokenizer, monkeypatch):
    """Eight OpenRLHF rollouts at once, one query per request as OpenRLHF sends them: two scoring calls of
    four (a call waits up to 30 s to fill score.batch_size=4 and takes at most four); batching off, eight calls of one."""
    agent = load_openrlhf_agent(monkeypatch)
    replies = ["yes", "no", "The sea is blue.", "Paris.", "one two three", "a small robot", "thanks", "good"]
    questions = {f"Question {i}: what is one plus {i}?": reply for i, reply in enumerate(replies)}
    labels = {q: str(1 + i) for i, q in enumerate(questions)}
    alone = offline(
        service,
        [[message("user", q), message("assistant", r)] for q, r in questions.items()],
        [label_record(labels[q]) for q in questions],
    )
    assert service.recipe.score.batch_size == 4
    for batching, size in ((True, 4), (False, 1)):
        with running(service, batching=batching, max_batch_wait=30.0, max_batch_conversations=4) as url:
            outputs = openrlhf_rollouts(agent, url, policy_tokenizer, questions, labels)
            assert metric(url, "rmkit_serve_batch_requests_count") == 8 / size
            assert metric(url, "rmkit_serve_batch_requests_bucket", le=str(float(size))) == 8 / size  # every call this size:
            assert metric(url, "rmkit_serve_batch_requests_bucket", le=str(size / 2)) == 0  # none smaller
            assert metric(url, "rmkit_serve_batch_conversations_sum") == 8
            assert metric(url, "rmkit_serve_requests_total", route="/get_reward", status="200") == 8
        assert [o["reward"][0] for o in outputs] == pytest.approx([a["reward"] for a in alone], abs=1e-5)


@pytest.mark.slow
def test_bad_input_gets_a_4xx_naming_the_field_and_the_server_goes_on(server, service):
    import httpx

    good = [message("user", "What is two plus two?"), message("assistant", "4")]
    long_reply = [message("user", "Tell me a story."), message("assistant", "Once upon a time there was a small robot. " * 12)]
    cases = [
        ("/get_reward", b'{"query": ["a", ', 400, None, "malformed JSON at character"),
        ("/get_reward", {"prompts": ["a"]}, 422, "query", "field 'query': Field required"),
        ("/get_reward", {"query": ["a", 3]}, 422, "query[1]", "field 'query[1]': Input should be a valid string"),
        ("/get_reward", {"query": []}, 422, "query", "List should have at least 1 item"),
        ("/get_reward", {"query": ["just text"]}, 422, "query[0]", "not a conversation in the policy's chat template"),
        ("/classify", {"input": []}, 422, "input", "expected a string or a non-empty list of strings"),
        ("/score", {"conversations": "hello"}, 422, "conversations", "Input should be a valid list"),
        (
            "/score",
            {"conversations": [good, [message("user", "hi"), message("bot", "yes")]]},
            422,
            "conversations[1][1].role",
            "role must be one of",
        ),
        ("/score", {"conversations": [good, long_reply]}, 422, "conversations[1]", "tokens, longer than score.max_length=96"),
        (
            "/score",
            {"conversations": [good] * 1025},
            413,
            None,
            "1025 conversations in one request, over serve.max_conversations=1024",
        ),
    ]
    for route, payload, status, param, text in cases:
        answer = httpx.post(
            f"{server}{route}", content=payload if isinstance(payload, bytes) else json.dumps(payload), timeout=60
        )
        assert (answer.status_code, answer.json()["error"]["param"]) == (status, param), (route, payload if status != 413 else "")
        assert text in answer.json()["error"]["message"]
    limit = service.recipe.serve.max_request_bytes
    assert httpx.post(f"{server}/score", content=b" " * (limit + 1)).status_code == 413  # by its Content-Length
    chunks = iter([b'{"conversations": [', b" " * limit, b"]}"])
    assert httpx.post(f"{server}/score", content=chunks).status_code == 413  # streamed, without a Content-Length
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    assert post(f"{server}/score", {"conversations": [good]}).status_code == 200
    assert metric(server, "rmkit_serve_requests_total", route="/score", status="413") == 3


@pytest.mark.slow
def test_a_route_whose_template_did_not_load_answers_503_with_the_reason(service):
    import dataclasses

    off = dataclasses.replace(
        service, query_shape=None, off={"/get_reward": "the policy's chat template did not load: no such model"}
    )
    with running(off) as url:
        answer = post(f"{url}/get_reward", {"query": ["text"]})
        assert (answer.status_code, answer.json()["error"]["message"]) == (
            503,
            "the policy's chat template did not load: no such model",
        )
        assert post(f"{url}/score", {"conversations": [[message("user", "2+2?"), message("assistant", "4")]]}).status_code == 200


@pytest.mark.slow
def test_a_failed_verifier_or_function_is_reported_per_item(server, service):
    conversations = [
        [message("user", "2+2?"), message("assistant", "4")],
        [message("user", "2+2?"), message("assistant", "boom 4")],
    ]
    records = [
        {"answer": "4"},
        {},
    ]  # the second has no answer: the math verifier raises; its reply says boom: the function raises
    before = metric(server, "rmkit_serve_scorer_failures_total", scorer="math")
    results = post(f"{server}/score", {"conversations": conversations, "records": records}).json()["results"]
    assert "errors" not in results[0] and results[0]["scores"]["math"] == 1.0
    assert set(results[1]["errors"]) == {"math", "length"} and "no answer" in results[1]["errors"]["math"]
    assert (
        results[1]["scores"]["math"] == results[1]["scores"]["length"] == 0.0
        and results[1]["reward"] == results[1]["scores"]["reward"]
    )
    assert results == offline(service, conversations, records)  # as `rmkit score` records it
    assert metric(server, "rmkit_serve_scorer_failures_total", scorer="math") == before + 1
    query = "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\nboom 4<|im_end|>"  # the policy's chatml
    assert parse_rendered(service.query_shape, query) == conversations[1]
    answer = post(
        f"{server}/get_reward", {"query": [query], "prompts": ["<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"]}
    ).json()
    assert answer["errors"] == [results[1]["errors"]]
    assert answer["rewards"] == pytest.approx([results[1]["reward"]], abs=1e-6)  # scored alone now, in a batch of two before


@pytest.mark.slow
def test_the_api_key_is_needed_on_every_route_but_health(service):
    good = {"conversations": [[message("user", "2+2?"), message("assistant", "4")]]}
    with running(service, api_key="s3cret") as url:
        import httpx

        assert post(f"{url}/score", good).status_code == 401
        assert post(f"{url}/score", good, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/health").status_code == 200
        assert post(f"{url}/score", good, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert (
            metric(url, "rmkit_serve_requests_total", headers={"Authorization": "Bearer s3cret"}, route="/score", status="401")
            == 2
        )


def rmkit(*args, env=None, **kwargs) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "rmkit.cli", *args], cwd=REPO, env=environment, text=True, **kwargs)


@pytest.mark.slow
def test_off_this_machine_without_a_key_it_refuses_to_start_in_one_line(recipe_file):
    process = rmkit(
        "serve", str(recipe_file), "--host", "0.0.0.0", stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={"RMKIT_API_KEY": ""}
    )
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2 and out == ""
    assert err == "rmkit: error: --api-key is empty: give a key (or unset RMKIT_API_KEY)\n"
    environment = {k: v for k, v in os.environ.items() if k != "RMKIT_API_KEY"}
    process = subprocess.Popen(
        [sys.executable, "-m", "rmkit.cli", "serve", str(recipe_file), "--host", "0.0.0.0"], cwd=REPO, text=True,
        env={**environment, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = process.communicate(timeout=120)
    assert (process.returncode, err) == (
        2,
        "rmkit: error: --host 0.0.0.0 serves rewards beyond this machine: give --api-key KEY (or set RMKIT_API_KEY)\n",
    )


@pytest.mark.slow
def test_the_command_prints_its_url_scorers_and_a_curl_and_stops_on_ctrl_c(recipe_file, tmp_path):
    import httpx

    process = rmkit(
        "serve",
        str(recipe_file),
        "--port",
        "0",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={"RMKIT_CACHE": str(tmp_path)},
    )
    try:
        first = process.stdout.readline()
        assert first.startswith("rmkit serve: http://127.0.0.1:") and first.endswith("(Ctrl-C stops)\n"), first
        url = first.split()[2]
        banner = [process.stdout.readline() for _ in range(5)]
        assert banner[0].strip().startswith("reward = 1 x reward (reward model ") and "0.5 x math (verifier math)" in banner[0]
        assert f"--reward.remote_url {url}/get_reward" in banner[1]
        curl = next(line for line in banner if "curl" in line).split("try: ", 1)[1]
        answer = json.loads(subprocess.run(curl, shell=True, capture_output=True, text=True, check=True).stdout)
        assert isinstance(answer["results"][0]["reward"], float)
        assert httpx.get(f"{url}/health").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in err and err.endswith("rmkit serve: stopped\n")
    log = (tmp_path / "logs" / "serve.log").read_text()
    assert "Application shutdown complete" in log


@pytest.mark.slow
def test_vllm_pooling_gives_rmkits_rewards_for_a_saved_reward_model(reward_model, service, tmp_path):
    """A reward model rmkit saved, in vLLM's pooling runner with its default settings (no use_activation):
    the raw logit, as rmkit scores it, because config.json says problem_type regression. Run in a child
    process: a vLLM engine in the test process would share its torch.distributed state with later ones."""
    pytest.importorskip("vllm", reason="vLLM is not installed")
    chats = [
        [message("user", "What is the capital of France?"), message("assistant", reply)]
        for reply in ("Paris.", "I do not know.", "no no no")
    ]
    tokenizer = service.scorers.models["reward"].tokenizer
    texts = [render(tokenizer, chat) for chat in chats]
    script = f"""
import json, sys
from vllm import LLM
llm = LLM(model={str(reward_model / "model")!r}, runner="pooling", dtype="float32", enforce_eager=True, max_model_len=128)
print("REWARDS", json.dumps([out.outputs.probs[0] for out in llm.classify({texts!r}, use_tqdm=False)]))
"""
    child = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    line = next((line for line in child.stdout.splitlines() if line.startswith("REWARDS ")), None)
    if line is None:
        pytest.skip(f"vLLM's pooling runner did not run here: {(child.stderr.strip().splitlines() or ['no output'])[-1][:300]}")
    expected = [result["scores"]["reward"] for result in offline(service, chats, [{}] * len(chats))]
    assert json.loads(line.split(" ", 1)[1]) == pytest.approx(expected, abs=1e-5)
