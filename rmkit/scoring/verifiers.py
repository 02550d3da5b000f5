"""Built-in verifiers: exact checks of a reply against fields of its prompt record.

- ``ifeval`` / ``ifeval_loose``: the record carries IFEval's own fields,
  ``instruction_id_list`` and ``kwargs`` (one dict per instruction); the score is the
  fraction of instructions followed, strict or loose as IFEval defines them (loose also
  accepts the reply without its first and/or last line, or without ``*``). The checkers are
  Google's IFEval checkers as packaged by ``if-verifiable`` (Apache-2.0): they run offline
  and build their own instruction texts (:func:`build_constraints`). Two of its 25
  checkers, ``change_case:capital_word_frequency`` and ``length_constraints:number_sentences``,
  need NLTK's punkt_tab data, which an offline machine lacks (:data:`NEEDS_NLTK_DATA`).
- ``ifbench``: the same with IFBench's 58 out-of-distribution constraints (AllenAI's checkers
  as ``if-verifiable`` packages them, strict); a few call NLTK data too (:data:`NEEDS_NLTK_DATA`
  names the IFEval ones).
- ``math``: ``math-verify`` compares the reply's final answer with the record's ``answer``
  (1.0 equal, 0.0 not), so ``1/2``, ``0.5`` and ``$\\frac{1}{2}$`` agree.

A user's own scorer is ``module:function``, called as ``function(record, messages)`` and
returning a float. ``record`` is the prompt record's fields (``prompt_id``, ``category`` and
the record's extra fields). A verifier that raises, or returns something other than a finite
number (:func:`as_score`), scores that candidate 0.0 and the error is counted, so one odd
reply never stops a run.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import math
import os
import random
import threading
from collections.abc import Callable, Iterator

from rmkit.conversation import Conversation
from rmkit.errors import ConfigError, MissingDependency
from rmkit.processes import die_with_parent

# Checkers that call nltk.sent_tokenize / word_tokenize, whose punkt_tab data is not on PyPI.
NEEDS_NLTK_DATA = ("change_case:capital_word_frequency", "length_constraints:number_sentences")
VERIFIERS = ("ifeval", "ifeval_loose", "math", "ifbench")
NAMES = {"ifeval": "IFEval", "ifbench": "IFBench"}


def _registry(benchmark: str = "ifeval") -> dict:
    try:
        with _output_to_log():
            registry = importlib.import_module(f"if_verifiable.{benchmark}.instructions_registry")
    except ImportError:
        raise MissingDependency(f"the {benchmark} verifiers need if-verifiable: pip install 'rmkit[verify]'") from None
    return registry.INSTRUCTION_DICT


@contextlib.contextmanager
def _output_to_log():
    """IFBench's checkers call ``nltk.download`` on import, which prints four error lines on a
    machine without network: they go to the log, not the screen."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield
    finally:
        for line in (out.getvalue() + err.getvalue()).splitlines():
            logging.getLogger(__name__).info("%s", line)


def last_user_text(messages: Conversation) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def ifeval_score(record: dict, messages: Conversation, loose: bool = False, benchmark: str = "ifeval") -> float:
    """Fraction of the record's IFEval (or IFBench) instructions the last reply follows."""
    from if_verifiable.common import evaluate_instructions

    ids, kwargs = record.get("instruction_id_list"), record.get("kwargs")
    if not ids:
        raise ValueError("the prompt record has no instruction_id_list")
    if kwargs is None or len(kwargs) != len(ids):
        raise ValueError(f"the prompt record needs kwargs: one mapping per instruction ({len(ids)})")
    registry = _registry(benchmark)
    unknown = [i for i in ids if i not in registry]
    if unknown:  # if-verifiable would skip these silently
        raise ValueError(f"unknown {NAMES[benchmark]} instruction {unknown[0]!r}")
    _, scores = evaluate_instructions(messages[-1]["content"], ids, kwargs, last_user_text(messages), registry)
    return scores.partial_loose if loose else scores.partial_strict


def math_score(record: dict, messages: Conversation) -> float:
    """1.0 when the reply's answer equals the record's ``answer`` (math-verify), else 0.0."""
    try:
        from math_verify import parse, verify
    except ImportError:
        raise MissingDependency("the math verifier needs math-verify: pip install 'rmkit[verify]'") from None
    if record.get("answer") is None:
        raise ValueError("the prompt record has no answer")
    return float(verify(parse(str(record["answer"])), parse(messages[-1]["content"])))


