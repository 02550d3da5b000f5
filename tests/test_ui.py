"""`rmkit ui`: reading a run folder, then the app itself in a headless Chromium.

The browser test needs gradio and selenium (pip) and Debian's chromium and
chromium-driver (apt); it is skipped, saying which is missing, when one is absent.
Its screenshots are written into the test's own temporary folder.
"""

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from rmkit.apps.run_viewer import RunError, candidate_rows, load_run_in, open_run, prompt_rows, report_images, selection_text
from rmkit.apps.ui_app import ALL
from rmkit.cli import main
from rmkit.config.recipe import dump_recipe
from rmkit.config.sections import Recipe
from rmkit.sampling.backends import Completion

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REWARDS = {0: 0.5, 1: 2.0, 2: -1.0, 3: 1.0}  # candidate k's reward: in reward order 1, 3, 0, 2
PROMPTS = [
    {"question_id": 1, "category": "writing", "turns": ["Write a short poem about the sea."]},
    {"question_id": 2, "category": "geography", "turns": ["What is the capital of France?"]},
    {"question_id": 3, "category": "writing", "turns": ["Tell me a story."]},
]


class NumberedBackend:
    """Candidate k of every prompt is ``candidate k: ...``; its reward is REWARDS[k]."""

    max_model_len = 1024

    def generate(self, prompts, params, n):
        return [[Completion(f"candidate {k}: " + "la " * (k + 1), 4, "stop") for k in range(n)] for _ in prompts]


def numbered_rewards(conversations):
    return [REWARDS[int(c[-1]["content"].split()[1].rstrip(":"))] for c in conversations]


@pytest.fixture(scope="module")
def run_dir(tiny_llama, tmp_path_factory) -> Path:
    """A small sample-and-score run made by the real pipeline, with a stand-in policy and reward model."""
    from rmkit.sampling.pipeline import sample_and_score

    root = tmp_path_factory.mktemp("ui_run")
    (root / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    recipe = Recipe()
    recipe.sample.prompts, recipe.sample.policy, recipe.sample.n = str(root / "prompts.jsonl"), str(tiny_llama), 4
    recipe.sample.max_tokens = 16
    recipe.score.reward_model = "stand-in"
    sample_and_score(recipe, root / "run", backend=NumberedBackend(), scorer=numbered_rewards)
    return root / "run"


# ----------------------------------------------------------------------------- reading runs


def test_prompts_and_their_candidates_in_reward_order(run_dir):
    run = open_run(run_dir)
    assert [row[:2] for row in prompt_rows(run)] == [["1", "writing"], ["2", "geography"], ["3", "writing"]]
    assert prompt_rows(run)[0][2:] == ["Write a short poem about the sea.", 4, "+2.000"]
    rows = candidate_rows(run.group("1"), run)
    assert [row[1] for row in rows] == [1, 3, 0, 2]  # candidate index, best first
    assert [row[2] for row in rows] == ["+2.000", "+1.000", "+0.500", "-1.000"]
    assert rows[0][3] == "selected, DPO chosen" and rows[-1][3] == "DPO rejected"
    assert rows[0][4] == "candidate 1: la la"


def test_category_filter(run_dir):
    run = open_run(run_dir)
    assert run.categories() == ["geography", "writing"]
    assert [row[0] for row in prompt_rows(run, "writing")] == ["1", "3"]
    assert ALL not in run.categories()


def test_selection_names_the_best_candidate_and_the_dpo_pair(run_dir):
    run = open_run(run_dir)
    text = selection_text(run.group("2"), run)
    assert "candidate 1 (reward +2.000)" in text and "candidate 1 over candidate 2 (margin 3.000)" in text


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target)
    return target


