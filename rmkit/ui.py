"""A web app to chat with best-of-N reranking and to browse a sample-and-score run.

    rmkit ui [RUN_DIR] [--model PATH_OR_NAME --reward-model PATH] [--host 127.0.0.1 --port 7860 --auth USER:PASSWORD]

The Chat tab answers each message with the best of N candidates and lists all of them,
ranked, with their rewards (the model side is :class:`rmkit.chat.Responder`); its models
default to the run's recipe (``sample.policy``, ``score.reward_model``). The Run tab reads
a run folder: its prompts, filterable by category; every candidate of a prompt in reward
order; the selected one and the DPO pair (as ``rmkit select`` picks them); and the run's
report plots. It opens only folders inside RUN_DIR (a run, or a folder of runs; without
one, the current folder), the app's *root*, and writes nothing outside it. The page is
served on 127.0.0.1; any other ``--host`` needs ``--auth``.
"""

# No `from __future__ import annotations`: Gradio finds the event argument of a handler by
# its annotation (gr.SelectData), which must be a class, not a string.
import argparse
import functools
import ipaddress
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from rmkit.chat import ChatSession, Reply, Responder, add_model_arguments, chat_recipe, format_reward, load_responder
from rmkit.config import SelectConfig
from rmkit.conversation import message_text
from rmkit.errors import ConfigError, MissingDependency, MissingPath, UserError

PREVIEW = 120  # characters of a prompt shown in the prompt list
ALL = "(all)"  # the category filter's "no filter"
REQUIRED = ("prompt_id", "index", "messages", "turns", "reward")  # fields of a candidates.jsonl line the viewer reads


class RunError(UserError, ValueError):
    """A run folder that is missing or malformed."""


# ----------------------------------------------------------------------------- reading a run


@dataclass
class Run:
    """A run folder as the viewer shows it."""

    path: Path
    groups: list[list[dict]]  # per prompt, its candidate lines (rmkit.sampling.runs)
    select: SelectConfig  # the run's select settings, to pick as `rmkit select` does
    stats: dict  # stats.json, {} before `rmkit select`

    def group(self, prompt_id: str) -> list[dict]:
        return next(g for g in self.groups if g[0]["prompt_id"] == prompt_id)

    def categories(self) -> list[str]:
        return sorted({g[0].get("category") or "" for g in self.groups})


def open_run(path: str | Path) -> Run:
    """Read a run folder, or raise :class:`RunError` saying what is wrong with it."""
    from rmkit.config import ConfigError, Recipe, load_recipe
    from rmkit.sampling.runs import RunFolder

    folder = RunFolder(Path(path).expanduser())
    if not folder.path.is_dir():
        raise RunError(f"{folder.path}: no such folder")
    if not folder.exists() or not folder.candidates.exists():
        raise RunError(f"{folder.path} is not a sample-and-score run: it lacks run.json or candidates.jsonl")
    try:
        groups = folder.groups()
        recipe = load_recipe(folder.recipe_path) if folder.recipe_path.exists() else Recipe()
        stats = json.loads((folder.path / "stats.json").read_text()) if (folder.path / "stats.json").exists() else {}
    except (ValueError, KeyError, TypeError, ConfigError) as err:  # JSONDecodeError is a ValueError
        raise RunError(f"{folder.path} is malformed: {err}") from None
    if not groups:
        raise RunError(f"{folder.candidates} holds no finished prompt yet")
    for number, line in enumerate((line for g in groups for line in g), 1):
        missing = [key for key in REQUIRED if key not in line]
        if missing:
            raise RunError(f"{folder.candidates}, candidate {number}: missing {', '.join(missing)}")
    return Run(folder.path, groups, recipe.select, stats)


@functools.lru_cache(maxsize=4)
def _cached_run(path: str, stamp: tuple) -> Run:  # stamp: the files' times, only part of the cache key
    return open_run(path)


def load_run(path: str | Path) -> Run:
    """:func:`open_run`, read again only when one of the files it reads changes."""
    folder = Path(path).expanduser().resolve()
    files = (folder / name for name in ("candidates.jsonl", "recipe.yaml", "stats.json"))
    return _cached_run(str(folder), tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files))


