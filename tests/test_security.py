"""Security defaults, tested for real: the app listens on loopback only, uploads are capped, and
dataset text carrying script/HTML/Markdown payloads never reaches an element that renders HTML or
Markdown on the Data, Map and Select pages. (Path confinement: tests/test_files.py and
tests/test_app_data.py; static scans for HTML rendering, pickle and shell strings:
tests/test_architecture.py.)"""
from __future__ import annotations

import os
import socket
import sys

import pytest
from streamlit.testing.v1 import AppTest

from alignscope.cli.parser import build_parser
from alignscope.cli.app import app_command
from alignscope.jobs import JobStore
from benchmarks.common import start_app
from conftest import ROOT, write_jsonl

MAIN = str(ROOT / "app" / "main.py")
PAYLOADS = ["<script>alert('x')</script>", "<img src=x onerror=alert(1)>", "**bold** [click](javascript:alert(1))",
            "<iframe src='https://example.invalid'></iframe>", "</div><h1>injected</h1>"]
MARKERS = ("<script", "onerror", "javascript:", "<iframe", "<h1>")
# Element types Streamlit renders as Markdown (HTML only with unsafe_allow_html).
MARKDOWN_TYPES = ("markdown", "caption", "info", "warning", "error", "success", "title", "header", "subheader",
                  "toast", "latex")


def _outward_address() -> str | None:
    """This machine's non-loopback address (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))  # no packet is sent: this only picks a route
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_app_defaults_to_loopback_and_caps_uploads():
    args = build_parser().parse_args(["app"])
    assert args.host == "127.0.0.1" and args.max_upload_mb > 0
    command = app_command(args.host, 8501, ["--server.maxUploadSize", "7"])
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    assert command[command.index("--server.maxUploadSize") + 1] == "7"
    assert isinstance(command, list) and command[:3] == [sys.executable, "-m", "streamlit"]  # no shell string


def test_the_running_app_accepts_loopback_only(tmp_path):
    env = {**os.environ, "ALIGNSCOPE_HOME": str(tmp_path / "home")}
    proc, url, _ = start_app("--data", "demo:50", "--data-root", str(tmp_path), "--max-upload-mb", "3", env=env,
                             timeout_s=120)
    try:
        port = int(url.rsplit(":", 1)[1])
        _uploader_says_its_cap(url, "3MB")
        outward = _outward_address()
        if outward is None:
            pytest.skip("this machine has no non-loopback address to try")
        with pytest.raises(OSError):
            socket.create_connection((outward, port), timeout=3).close()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def _uploader_says_its_cap(url: str, cap: str) -> None:
    """In a real browser (when chromium is here): the Data page's uploader states the cap the
    server was started with, which Streamlit also enforces."""
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        return
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(url)
            page.get_by_text("Upload a file", exact=True).first.click(timeout=120_000)
            instructions = page.locator("[data-testid=stFileUploaderDropzoneInstructions]").first
            instructions.wait_for(timeout=120_000)
            assert f"{cap} per file" in instructions.inner_text()
        finally:
            browser.close()


@pytest.fixture(scope="module")
def payload_app(tmp_path_factory):
    """An app whose active data set has a payload in every text field, with its embeddings computed."""
    home = tmp_path_factory.mktemp("security-home")
    root = tmp_path_factory.mktemp("security-root")
    rows = [{"prompt": f"{PAYLOADS[i % 5]} question {i}", "chosen": f"{PAYLOADS[(i + 1) % 5]} good {i}",
             "rejected": f"{PAYLOADS[(i + 2) % 5]} bad {i}", "source": PAYLOADS[i % 5]} for i in range(40)]
    write_jsonl(root / "payloads.jsonl", rows)
    env = {"ALIGNSCOPE_HOME": str(home), "ALIGNSCOPE_DATA_ROOT": str(root), "ALIGNSCOPE_INITIAL_DATA": "payloads.jsonl"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        at = AppTest.from_file(MAIN, default_timeout=120).run()
        at.switch_page("views/select.py").run()  # starts the static embedding job: no click
        store = JobStore()
        job = store.list_jobs(kind="embed")[0]
        assert store.wait(job.id, timeout=600).status == "succeeded", store.logs(job.id)
    return env


def _rendered_as_markdown(at: AppTest) -> list[str]:
    bodies = []
    for kind in MARKDOWN_TYPES:
        for element in at.get(kind):
            proto = element.proto
            assert not getattr(proto, "allow_html", False), f"{kind} element renders HTML: {element.value!r}"
            bodies.append(str(getattr(element, "value", "") or getattr(proto, "body", "")))
    return bodies


@pytest.mark.parametrize("page", ["views/data.py", "views/map.py", "views/select.py"])
def test_payloads_in_pairs_are_shown_as_text_never_as_html(payload_app, monkeypatch, page):
    for key, value in payload_app.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(MAIN, default_timeout=180).run()
    if page != "views/data.py":
        at.switch_page(page).run()
    if page == "views/map.py":  # the legend of the WebGL map names the sources: data, never markup
        at.selectbox(key="map_colour").set_value("source").run()
    assert not at.exception, [e.value for e in at.exception]
    for body in _rendered_as_markdown(at):
        assert not any(marker in body for marker in MARKERS), body
    # The payloads did reach the page, as plain text or data (else the check above proves nothing).
    shown = " ".join(str(t.value) for t in at.text) + " ".join(str(d.value) for d in at.dataframe) + \
        " ".join(str(c.proto.spec) for c in at.get("plotly_chart")) + " ".join(str(c.value) for c in at.code) + \
        " ".join(c.proto.json_args for c in at.get("component_instance"))
    assert any(marker in shown for marker in MARKERS), f"no payload shown on {page}"