def test_missing_or_malformed_run_folders_say_what_is_wrong(run_dir, tmp_path):
    with pytest.raises(RunError, match="no such folder"):
        open_run(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="is not a sample-and-score run: it lacks run.json or candidates.jsonl"):
        open_run(tmp_path / "empty")

    damaged = copy_run(run_dir, tmp_path / "damaged")
    lines = (damaged / "candidates.jsonl").read_text().splitlines(keepends=True)
    (damaged / "candidates.jsonl").write_text("".join(lines[:2] + ["{not json\n"] + lines[2:]))
    with pytest.raises(RunError, match="is malformed: .*damaged line"):
        open_run(damaged)

    unscored = copy_run(run_dir, tmp_path / "unscored")
    records = [json.loads(line) for line in lines]
    for record in records:
        del record["reward"]
    (unscored / "candidates.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(RunError, match="candidate 1: missing reward"):
        open_run(unscored)


def test_rmkit_ui_stops_on_a_bad_run_folder(tmp_path, capsys):
    assert main(["ui", str(tmp_path / "nowhere")]) == 2
    assert f"rmkit: error: {tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the root it serves


def test_the_run_tab_opens_only_folders_inside_the_root(run_dir, tmp_path):
    root = tmp_path / "root"
    inner = copy_run(run_dir, root)
    outer = copy_run(run_dir, tmp_path / "elsewhere")
    assert len(load_run_in(root, str(inner)).groups) == len(PROMPTS)
    for path in (outer, root / ".." / "elsewhere" / "run", "/etc"):
        with pytest.raises(RunError, match=f"is outside {root}, the folder this app serves"):
            load_run_in(root, str(path))
    (root / "link").symlink_to(outer)  # a link inside that leads out
    with pytest.raises(RunError, match="is outside"):
        load_run_in(root, str(root / "link"))


def test_the_report_is_not_written_through_a_link_out_of_the_root(run_dir, tmp_path):
    root = tmp_path / "root"
    inner = copy_run(run_dir, root)
    shutil.rmtree(inner / "report", ignore_errors=True)
    (tmp_path / "elsewhere").mkdir()
    (inner / "report").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RunError, match="is outside"):
        report_images(load_run_in(root, str(inner)), root)
    assert not list((tmp_path / "elsewhere").iterdir())
    (inner / "report").unlink()
    assert len(report_images(load_run_in(root, str(inner)), root)) >= 2  # inside: written and shown
    assert (inner / "report" / "report.html").exists()


class Launches:
    """Stands in for Gradio's launch (and, when asked, the chat's model loading): records the calls."""

    def __init__(self, monkeypatch):
        import gradio

        self.launched, self.recipes = [], []
        monkeypatch.setattr(gradio.Blocks, "launch", lambda app, **kwargs: self.launched.append(kwargs))
        monkeypatch.delenv("RMKIT_UI_AUTH", raising=False)

    def load_responder(self, recipe):
        self.recipes.append(recipe)
        return type("Responder", (), {"ranked": bool(recipe.score.reward_model)})()


def test_serving_beyond_this_machine_needs_a_login(run_dir, monkeypatch, capsys):
    pytest.importorskip("gradio", reason="the web UI needs gradio (pip install gradio)")
    calls = Launches(monkeypatch)
    assert main(["ui", str(run_dir), "--no-chat", "--host", "0.0.0.0"]) == 2
    assert "--host 0.0.0.0 serves the app beyond this machine: give --auth USER:PASSWORD" in capsys.readouterr().err
    assert main(["ui", str(run_dir), "--no-chat", "--host", "0.0.0.0", "--auth", "me"]) == 2
    assert "--auth: expected USER:PASSWORD" in capsys.readouterr().err
    assert not calls.launched
    assert main(["ui", str(run_dir), "--no-chat", "--host", "0.0.0.0", "--auth", "me:secret"]) == 0
    assert main(["ui", str(run_dir), "--no-chat"]) == 0  # this machine only: no login needed
    assert [(c["server_name"], c["auth"]) for c in calls.launched] == [("0.0.0.0", ("me", "secret")), ("127.0.0.1", None)]