def inside(root: Path, path: str | Path) -> Path:
    """``path`` with its links resolved, if it lies in ``root``; else :class:`RunError`."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise RunError(f"{path} is outside {root}, the folder this app serves (start `rmkit ui` on a folder that holds it)")
    return resolved


def load_run_in(root: Path, path: str) -> Run:
    """The run folder ``path`` (relative to where the app runs, or absolute), if it lies in ``root``."""
    return load_run(inside(root, path))


def find_runs(root: Path) -> list[Path]:
    """Run folders in ``root`` (itself, its subfolders, theirs), for the Run tab to offer."""
    return sorted({p.parent for pattern in ("run.json", "*/run.json", "*/*/run.json") for p in root.glob(pattern)})


def selection(group: list[dict], run: Run):
    """The best candidate and DPO pair of one prompt, as ``rmkit select`` picks them."""
    from rmkit.sampling.select import select_group

    return select_group(group, run.select)


def prompt_text(line: dict) -> str:
    """The user turns of a candidate's conversation (what was sampled), one per line."""
    return "\n".join(m["content"] for m in line["messages"] if m["role"] == "user")


def replies(line: dict) -> str:
    """A candidate's replies; several turns are marked ``[turn k]``."""
    if len(line["turns"]) == 1:
        return line["turns"][0]["reply"]
    return "\n\n".join(f"[turn {t}] {turn['reply']}" for t, turn in enumerate(line["turns"], 1))


def prompt_rows(run: Run, category: str | None = None) -> list[list]:
    """One row per prompt: id, category, prompt, candidates, best reward."""
    rows = []
    for group in run.groups:
        if category is not None and (group[0].get("category") or "") != category:
            continue
        rewards = [line["reward"] for line in group if line["reward"] is not None]
        text = prompt_text(group[0]).replace("\n", " ")
        best = max(rewards) if rewards else None
        rows.append([group[0]["prompt_id"], group[0].get("category") or "", text[:PREVIEW], len(group), format_reward(best)])
    return rows


def candidate_rows(group: list[dict], run: Run) -> list[list]:
    """The prompt's candidates in reward order: rank, candidate index, reward, role, replies."""
    from rmkit.sampling.candidates import rank_all

    chosen = selection(group, run)
    order = rank_all([line["reward"] for line in group])
    rows = []
    for rank, i in enumerate(order, 1):
        roles = ["selected"] if i == chosen.best else []
        if chosen.pair:
            roles += ["DPO chosen"] if i == chosen.pair[0] else ["DPO rejected"] if i == chosen.pair[1] else []
        rows.append([rank, group[i]["index"], format_reward(group[i]["reward"]), ", ".join(roles), replies(group[i])])
    return rows


def selection_text(group: list[dict], run: Run) -> str:
    """A line on the selected candidate and the DPO pair (or why there is none)."""
    chosen = selection(group, run)
    if chosen.best is None:
        return "No candidate of this prompt is scored: nothing is selected."
    best = group[chosen.best]
    text = f"**Selected:** candidate {best['index']} (reward {format_reward(best['reward'])})."
    if chosen.pair:
        good, bad = group[chosen.pair[0]], group[chosen.pair[1]]
        margin = good["reward"] - bad["reward"]
        return text + f" **DPO pair:** candidate {good['index']} over candidate {bad['index']} (margin {margin:.3f})."
    return text + f" **No DPO pair:** {chosen.no_pair}."


def prompt_markdown(group: list[dict]) -> str:
    """The prompt: its fixed history and the turns answered, as the candidates saw them."""
    from rmkit.sampling.candidates import prompt_messages

    first = group[0]
    shown = prompt_messages(first)
    head = f"### Prompt {first['prompt_id']}" + (f" · {first['category']}" if first.get("category") else "")
    return head + "\n\n" + "\n\n".join(f"**{m['role']}:** {message_text(m)}" for m in shown)


def summary_text(run: Run) -> str:
    from rmkit.sampling.select import format_summary

    if not run.stats:
        return f"{run.path}: {len(run.groups)} prompts; no stats.json yet (run `rmkit select {run.path}`)"
    return format_summary(run.stats, run.path)


