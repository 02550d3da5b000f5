"""Chat with a model in the terminal; with a reward model, each reply is the best of N.

    rmkit chat --model PATH_OR_NAME [--reward-model PATH --n 4] [--system TEXT]

:class:`ChatSession` holds one chat as plain data (system prompt, turns, N, the last
turn's ranked candidates) and runs the slash commands; the web UI keeps one per browser
tab. :class:`Responder` holds the models: it fits the conversation into the policy's
token budget (oldest turns dropped first, never the system prompt or the current turn),
samples, and ranks the candidates with the reward model. :func:`chat_loop` is the
terminal around both.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TextIO

from rmkit.config.command_line import positive_int
from rmkit.conversation import Conversation, message, reply_message, turn_message
from rmkit.processes import engine_environment

COMMANDS = {
    "/reset": "forget the conversation (the system prompt stays)",
    "/system TEXT": "set the system prompt (without TEXT: remove it)",
    "/n K": "candidates per turn (with a reward model)",
    "/show": "the last turn's candidates, best first, with their rewards",
    "/save FILE": 'write the conversation to FILE as {"messages": [...]}',
    "/exit": "leave (Ctrl-D too)",
}

ENGINE_PROCESS = "VLLM_ENABLE_V1_MULTIPROCESSING"  # 0: vLLM's engine in this process


class ChatExit(Exception):
    """Raised by the ``/exit`` command."""


@dataclass
class ScoredReply:
    """One of a turn's N sampled replies, with its reward."""

    text: str
    reward: float | None = None  # None: no reward model, or it could not score this reply


@dataclass
class Reply:
    """The answer to one user turn."""

    candidates: list[ScoredReply]  # best first
    dropped_turns: int = 0  # oldest exchanges left out to fit the token budget
    cut_tokens: int = 0  # then tokens cut from the left of the prompt

    @property
    def best(self) -> ScoredReply:
        return self.candidates[0]


# What a session asks for a reply: (conversation ending with the user turn, N) -> Reply.
Respond = Callable[[Conversation, int], Reply]


@dataclass
class ChatSession:
    """One conversation's state; plain data, so the web UI can keep one per browser tab."""

    system: str = ""
    n: int = 4
    ranked: bool = False  # a reward model ranks N candidates; without one each turn has one reply
    messages: Conversation = field(default_factory=list)  # the turns, without the system prompt
    last: Reply | None = None

    def conversation(self) -> Conversation:
        return ([message("system", self.system)] if self.system else []) + self.messages

    def ask(self, text: str, respond: Respond) -> Reply:
        """Answer ``text`` and add the turn.

        The turn is added only once ``respond`` returns, so an interrupted generation
        leaves the conversation as it was.
        """
        reply = respond([*self.conversation(), turn_message(text)], self.n if self.ranked else 1)
        self.messages = [*self.messages, turn_message(text), reply_message(reply.best.text)]
        self.last = reply
        return reply

    def command(self, line: str) -> str:
        """Run one slash command and return what to show; ``/exit`` raises :class:`ChatExit`."""
        name, _, arg = line.strip().partition(" ")
        handlers = {
            "/reset": self._reset,
            "/system": self._system,
            "/n": self._n,
            "/show": self._show,
            "/save": self._save,
            "/exit": self._exit,
            "/help": self._help,
        }
        if name not in handlers:
            return f"unknown command {name}; the commands are:\n{self._help('')}"
        return handlers[name](arg.strip())

    def _reset(self, _: str) -> str:
        self.messages, self.last = [], None
        return "conversation cleared" + (" (the system prompt stays)" if self.system else "")

    def _system(self, text: str) -> str:
        self.system = text
        return f"system prompt: {text}" if text else "system prompt removed"

    def _n(self, arg: str) -> str:
        try:
            self.n = positive_int(arg)
        except argparse.ArgumentTypeError as err:
            return f"/n: {err}"
        return f"{self.n} candidates per turn" + ("" if self.ranked else " (once a reward model ranks them: see --reward-model)")

    def _show(self, _: str) -> str:
        if self.last is None:
            return "no candidates yet: say something first"
        return format_candidates(self.last.candidates)

    def _save(self, path: str) -> str:
        from rmkit.atomic_files import write_json
        from rmkit.selection.exports import sft_record

        if not path:
            return "/save needs a file name"
        write_json(path, sft_record(self.conversation()))
        return f"saved {len(self.conversation())} messages to {path}"

    def _exit(self, _: str) -> str:
        raise ChatExit

    def _help(self, _: str) -> str:
        width = max(map(len, COMMANDS))
        return "\n".join(f"  {usage.ljust(width)}  {about}" for usage, about in COMMANDS.items())