BUILT_IN: dict[str, Callable[[dict, Conversation], float]] = {
    "ifeval": ifeval_score,
    "ifeval_loose": lambda record, messages: ifeval_score(record, messages, loose=True),
    "math": math_score,
    "ifbench": lambda record, messages: ifeval_score(record, messages, benchmark="ifbench"),
}


def as_score(value) -> float:
    """A scorer's value as a float. Anything that is not a finite number (a string, even "0.5";
    None; NaN; an infinity) raises, so the caller counts it as a failed score like an error:
    a NaN would otherwise pass into the reward and make every comparison with it false."""
    if isinstance(value, (str, bytes)) or not hasattr(type(value), "__float__"):
        raise TypeError(f"the scorer returned {type(value).__name__} {value!r:.60}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"the scorer returned {number}, not a finite number")
    return number


def _checked(name: str, record: dict, messages: Conversation) -> tuple[float, str | None]:
    """(score, None), or (0.0, the error) when the check raised."""
    try:
        return as_score(BUILT_IN[name](record, messages)), None
    except MissingDependency:
        raise
    except Exception as err:  # a failed check is a failed candidate, counted by the caller
        return 0.0, f"{type(err).__name__}: {err}"


def _checked_items(items: list[tuple[str, dict, Conversation]]) -> list[tuple[float, str | None]]:
    return [_checked(*item) for item in items]


def load_function(spec: str) -> Callable[[dict, Conversation], float]:
    """``module:function`` → the function (the module is imported from the Python path)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"score.scorers: function {spec!r} is not of the form module:function")
    function = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(function):
        raise ConfigError(f"score.scorers: function {spec!r}: {module_name} has no function {attribute}")
    return function


class VerifierPool:
    """Runs built-in verifiers, in ``workers`` spawned processes (0: in this process).

    Spawned, not forked: the parent may hold vLLM or torch threads that a fork would copy
    half-way through. Called from any thread but the main one (``rmkit serve`` scores in a
    worker thread), the checks always go to a process: math-verify times its parsing with
    ``signal.alarm``, which only a main thread may set.
    """

    def __init__(self, workers: int):
        self.workers, self.executor = workers, None

    def run(self, items: list[tuple[str, dict, Conversation]]) -> list[tuple[float, str | None]]:
        return list(self.submit(items))

    def submit(self, items: list[tuple[str, dict, Conversation]]) -> Iterator[tuple[float, str | None]]:
        """The results of ``items`` in order, as they are read. The pool starts checking at once, so
        the caller can score with a reward model meanwhile; in this process a check runs when read."""
        if not items:
            return iter(())
        if (self.workers < 1 or len(items) < 2) and threading.current_thread() is threading.main_thread():
            return map(_checked, *zip(*items))
        workers = max(self.workers, 1)
        if self.executor is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # The workers die with this process: a killed rmkit leaves no verifier waiting for work.
            self.executor = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent, initargs=(os.getpid(),)
            )
        size = -(-len(items) // (4 * workers))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        return (result for chunk in self.executor.map(_checked_items, chunks) for result in chunk)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown()
            self.executor = None


# --- building IFEval prompts -----------------------------------------------------------


def build_constraints(rng: random.Random, count: int, prompt: str, exclude: tuple[str, ...] = NEEDS_NLTK_DATA) -> dict:
    """``count`` non-conflicting IFEval instructions, each described by its own checker.

    Returns ``{"instruction_id_list", "kwargs", "descriptions"}``; the checkers draw their
    arguments from Python's ``random``, which is seeded from ``rng`` for each one.
    """
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_CONFLICTS, conflict_make

    registry = _registry()
    conflicts = conflict_make({k: set(v) for k, v in INSTRUCTION_CONFLICTS.items()})
    ids, kwargs, descriptions = [], [], []
    for _ in range(count):
        allowed = sorted(k for k in registry if k not in exclude and not any(k in conflicts[i] for i in ids))
        if not allowed:
            break
        instruction_id = rng.choice(allowed)
        checker = registry[instruction_id](instruction_id)
        random.seed(rng.getrandbits(32))
        if instruction_id == "combination:repeat_prompt":
            description = checker.build_description(prompt_to_repeat=prompt)
        else:
            description = checker.build_description()
        ids.append(instruction_id)
        kwargs.append(checker.get_instruction_args() or {})
        descriptions.append(description)
    return {"instruction_id_list": ids, "kwargs": kwargs, "descriptions": descriptions}