def report_images(run: Run, root: Path) -> list[tuple[object, str]]:
    """The run's report plots as (image, caption); the report is (re)written when older than the
    run, unless ``report/`` leads out of ``root`` (a link): the app writes nothing outside it."""
    from PIL import Image

    from rmkit.run_report import write_report

    page = run.path / "report" / "report.html"
    newest = max(p.stat().st_mtime for p in (run.path / "candidates.jsonl", run.path / "stats.json") if p.exists())
    if not page.exists() or page.stat().st_mtime < newest:
        inside(root, run.path / "report")
        write_report(run.path)
    # Loaded as images rather than paths: Gradio serves files only from folders it was told of.
    return [(Image.open(png).copy(), png.stem.replace("_", " ")) for png in sorted(page.parent.glob("*.png"))]


# ----------------------------------------------------------------------------- the app


NO_CHAT = "Start with `rmkit ui --model PATH_OR_NAME [--reward-model PATH]` to chat here."


def build_app(
    responder: Responder | None = None,
    run_dir: str | None = None,
    *,
    root: str | Path | None = None,
    n: int = 4,
    system: str = "",
    chat_note: str = NO_CHAT,
):
    """The Gradio app: the Chat tab (``chat_note`` instead when there is no ``responder``) and the
    Run tab, which opens run folders inside ``root`` (default: ``run_dir``, else the current folder).
    It opens on the Run tab when given ``run_dir``."""
    import gradio as gr

    root = Path(root or run_dir or ".")
    with gr.Blocks(title="rmkit") as app:
        gr.Markdown("## rmkit: best-of-N chat and run viewer")
        with gr.Tabs(selected="run" if run_dir else "chat"):
            with gr.Tab("Chat", id="chat"):
                if responder is None:
                    gr.Markdown(chat_note, elem_id="chat-note")
                else:
                    _chat_tab(gr, responder, n, system)
            with gr.Tab("Run", id="run"):
                _run_tab(gr, app, root, run_dir)
    return app


def _chat_tab(gr, responder: Responder, n: int, system: str) -> None:
    session = gr.State(ChatSession(system=system, n=n, ranked=responder.ranked))
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="Conversation", elem_id="chatbot", height=460, feedback_options=None)
            text = gr.Textbox(placeholder="Type a message and press Enter", show_label=False, elem_id="message")
            with gr.Row():
                send = gr.Button("Send", variant="primary", elem_id="send")
                reset = gr.Button("Reset", elem_id="reset")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="chat-status")
            candidates = gr.Dataframe(
                headers=["rank", "reward", "reply"],
                datatype=["number", "str", "str"],
                label="Candidates, best first" if responder.ranked else "Reply (no reward model: one per turn)",
                interactive=False,
                wrap=True,
                column_widths=["12%", "18%", "70%"],
                elem_id="candidates",
            )
            with gr.Accordion("Settings", open=False):
                system_box = gr.Textbox(value=system, label="System prompt", lines=2)
                n_slider = gr.Slider(1, 16, value=n, step=1, label="Candidates per turn (N)", interactive=responder.ranked)

    def turn(message: str, state: ChatSession, system_prompt: str, count: int):
        if not message.strip():
            raise gr.Error("Type a message first.")
        state.system, state.n = system_prompt, int(count)
        reply = state.ask(message.strip(), responder)
        return "", state, state.messages, _candidate_table(reply), _reply_status(reply, state)

    def clear(state: ChatSession):
        state.command("/reset")
        return state, [], [], ""

    outputs = [text, session, chatbot, candidates, status]
    # One model for every browser tab: both triggers share one queue, one reply at a time.
    text.submit(turn, [text, session, system_box, n_slider], outputs, concurrency_id="model")
    send.click(turn, [text, session, system_box, n_slider], outputs, concurrency_id="model")
    reset.click(clear, [session], [session, chatbot, candidates, status])


def _candidate_table(reply: Reply) -> list[list]:
    return [[rank, format_reward(c.reward), c.text] for rank, c in enumerate(reply.candidates, 1)]


def _reply_status(reply: Reply, session: ChatSession) -> str:
    best = f"Best of {len(reply.candidates)}, reward **{format_reward(reply.best.reward)}**"
    parts = [best if session.ranked else "One reply"]
    if reply.dropped_turns:
        parts.append(f"{reply.dropped_turns} oldest turns left out to fit the context")
    return " · ".join(parts)