def format_reward(reward: float | None) -> str:
    return "unscored" if reward is None else f"{reward:+.3f}"


def format_candidates(candidates: list[ScoredReply]) -> str:
    """Numbered candidates with their rewards, in the order given (best first)."""
    return "\n\n".join(f"#{rank}  reward {format_reward(c.reward)}\n{c.text}" for rank, c in enumerate(candidates, 1))


def rank_candidates(texts: list[str], rewards: list[float | None]) -> list[ScoredReply]:
    """Best first (ties keep sampling order); replies the reward model could not score go last."""
    from rmkit.sampling.candidates import rank_all

    return [ScoredReply(texts[i], rewards[i]) for i in rank_all(rewards)]


# ----------------------------------------------------------------------------- the models


class Responder:
    """The policy behind a chat and, optionally, the reward model that ranks its replies."""

    def __init__(self, backend, policy, cfg, scorer=None):
        """``backend``, ``policy`` and ``scorer`` as :mod:`rmkit.sampling` loads them; ``cfg`` is the sample section."""
        self.backend, self.policy, self.cfg, self.scorer = backend, policy, cfg, scorer

    @property
    def ranked(self) -> bool:
        return self.scorer is not None

    def __call__(self, conversation: Conversation, n: int, on_text: Callable[[str], None] | None = None) -> Reply:
        """Reply to ``conversation`` (ending with a user turn).

        Without a reward model one reply is streamed to ``on_text``; with one, ``n``
        candidates are sampled together and ranked.
        """
        from rmkit.data.encode import encode_prompt

        encoded = encode_prompt(self.policy.tokenizer, conversation, self.policy.budget)
        params = self._params(sum(m["role"] == "user" for m in conversation))
        if self.scorer is None:
            completions = [self.backend.stream(encoded.ids, params, on_text or _discard)]
        else:
            completions = self.backend.generate([encoded.ids], [params], n)[0]
        texts = [c.text.strip() for c in completions]
        # The reward model reads the whole conversation, within its own max_length.
        rewards = self.scorer([[*conversation, reply_message(t)] for t in texts]) if self.scorer else [None]
        return Reply(rank_candidates(texts, rewards), encoded.dropped_turns, encoded.cut_tokens)

    def _params(self, turn: int):
        from rmkit.sampling.generate import gen_params, request_seed

        # Seeded by the recipe and the turn number: a chat replayed after /reset replays.
        return gen_params(self.cfg, self.policy, self.cfg.temperature, request_seed(self.cfg.seed, "chat", turn))


def _discard(_: str) -> None:
    pass


def load_responder(recipe) -> Responder:
    """Load ``recipe.sample.policy`` on ``recipe.sample.backend``, and ``recipe.score.reward_model`` if set."""
    from rmkit.sampling.policy import load_policy
    from rmkit.scoring.reward_models import load_scorer

    loaded = load_policy(recipe.sample, sequences=recipe.sample.n)
    scorer = load_scorer(recipe.score) if recipe.score.reward_model else None
    return Responder(loaded.backend, loaded.policy, recipe.sample, scorer)


# ----------------------------------------------------------------------------- the terminal


