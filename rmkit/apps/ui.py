"""A web app to chat with best-of-N reranking and to browse a sample-and-score run.

    rmkit ui [RUN_DIR] [--model PATH_OR_NAME --reward-model PATH] [--host 127.0.0.1 --port 7860 --auth USER:PASSWORD]

The Chat tab answers each message with the best of N candidates and lists all of them,
ranked, with their rewards (the model side is :class:`rmkit.apps.chat.Responder`); its models
default to the run's recipe (``sample.policy``, ``score.reward_model``). The Run tab reads
a run folder: its prompts, filterable by category; every candidate of a prompt in reward
order; the selected one and the DPO pair (as ``rmkit select`` picks them); and the run's
report plots. It opens only folders inside RUN_DIR (a run, or a folder of runs; without
one, the current folder), the app's *root*, and writes nothing outside it. The page is
served on 127.0.0.1; any other ``--host`` needs ``--auth``.

This module is the verb: its arguments, checks and launch. The app's layout and callbacks
are :mod:`rmkit.apps.ui_app`; the Run tab's data, :mod:`rmkit.apps.run_viewer`.
"""

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from rmkit.apps.chat import add_model_arguments, chat_recipe, load_responder
from rmkit.apps.run_viewer import find_runs, open_run
from rmkit.apps.ui_app import NO_CHAT, build_app
from rmkit.errors import ConfigError, MissingDependency, MissingPath


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", nargs="?", metavar="RUN_DIR",
        help="a sample-and-score run folder, or a folder of runs: the Run tab opens only folders inside it "
        "(default: the current folder)",
    )  # fmt: skip
    add_model_arguments(parser)
    parser.add_argument("--no-chat", action="store_true", help="browse runs only: load no model")
    parser.add_argument("--system", default="", help="system prompt for the chat")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only; any other needs --auth)"
    )
    parser.add_argument("--port", type=int, help="port (default: 7860, or the next free one)")
    parser.add_argument(
        "--auth", metavar="USER:PASSWORD", default=os.environ.get("RMKIT_UI_AUTH"),
        help="log-in for the page (default: $RMKIT_UI_AUTH); needed with a --host other than this machine",
    )  # fmt: skip
    parser.epilog = (
        "The chat's models default to RUN_DIR's recipe (sample.policy, score.reward_model), else to the recipe defaults; "
        "--model, --reward-model and --recipe choose others."
    )


def split_run_dir(args: argparse.Namespace) -> None:
    """``rmkit ui key=value`` (no RUN_DIR): argparse took the override for RUN_DIR; move it back."""
    if args.run_dir and "=" in args.run_dir and not Path(args.run_dir).exists():
        args.overrides.insert(0, args.run_dir)
        args.run_dir = None


def login(host: str, auth: str | None) -> tuple[str, str] | None:
    """Gradio's ``auth`` from ``USER:PASSWORD``; refuses to serve beyond this machine without one."""
    if auth is not None:
        user, colon, password = auth.partition(":")
        if not (user and colon and password):
            raise ConfigError("--auth: expected USER:PASSWORD")
        return user, password
    if not is_loopback(host):
        raise ConfigError(f"--host {host} serves the app beyond this machine: give --auth USER:PASSWORD (or set RMKIT_UI_AUTH)")
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (localhost, 127.0.0.1, ::1): what serves without a log-in or key."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        return False


def check_root(run_dir: str) -> None:
    """RUN_DIR must be a run, or a folder that holds runs; else say what is wrong with it."""
    if not find_runs(Path(run_dir)) or (Path(run_dir) / "run.json").exists():
        open_run(run_dir)  # a missing or malformed folder fails here, not in the browser


def chat_models(args: argparse.Namespace):
    """``(recipe, responder, note)``: the chat's models, by default RUN_DIR's, loaded now; the note
    says why there is no chat (then responder is None)."""
    if args.no_chat:
        return None, None, "The chat is off (`--no-chat`)."
    run_recipe = Path(args.run_dir, "recipe.yaml") if args.run_dir else None
    from_run = run_recipe is not None and run_recipe.exists() and not (args.model or args.reward_model or args.recipe)
    try:
        recipe = chat_recipe(args, run_recipe if run_recipe is not None and run_recipe.exists() else None)
    except MissingPath as err:
        if not from_run:
            raise
        # The run's model paths are relative to where it ran: browse anyway, and say how to chat.
        note = f"No chat: {err}. Start `rmkit ui` where the run was made, or give --model / --reward-model."
        print(f"rmkit: {note}", file=sys.stderr)
        return None, None, note
    ranked = f", ranked by {recipe.score.reward_model}" if recipe.score.reward_model else ""
    print(f"rmkit: loading the chat's models: {recipe.sample.policy}{ranked}", file=sys.stderr)
    return recipe, load_responder(recipe), ""


def run(args: argparse.Namespace) -> int:
    # Gradio reports usage to its makers unless told not to.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    split_run_dir(args)
    try:
        import gradio  # noqa: F401  (before any model loads)
    except ModuleNotFoundError as err:
        raise MissingDependency('rmkit ui needs gradio: pip install -e ".[ui]" (or pip install "gradio>=6,<7")') from err
    auth = login(args.host, args.auth)
    if args.run_dir:
        check_root(args.run_dir)
    recipe, responder, note = chat_models(args)
    n = recipe.sample.n if recipe else 4
    app = build_app(responder, args.run_dir, n=n, system=args.system, chat_note=note or NO_CHAT)
    app.launch(server_name=args.host, server_port=args.port, auth=auth)
    return 0