def _run_tab(gr, app, root: Path, run_dir: str | None) -> None:
    start = run_dir if run_dir and (Path(run_dir) / "run.json").exists() else ""
    with gr.Row():
        path = gr.Textbox(value=start, label=f"Run folder (inside {root})", scale=4, elem_id="run-path")
        open_button = gr.Button("Open", scale=1, elem_id="run-open")
    status = gr.Markdown(elem_id="run-status")
    with gr.Row():
        with gr.Column(scale=2):
            category = gr.Dropdown(choices=[], label="Category", elem_id="run-category")
            prompts = gr.Dataframe(
                headers=["id", "category", "prompt", "N", "best"],
                label="Prompts (click one)",
                interactive=False,
                wrap=True,
                column_widths=["8%", "22%", "47%", "8%", "15%"],
                max_height=520,
                elem_id="run-prompts",
            )
        with gr.Column(scale=3):
            prompt = gr.Markdown(elem_id="run-prompt")
            chosen = gr.Markdown(elem_id="run-selection")
            candidates = gr.Dataframe(
                headers=["rank", "index", "reward", "role", "reply"],
                label="Candidates in reward order",
                interactive=False,
                wrap=True,
                column_widths=["7%", "12%", "11%", "16%", "54%"],
                elem_id="run-candidates",
            )
    with gr.Accordion("Summary and report plots", open=True):
        summary = gr.Code(language=None, show_label=False, elem_id="run-summary")
        plots = gr.Gallery(columns=3, height=340, object_fit="contain", format="png", show_label=False, elem_id="run-plots")

    def read(folder: str) -> Run:
        try:
            return load_run_in(root, folder.strip())
        except RunError as err:
            raise gr.Error(str(err)) from None  # shown in the page

    def detail(run: Run, prompt_id: str):
        group = run.group(prompt_id)
        return prompt_markdown(group), selection_text(group, run), candidate_rows(group, run)

    def show(folder: str):
        if not folder.strip():
            runs = ", ".join(f"`{p}`" for p in find_runs(root)) or "none yet"
            return (f"Give a run folder above. Runs in {root}: {runs}", gr.Dropdown(choices=[], value=None), [], "", "", [], "", [])
        run = read(folder)
        rows = prompt_rows(run)
        try:
            images = report_images(run, root)
        except Exception as err:  # a plotting problem must not hide the candidates
            images, note = [], f" · the report plots could not be made: {err}"
        else:
            note = ""
        head = f"**{run.path}**: {len(run.groups)} prompts{note}"
        categories = gr.Dropdown(choices=[ALL, *run.categories()], value=ALL)
        return (head, categories, rows, *detail(run, rows[0][0]), summary_text(run), images)

    def filter_prompts(folder: str, name: str):
        run = read(folder)
        rows = prompt_rows(run, None if name in (None, ALL) else name)
        return (rows, *detail(run, rows[0][0])) if rows else (rows, "", "", [])

    def pick(folder: str, event: gr.SelectData):
        return detail(read(folder), str(event.row_value[0]))

    opened = [status, category, prompts, prompt, chosen, candidates, summary, plots]
    open_button.click(show, [path], opened)
    path.submit(show, [path], opened)
    category.input(filter_prompts, [path, category], [prompts, prompt, chosen, candidates])
    prompts.select(pick, [path], [prompt, chosen, candidates])
    if run_dir:
        app.load(show, [path], opened)  # the run, or the list of runs in the root


# ----------------------------------------------------------------------------- the verb


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", nargs="?", metavar="RUN_DIR",
        help="a sample-and-score run folder, or a folder of runs: the Run tab opens only folders inside it (default: the current folder)",
    )  # fmt: skip
    add_model_arguments(parser)
    parser.add_argument("--no-chat", action="store_true", help="browse runs only: load no model")
    parser.add_argument("--system", default="", help="system prompt for the chat")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default: 127.0.0.1, this machine only; any other needs --auth)")
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
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name
        loopback = False
    if not loopback:
        raise ConfigError(f"--host {host} serves the app beyond this machine: give --auth USER:PASSWORD (or set RMKIT_UI_AUTH)")
    return None


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