def chat_loop(session: ChatSession, respond: Responder, read: Callable[[str], str], out: TextIO) -> None:
    """Answer lines from ``read`` (``input``) on ``out`` until ``/exit`` or end of input (Ctrl-D)."""
    while True:
        try:
            line = read("you> ").strip()
        except EOFError:
            out.write("\n")
            return
        except KeyboardInterrupt:  # Ctrl-C at the prompt: a fresh prompt, as in a shell
            out.write("\n")
            continue
        if not line:
            continue
        if line.startswith("/"):
            try:
                out.write(session.command(line) + "\n")
            except ChatExit:
                return
            continue
        answer(session, respond, line, out)


def answer(session: ChatSession, respond: Responder, text: str, out: TextIO) -> None:
    """Ask one turn and write the reply (streamed when there is no reward model)."""

    def write(piece: str) -> None:
        out.write(piece)
        out.flush()

    write("bot> ")
    try:
        reply = session.ask(text, partial(respond, on_text=write))
    except KeyboardInterrupt:
        write("\n[interrupted: this turn was not added to the conversation]\n")
        return
    if session.ranked:
        write(f"{reply.best.text}\n[reward {format_reward(reply.best.reward)}, best of {len(reply.candidates)}; /show for all]")
    write("\n")
    if reply.dropped_turns or reply.cut_tokens:
        cut = f", then {reply.cut_tokens} tokens cut from its start" if reply.cut_tokens else ""
        write(f"[to fit the model's context: {reply.dropped_turns} oldest turns left out{cut}]\n")


# ----------------------------------------------------------------------------- the verb


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model options ``rmkit chat`` and ``rmkit ui`` share."""
    parser.add_argument("--model", help="the chat model: a folder, hub id or built-in short name (default: sample.policy)")
    parser.add_argument("--reward-model", help="rank N candidates per turn with this reward model (an rmkit training output)")
    parser.add_argument("--n", type=positive_int, help="candidates per turn with --reward-model (default: sample.n, 4)")
    parser.add_argument("--backend", choices=["vllm", "transformers"], help="generation backend (default: sample.backend)")
    parser.add_argument("--recipe", help="a recipe YAML for the sample and score settings (temperature, max_tokens, ...)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="recipe overrides, e.g. sample.temperature=0.2")


def chat_recipe(args: argparse.Namespace, default_recipe=None):
    """The recipe (``--recipe``, else ``default_recipe``) with the command line's model options applied."""
    from rmkit.config.recipe import load_recipe
    from rmkit.models.builtin import check_model

    recipe = load_recipe(args.recipe or default_recipe, args.overrides)
    if args.model:
        recipe.sample.policy = args.model
    if args.reward_model:
        recipe.score.reward_model = args.reward_model
    if args.backend:
        recipe.sample.backend = args.backend
    if args.n:
        recipe.sample.n = args.n
    check_model(recipe.sample.policy, "--model" if args.model else "sample.policy")  # before any model loads
    if recipe.score.reward_model:
        check_model(recipe.score.reward_model, "--reward-model" if args.reward_model else "score.reward_model")
    return recipe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--system", default="", help="system prompt")


def run(args: argparse.Namespace) -> int:
    import readline  # noqa: F401  (line editing and history for input())

    recipe = chat_recipe(args)
    # Ctrl-C reaches every process of the terminal's group, and vLLM's engine process shuts
    # down on it; with the engine in this process, Ctrl-C only interrupts the reply.
    with engine_environment(ENGINE_PROCESS, "0"):
        responder = load_responder(recipe)
    session = ChatSession(system=args.system, n=recipe.sample.n, ranked=responder.ranked)
    mode = f"best of {session.n} by reward" if responder.ranked else "one streamed reply per turn"
    print(f"rmkit chat: {mode}; Ctrl-C stops a reply, /help lists the commands, /exit leaves")
    chat_loop(session, responder, input, sys.stdout)
    return 0
