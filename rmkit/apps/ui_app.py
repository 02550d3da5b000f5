"""The Gradio app of ``rmkit ui``: the Chat tab and the Run tab, their layout and callbacks.

The Chat tab's model side is :class:`rmkit.apps.chat.Responder`; the Run tab's data come from
:mod:`rmkit.apps.run_viewer`. Gradio is imported in :func:`build_app`, when the app is built.
"""

# No `from __future__ import annotations`: Gradio finds the event argument of a handler by
# its annotation (gr.SelectData), which must be a class, not a string.
from pathlib import Path

from rmkit.apps.chat import ChatSession, Reply, Responder, format_reward
from rmkit.apps.run_viewer import (
    Run,
    RunError,
    candidate_rows,
    find_runs,
    load_run_in,
    prompt_markdown,
    prompt_rows,
    report_images,
    selection_text,
    summary_text,
)

ALL = "(all)"  # the category filter's "no filter"

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
            label = "Candidates, best first" if responder.ranked else "Reply (no reward model: one per turn)"
            columns = {"rank": "12%", "reward": "18%", "reply": "70%"}
            candidates = _table(gr, "candidates", label, columns, datatype=["number", "str", "str"])
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


def _table(gr, elem_id: str, label: str, columns: dict[str, str], **options):
    """A read-only table that wraps long text; ``columns`` maps each header to its width."""
    return gr.Dataframe(
        headers=list(columns),
        column_widths=list(columns.values()),
        label=label,
        interactive=False,
        wrap=True,
        elem_id=elem_id,
        **options,
    )


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
            columns = {"id": "8%", "category": "22%", "prompt": "47%", "N": "8%", "best": "15%"}
            prompts = _table(gr, "run-prompts", "Prompts (click one)", columns, max_height=520)
        with gr.Column(scale=3):
            prompt = gr.Markdown(elem_id="run-prompt")
            chosen = gr.Markdown(elem_id="run-selection")
            columns = {"rank": "7%", "index": "12%", "reward": "11%", "role": "16%", "reply": "54%"}
            candidates = _table(gr, "run-candidates", "Candidates in reward order", columns)
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
            return (
                f"Give a run folder above. Runs in {root}: {runs}",
                gr.Dropdown(choices=[], value=None),
                [],
                "",
                "",
                [],
                "",
                [],
            )
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
