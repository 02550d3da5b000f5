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

from rmkit.cli import main
from rmkit.config import Recipe
from rmkit.sampling.backends import Completion
from rmkit.ui import ALL, RunError, candidate_rows, open_run, prompt_rows, selection_text

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
    from rmkit.chat import load_responder
    from rmkit.ui import build_app

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


def test_chat_and_run_viewer_in_a_browser(browser, app_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 60)
    browser.get(app_url)
    wait.until(lambda b: b.title == "rmkit")  # the page has loaded

    # Chat: a message gets three candidates, ranked by reward, and the best one answers.
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

    # A folder that is not a run says so.
    path = browser.find_element(By.CSS_SELECTOR, "#run-path textarea, #run-path input")
    path.clear()
    path.send_keys(str(tmp_path / "nowhere"))
    browser.find_element(By.ID, "run-open").click()
    wait.until(lambda b: "no such folder" in b.find_element(By.TAG_NAME, "body").text)