def test_only_loopback_hosts_serve_without_a_login():
    from rmkit.apps.ui import login
    from rmkit.errors import ConfigError

    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert login(host, None) is None
    for host in ("0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "my-laptop.local", "", "127.0.0.1.nip.io"):
        with pytest.raises(ConfigError, match="give --auth USER:PASSWORD"):
            login(host, None)
    assert login("0.0.0.0", "me:a:b") == ("me", "a:b")


def test_a_folder_of_runs_is_a_root_too(run_dir, tmp_path, monkeypatch, capsys):
    from rmkit.apps.run_viewer import find_runs

    pytest.importorskip("gradio", reason="the web UI needs gradio (pip install gradio)")
    calls = Launches(monkeypatch)
    runs = [copy_run(run_dir, tmp_path / "runs" / name) for name in ("a", "b")]
    assert find_runs(tmp_path / "runs") == runs
    assert main(["ui", str(tmp_path / "runs"), "--no-chat"]) == 0 and len(calls.launched) == 1
    (tmp_path / "empty").mkdir()
    assert main(["ui", str(tmp_path / "empty"), "--no-chat"]) == 2  # neither a run nor a folder of runs
    assert "is not a sample-and-score run" in capsys.readouterr().err


def test_the_chat_uses_the_runs_models_by_default(run_dir, tiny_llama, tmp_path, monkeypatch, capsys):
    pytest.importorskip("gradio", reason="the web UI needs gradio (pip install gradio)")
    calls = Launches(monkeypatch)
    monkeypatch.setattr("rmkit.apps.ui.load_responder", calls.load_responder)
    run = copy_run(run_dir, tmp_path)
    recipe = Recipe()
    recipe.sample.policy, recipe.score.reward_model = str(tiny_llama), str(tiny_llama)
    dump_recipe(recipe, run / "recipe.yaml")
    assert main(["ui", str(run)]) == 0
    assert (calls.recipes[-1].sample.policy, calls.recipes[-1].score.reward_model) == (str(tiny_llama), str(tiny_llama))
    assert main(["ui", str(run), "--reward-model", str(tmp_path / "nowhere")]) == 2  # one named on the command line must exist
    assert f"--reward-model {tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err

    # A run made elsewhere names models that are not here: browse it, and say why there is no chat.
    recipe.score.reward_model = "outputs/moved/reward_model"
    dump_recipe(recipe, run / "recipe.yaml")
    assert main(["ui", str(run)]) == 0
    assert "No chat: score.reward_model outputs/moved/reward_model: no such folder" in capsys.readouterr().err
    assert len(calls.recipes) == 1 and len(calls.launched) == 2


TRAVERSALS = [  # each in the raw request line, as a client may send it (no normalising)
    "/gradio_api/file={outside}",
    "/gradio_api/file=../../../../../../etc/passwd",
    "/gradio_api/file=/etc/passwd",
    "/gradio_api/file=%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/gradio_api/file=%2Fetc%2Fpasswd",
    "/gradio_api/file=%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "/gradio_api/file=..%5c..%5c..%5cetc%5cpasswd",
    "/gradio_api/file=secret.txt",
    "/gradio_api/file=..%2fsecret.txt",
    "/gradio_api/file={root}/../secret.txt",
    "/gradio_api/file={run}/candidates.jsonl/../../../secret.txt",
    "/file={outside}",
    "/file=../../../../etc/passwd",
    "/static/../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/gradio_api/file={run}/candidates.jsonl",  # inside the root, but not a file the page shows
]


def test_the_app_serves_no_file_outside_its_run_folder(run_dir, tmp_path, monkeypatch):
    """The real app on a free loopback port: Gradio's file routes, plain and URL-encoded, give
    nothing outside the root (a secret beside it, the current folder's files, /etc/passwd)."""
    import http.client

    pytest.importorskip("gradio", reason="the web UI needs gradio (pip install gradio)")
    from gradio_client import Client

    from rmkit.apps.ui_app import build_app

    root = tmp_path / "root"
    run = copy_run(run_dir, root)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET beside the root")
    monkeypatch.chdir(tmp_path)  # the current folder holds the secret too
    app = build_app(None, str(run))
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        # What the page shows is served: the run's report plots reach a client through the file route.
        summary, images = Client(f"http://127.0.0.1:{port}", verbose=False).predict(str(run), api_name="/show")[-2:]
        assert "prompts" in summary and len(images) >= 2 and all(Path(image["image"]).stat().st_size > 0 for image in images)
        served = []
        for path in TRAVERSALS:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", path.format(outside=secret, root=root, run=run))
            response = connection.getresponse()
            body = response.read()
            if response.status == 200 or b"SECRET" in body or b"root:" in body or b'"prompt_id"' in body:
                served.append((path, response.status))
        assert served == []
    finally:
        app.close()


# ----------------------------------------------------------------------------- in the browser


@pytest.fixture(scope="module")
def browser():
    pytest.importorskip("gradio", reason="the web UI needs gradio (pip install gradio)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium (pip install selenium)")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("the browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="rmkit-chromium-")
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1400,1100",
    ):  # fmt: skip
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()
    shutil.rmtree(profile, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(browser, tiny_llama, run_dir):
    """The app with a best-of-3 chat (tiny policy and reward model) and the small run, on 127.0.0.1."""
    from rmkit.apps.chat import load_responder
    from rmkit.apps.ui_app import build_app

    recipe = Recipe()
    recipe.sample.policy, recipe.sample.backend, recipe.sample.max_tokens = str(tiny_llama), "transformers", 8
    recipe.score.reward_model = str(tiny_llama)  # a causal LM loads as a (random) reward model too
    app = build_app(load_responder(recipe), str(run_dir), n=3)
    port = free_port()
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}"
    app.close()


def table(browser, elem_id: str) -> list[list[str]]:
    """The body rows of a Gradio Dataframe, as cell texts."""
    from selenium.webdriver.common.by import By

    rows = browser.find_elements(By.CSS_SELECTOR, f"#{elem_id} [role=row]")
    return [cells for row in rows if (cells := [c.text for c in row.find_elements(By.CSS_SELECTOR, "[role=gridcell]")])]


def test_chat_and_run_viewer_in_a_browser(browser, app_url, run_dir, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(app_url)
    wait.until(lambda b: b.title == "rmkit")  # the page has loaded

    # Given a run, the app opens on the Run tab, showing the run.
    wait.until(lambda b: len(table(b, "run-candidates")) == 4)
    selected = browser.find_element(By.CSS_SELECTOR, "button[role='tab'][aria-selected='true']")
    assert "Run" in selected.text

    # Chat: a message gets three candidates, ranked by reward, and the best one answers.
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Chat')]").click()
    box = wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#message textarea"))
    box.send_keys("What is the capital of France?", Keys.ENTER)
    wait.until(lambda b: len(table(b, "candidates")) == 3)
    rows = table(browser, "candidates")
    rewards = [float(row[1]) for row in rows]
    assert [row[0] for row in rows] == ["1", "2", "3"] and rewards == sorted(rewards, reverse=True)
    assert "Best of 3" in browser.find_element(By.ID, "chat-status").text
    conversation = browser.find_element(By.ID, "chatbot").text
    assert "What is the capital of France?" in conversation and rows[0][2].strip()[:5] in conversation
    browser.save_screenshot(str(tmp_path / "chat.png"))

    # Run: the prompts, and the first prompt's candidates in reward order with the selection.
    browser.find_element(By.XPATH, "//button[@role='tab' and contains(., 'Run')]").click()
    wait.until(lambda b: len(table(b, "run-candidates")) == 4)
    assert [row[:2] for row in table(browser, "run-prompts")] == [["1", "writing"], ["2", "geography"], ["3", "writing"]]
    assert [row[1] for row in table(browser, "run-candidates")] == ["1", "3", "0", "2"]
    assert "DPO pair" in browser.find_element(By.ID, "run-selection").text

    # Clicking another prompt shows its candidates.
    browser.find_element(By.CSS_SELECTOR, "#run-prompts [role=gridcell][data-row='1'][data-col='2']").click()
    wait.until(lambda b: "What is the capital of France?" in b.find_element(By.ID, "run-prompt").text)
    assert [row[2] for row in table(browser, "run-candidates")] == ["+2.000", "+1.000", "+0.500", "-1.000"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#run-plots img")) >= 2  # the report's plots
    browser.set_window_size(1400, 1900)
    browser.save_screenshot(str(tmp_path / "run.png"))
    print(f"screenshots: {tmp_path / 'chat.png'}, {tmp_path / 'run.png'}")

    # A folder that is not a run says so; one outside the run the app was started on is refused.
    path = browser.find_element(By.CSS_SELECTOR, "#run-path textarea, #run-path input")
    for folder, says in ((run_dir / "nowhere", "no such folder"), (tmp_path, "is outside")):
        path.clear()
        path.send_keys(str(folder), Keys.ENTER)  # (the first error's toast covers the Open button)
        wait.until(lambda b, says=says: says in b.find_element(By.TAG_NAME, "body").text)
