"""The example plugins in plugins/, loaded the way a sysadmin loads them.

Drop-ins go through :func:`notifier.plugins.build_registry` from a folder,
exactly as ``[notifier] plugin_dirs`` names one. The folder is a copy of
plugins/ in ``tmp_path`` with modes 0755/0644: the loader refuses a folder
or file writable by group or others, and a checkout made under umask 002 has
exactly such modes, so the files are copied (unchanged) rather than loaded in
place. The packaged example is pip-installed into a new virtual environment
and found through its entry point by ``python -m notifier``.

The isolation tests load deliberately broken drop-ins the same way and show
that each misbehaviour comes back as UNKNOWN with the reason.
"""

from __future__ import annotations

import http.server
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import pytest

from notifier import MessageRefused, ServerUnavailable
from notifier.checks.base import Status
from notifier.compose import compose_alert
from notifier.config import MailSettings, build_config
from notifier.delivery import Sender
from notifier.events import AlertEvent, EventKind
from notifier.outbox import Outbox
from notifier.plugins import Registry, build_registry
from notifier.runner import CheckRunner
from notifier.testing import load_plugin_file, make_check, run_check_type
from notifier.transport import FailureKind

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "plugins"
PACKAGE = EXAMPLES / "notifier-example"
DROPINS = (
    "http_check.py",
    "systemd_failed.py",
    "crashdump.py",
    "webhook_transport.py",
)


def safe_plugin_dir(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    """Copy the example drop-ins (and ``files``) into a folder the loader
    accepts: owned by us, writable by no one else."""
    folder = tmp_path / "plugins"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    for name in DROPINS:
        shutil.copyfile(EXAMPLES / name, folder / name)
    for name, text in (files or {}).items():
        (folder / name).write_text(textwrap.dedent(text))
    for path in folder.iterdir():
        path.chmod(0o644)
    return folder


@pytest.fixture
def registry(tmp_path) -> Registry:
    loaded = build_registry([safe_plugin_dir(tmp_path)], load_entry_points=False)
    assert loaded.failures == ()
    return loaded


def run_example(registry, type_name, options, tmp_path, **kwargs):
    check_type = registry.check_types[type_name].check_type
    return run_check_type(check_type, options, tmp_path=tmp_path, **kwargs)


def test_every_drop_in_example_loads_from_a_plugin_folder(registry, tmp_path):
    origins = {
        name: Path(registry.check_types[name].origin).name
        for name in ("http", "systemd_failed", "crashdump")
    }

    assert origins == {
        "http": "http_check.py",
        "systemd_failed": "systemd_failed.py",
        "crashdump": "crashdump.py",
    }


def test_readme_explains_every_example_and_how_to_load_it():
    readme = (EXAMPLES / "README.md").read_text()

    for name in (*DROPINS, "notifier-example"):
        assert f"`{name}" in readme, name
    assert "plugin_dirs" in readme
    assert "pip install" in readme


# --- http -------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(0.5)
        code = 500 if self.path == "/error" else 200
        body = b"fine\n" if code == 200 else b"broken\n"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # keep the test output quiet


@pytest.fixture
def web_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_fast_200_is_ok(registry, tmp_path, web_server):
    result = run_example(
        registry,
        "http",
        {"url": f"{web_server}/", "warning": "10s", "critical": "20s"},
        tmp_path,
    )

    assert result.status is Status.OK
    assert result.summary.startswith(f"{web_server}/ answered 200 in ")
    assert result.metrics["status_code"] == 200
    assert result.value == result.metrics["latency_seconds"]


def test_http_500_is_critical(registry, tmp_path, web_server):
    result = run_example(registry, "http", {"url": f"{web_server}/error"}, tmp_path)

    assert result.status is Status.CRITICAL
    assert f"{web_server}/error answered 500, expected 200" in result.summary


def test_http_slow_answer_is_a_latency_warning(registry, tmp_path, web_server):
    # The handler sleeps 500ms, so the latency is at least that: above the
    # 200ms warning whatever the machine's speed, far below the critical.
    result = run_example(
        registry,
        "http",
        {"url": f"{web_server}/slow", "warning": "200ms", "critical": "60s"},
        tmp_path,
    )

    assert result.status is Status.WARNING
    assert result.summary.endswith("(limit 200ms)")
    assert result.metrics["latency_seconds"] >= 0.5


def test_http_refused_connection_is_critical(registry, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = run_example(
        registry, "http", {"url": f"http://127.0.0.1:{port}/"}, tmp_path
    )

    assert result.status is Status.CRITICAL
    assert result.summary == f"http://127.0.0.1:{port}/: connection refused"


def test_http_rejects_an_unknown_option_like_the_config_does(registry, tmp_path):
    from notifier.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        run_example(
            registry, "http", {"url": "http://127.0.0.1/", "warn": "1s"}, tmp_path
        )

    assert "warn: is not a known key (did you mean 'warning'?)" in str(caught.value)


# --- systemd_failed ---------------------------------------------------------

SYSTEMCTL = shutil.which("systemctl")
SYSTEMD_RUNNING = Path("/run/systemd/system").is_dir()


@pytest.mark.skipif(SYSTEMCTL is None, reason="systemctl is not installed")
@pytest.mark.skipif(not SYSTEMD_RUNNING, reason="systemd is not running here")
def test_systemd_failed_counts_what_systemctl_lists(registry, tmp_path):
    listing = subprocess.run(
        ["systemctl", "list-units", "--failed", "--plain", "--no-legend"],
        capture_output=True,
        text=True,
        check=True,
    )
    failed = [line for line in listing.stdout.splitlines() if line.strip()]

    result = run_example(registry, "systemd_failed", {}, tmp_path)

    assert result.metrics["failed_units"] == len(failed)
    assert result.status is (Status.CRITICAL if failed else Status.OK)


@pytest.mark.skipif(SYSTEMCTL is None, reason="systemctl is not installed")
@pytest.mark.skipif(SYSTEMD_RUNNING, reason="systemd is running here")
def test_systemd_failed_is_unknown_with_systemctls_reason_without_systemd(
    registry, tmp_path
):
    result = run_example(registry, "systemd_failed", {}, tmp_path)

    assert result.status is Status.UNKNOWN
    assert result.summary.startswith("systemctl: ")
    assert "systemd" in result.summary


# --- crashdump --------------------------------------------------------------


def make_dump(folder: Path, name: str, age: float, size: int = 100) -> Path:
    path = folder / name
    path.write_bytes(b"\0" * size)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_crashdump_attaches_the_newest_recent_dump(registry, tmp_path):
    dumps = tmp_path / "crash"
    dumps.mkdir()
    make_dump(dumps, "old.crash", age=3 * 86400)
    make_dump(dumps, "older-recent.crash", age=3600)
    newest = make_dump(dumps, "newest.crash", age=60, size=2048)
    make_dump(dumps, "notes.txt", age=10)

    result = run_example(
        registry,
        "crashdump",
        {"folder": str(dumps), "pattern": "*.crash", "recent": "1d"},
        tmp_path,
    )

    assert result.status is Status.CRITICAL
    assert result.attachments == (newest,)
    assert result.summary.startswith(
        f"2 crash dumps in {dumps} in the last 1d; newest newest.crash (2KiB, 1m"
    )
    assert result.summary.endswith(" ago)")
    assert result.evidence == (
        f"{newest} (2KiB)",
        f"{dumps / 'older-recent.crash'} (100B)",
    )


def test_crashdump_remembers_what_it_saw_between_runs(registry, tmp_path):
    dumps = tmp_path / "crash"
    dumps.mkdir()
    make_dump(dumps, "first.crash", age=120)
    check_type = registry.check_types["crashdump"].check_type
    harness = make_check(check_type, {"folder": str(dumps)}, tmp_path=tmp_path)

    first = harness.run()
    second = harness.run()
    make_dump(dumps, "second.crash", age=5)
    third = harness.run()

    assert [r.metrics["new_dumps"] for r in (first, second, third)] == [1, 0, 1]
    assert third.attachments == (dumps / "second.crash",)
    assert (harness.context.state_dir / "newest-seen").is_file()


def test_crashdump_quiet_folder_is_ok_and_missing_folder_unknown(registry, tmp_path):
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    make_dump(quiet, "ancient.crash", age=10 * 86400)

    ok = run_example(registry, "crashdump", {"folder": str(quiet)}, tmp_path)
    missing = run_example(
        registry, "crashdump", {"folder": str(tmp_path / "nowhere")}, tmp_path
    )

    assert ok.status is Status.OK
    assert ok.attachments == ()
    assert missing.status is Status.UNKNOWN
    assert missing.summary == f"folder {tmp_path / 'nowhere'} does not exist"


# --- the packaged example, tested as a module --------------------------------


@pytest.fixture(scope="module")
def file_age_module():
    return load_plugin_file(PACKAGE / "src" / "notifier_example" / "__init__.py")


@pytest.mark.parametrize(
    ("age", "status"),
    [(60, Status.OK), (30 * 3600, Status.WARNING), (40 * 3600, Status.CRITICAL)],
)
def test_file_age_judges_the_age(file_age_module, tmp_path, age, status):
    stamp = make_dump(tmp_path, "last-ok", age=age)

    result = run_check_type(file_age_module, {"path": str(stamp)}, tmp_path=tmp_path)

    assert result.status is status
    assert result.metrics["age_seconds"] >= age


def test_file_age_missing_file_takes_the_missing_status(file_age_module, tmp_path):
    result = run_check_type(
        file_age_module,
        {"path": str(tmp_path / "never"), "missing": "warning"},
        tmp_path=tmp_path,
    )

    assert result.status is Status.WARNING
    assert result.summary == f"{tmp_path / 'never'} does not exist"


# --- the packaged example, installed with pip ---------------------------------


def make_venv(tmp_path: Path) -> Path:
    """Create a virtual environment that also sees this one's packages.

    No network: notifier and its dependencies come from the environment
    running the tests, through a .pth file that adds its site-packages with
    ``site.addsitedir`` (so its own .pth files, such as notifier's editable
    install, work too). The new environment's own site-packages comes first,
    so what is installed into it is what is found.
    """
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True
    )
    python = venv / "bin" / "python"
    own_site = subprocess.run(
        [
            str(python),
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['purelib'])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parent_site = sysconfig.get_paths()["purelib"]
    (Path(own_site) / "_notifier_parent.pth").write_text(
        f"import site; site.addsitedir({parent_site!r})\n"
    )
    return python


@pytest.mark.slow
def test_packaged_example_is_found_through_its_entry_point(tmp_path):
    python = make_venv(tmp_path)

    # Building writes build/ and *.egg-info next to the sources; build a copy
    # so the checkout stays clean.
    source = tmp_path / "notifier-example"
    shutil.copytree(
        PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info")
    )
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    config = tmp_path / "notifier.toml"
    stamp = make_dump(tmp_path, "last-ok", age=60)
    config.write_text(
        textwrap.dedent(
            f"""\
            [notifier]
            state_dir = "{tmp_path / "state"}"

            [[check]]
            name = "backup"
            type = "file_age"
            path = "{stamp}"
            """
        )
    )
    environment = {**os.environ, "NOTIFIER_CONFIG": str(config)}

    plugins = subprocess.run(
        [str(python), "-m", "notifier", "plugins"],
        capture_output=True,
        text=True,
        env=environment,
    )
    checked = subprocess.run(
        [str(python), "-m", "notifier", "check", "--json", "backup"],
        capture_output=True,
        text=True,
        env=environment,
    )

    assert plugins.returncode == 0, plugins.stderr
    line = next(line for line in plugins.stdout.splitlines() if "file_age" in line)
    assert "notifier-example 0.1.0" in line
    assert checked.returncode == 0, checked.stderr
    (entry,) = json.loads(checked.stdout)
    assert (entry["name"], entry["type"], entry["status"]) == (
        "backup",
        "file_age",
        "OK",
    )


# --- isolation: misbehaving plugins -----------------------------------------

MISBEHAVING = """\
from __future__ import annotations

import threading

from notifier import CheckType, Result, Status, hookimpl

RELEASE = threading.Event()


class Raises:
    def __init__(self, context):
        pass

    def run(self):
        raise RuntimeError("disk exploded")


class Hangs:
    def __init__(self, context):
        pass

    def run(self):
        RELEASE.wait(60)
        return Result(Status.OK, "finally")


class WrongType:
    def __init__(self, context):
        pass

    def run(self):
        return "all good"


class Chatty:
    def __init__(self, context):
        pass

    def run(self):
        print("debugging output a plugin author forgot")
        return Result(Status.OK, "chatty but fine")


@hookimpl
def notifier_check_types():
    return [
        CheckType("raises", Raises),
        CheckType("hangs", Hangs),
        CheckType("wrong_type", WrongType),
        CheckType("chatty", Chatty),
    ]
"""


@pytest.fixture
def bad_registry(tmp_path) -> Registry:
    folder = safe_plugin_dir(tmp_path, {"misbehaving.py": MISBEHAVING})
    loaded = build_registry([folder], load_entry_points=False)
    assert loaded.failures == ()
    yield loaded
    loaded.manager.get_plugin("misbehaving").RELEASE.set()


def test_plugin_that_raises_becomes_unknown_with_the_reason(bad_registry, tmp_path):
    result = run_example(bad_registry, "raises", {}, tmp_path)

    assert result.status is Status.UNKNOWN
    assert result.summary == "check raised RuntimeError: disk exploded"


def test_plugin_returning_the_wrong_type_becomes_unknown(bad_registry, tmp_path):
    result = run_example(bad_registry, "wrong_type", {}, tmp_path)

    assert result.status is Status.UNKNOWN
    assert result.summary == "check returned a str, not a Result"


def test_plugin_that_hangs_becomes_unknown_at_its_timeout(bad_registry, tmp_path):
    result = run_example(bad_registry, "hangs", {"timeout": "1s"}, tmp_path)

    assert result.status is Status.UNKNOWN
    assert result.summary == "check timed out after 1s"


def test_hung_plugin_does_not_delay_another_check(bad_registry, tmp_path, web_server):
    def harness(type_name, options, name):
        check_type = bad_registry.check_types[type_name].check_type
        return make_check(check_type, options, tmp_path=tmp_path, name=name)

    hung = harness("hangs", {"timeout": "60s"}, "stuck")
    other = harness("http", {"url": f"{web_server}/"}, "web")
    runner = CheckRunner()  # what the daemon starts every run with
    reported = queue.Queue()

    runner.start("stuck", hung.check, 60.0, lambda r, d: reported.put(("stuck", r)))
    runner.start("web", other.check, 10.0, lambda r, d: reported.put(("web", r)))

    # The hung run can only end when RELEASE is set, after this result.
    name, result = reported.get(timeout=10)
    assert (name, result.status) == ("web", Status.OK)
    assert runner.running() == 1
    bad_registry.manager.get_plugin("misbehaving").RELEASE.set()
    assert reported.get(timeout=10)[0] == "stuck"


def test_plugin_writing_to_stdout_still_gives_its_result(bad_registry, tmp_path, capfd):
    result = run_example(bad_registry, "chatty", {}, tmp_path)

    assert result.status is Status.OK
    assert result.summary == "chatty but fine"
    assert "debugging output" in capfd.readouterr().out


@pytest.mark.slow
def test_plugin_writing_to_stdout_does_not_corrupt_check_json(tmp_path):
    folder = safe_plugin_dir(tmp_path, {"misbehaving.py": MISBEHAVING})
    config = tmp_path / "notifier.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [notifier]
            state_dir = "{tmp_path / "state"}"
            plugin_dirs = ["{folder}"]

            [[check]]
            name = "noisy"
            type = "chatty"

            [[check]]
            name = "broken"
            type = "raises"
            """
        )
    )

    checked = subprocess.run(
        [sys.executable, "-m", "notifier", "check", "--json", "-c", str(config)],
        capture_output=True,
        text=True,
    )

    report = json.loads(checked.stdout)
    assert "debugging output" in checked.stderr
    assert "noisy" in json.dumps(report)
    assert "check raised RuntimeError: disk exploded" in json.dumps(report)
    assert checked.returncode == Status.UNKNOWN


# --- the webhook transport ----------------------------------------------------


class _HookHandler(http.server.BaseHTTPRequestHandler):
    """Records each POST; the fixture gives every server its own list."""

    received: ClassVar[list[tuple[str, dict, dict]]]

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers), json.loads(body)))
        code = {"/down": 503, "/busy": 429, "/bad": 400}.get(self.path, 200)
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def hook_server():
    received: list[tuple[str, dict, dict]] = []
    handler = type("Handler", (_HookHandler,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def webhook_config():
    return build_config({"mail": {"transport": "webhook"}}, None, {}, ("webhook",))


def alert_message():
    now = datetime.now(UTC)
    event = AlertEvent(
        kind=EventKind.PROBLEM,
        check="root-disk",
        check_type="disk",
        host="web-1",
        status=Status.CRITICAL,
        previous_status=None,
        summary="/ is 91% full",
        since=now,
        at=now,
        evidence=("biggest: /var/log/huge.log",),
    )
    return compose_alert(
        [event],
        MailSettings(sender="notifier@web-1"),
        hostname="web-1",
        recipients=["ops@example.org"],
        now=now,
    )


def test_webhook_transport_loads_from_a_plugin_folder(registry):
    info = registry.transports["webhook"]

    assert Path(info.origin).name == "webhook_transport.py"


def test_webhook_posts_the_alert_as_json(registry, hook_server, monkeypatch):
    url, received = hook_server
    monkeypatch.setenv("NOTIFIER_WEBHOOK_URL", f"{url}/hooks/secret-id")
    monkeypatch.setenv("NOTIFIER_WEBHOOK_TOKEN", "t0ken")
    transport = registry.transports["webhook"].transport_type.create(webhook_config())

    with transport.session() as session:
        outcome = session.send(alert_message(), ["ops@example.org"])

    assert outcome.delivered == ("ops@example.org",)
    ((path, headers, posted),) = received
    assert path == "/hooks/secret-id"
    assert headers["Authorization"] == "Bearer t0ken"
    assert headers["Content-Type"] == "application/json"
    assert (posted["check"], posted["status"], posted["host"]) == (
        "root-disk",
        "CRITICAL",
        "web-1",
    )
    assert posted["to"] == ["ops@example.org"]
    assert "/ is 91% full" in posted["subject"]
    assert "biggest: /var/log/huge.log" in posted["text"]
    assert transport.describe() == "webhook http://127.0.0.1"  # no secret path


@pytest.mark.parametrize(
    ("path", "error", "kind"),
    [
        ("/down", ServerUnavailable, FailureKind.TRANSIENT),
        ("/busy", ServerUnavailable, FailureKind.TRANSIENT),
        ("/bad", MessageRefused, FailureKind.PERMANENT),
    ],
)
def test_webhook_failures_are_sorted_for_the_outbox(
    registry, hook_server, monkeypatch, path, error, kind
):
    url, _ = hook_server
    monkeypatch.setenv("NOTIFIER_WEBHOOK_URL", f"{url}{path}")
    transport = registry.transports["webhook"].transport_type.create(webhook_config())

    with pytest.raises(error) as caught, transport.session() as session:
        session.send(alert_message(), ["ops@example.org"])

    assert caught.value.kind is kind
    assert str(caught.value).startswith("webhook http://127.0.0.1: answered ")


def test_webhook_unreachable_is_transient(registry, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("NOTIFIER_WEBHOOK_URL", f"http://127.0.0.1:{port}/")
    transport = registry.transports["webhook"].transport_type.create(webhook_config())

    with pytest.raises(ServerUnavailable) as caught, transport.session() as session:
        session.send(alert_message(), ["ops@example.org"])

    assert "Connection refused" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "complaint"),
    [(None, "which is not set"), ("ftp://example.org/", "is not an http")],
)
def test_webhook_without_a_usable_url_is_a_config_problem(
    registry, monkeypatch, url, complaint
):
    if url is None:
        monkeypatch.delenv("NOTIFIER_WEBHOOK_URL", raising=False)
    else:
        monkeypatch.setenv("NOTIFIER_WEBHOOK_URL", url)
    validate = registry.transports["webhook"].transport_type.validate

    (problem,) = validate(webhook_config())

    assert problem.location == "mail"
    assert problem.key == "transport"
    assert complaint in problem.message


@pytest.mark.parametrize(
    ("path", "sent", "left", "dead"),
    [("/hook", 1, 0, 0), ("/down", 0, 1, 0), ("/bad", 0, 0, 1)],
)
def test_outbox_delivers_through_the_webhook_like_through_smtp(
    registry, hook_server, monkeypatch, tmp_path, path, sent, left, dead
):
    url, received = hook_server
    monkeypatch.setenv("NOTIFIER_WEBHOOK_URL", f"{url}{path}")
    config = build_config(
        {
            "notifier": {"state_dir": str(tmp_path / "state")},
            "mail": {"transport": "webhook"},
        },
        None,
        {},
        ("webhook",),
    )
    transport = registry.transports["webhook"].transport_type.create(config)
    outbox = Outbox.in_state_dir(config.notifier.state_dir)
    outbox.put(alert_message(), ["ops@example.org"])

    report = Sender(config, transport, outbox).deliver_due()

    assert len(received) == 1
    assert (len(report.sent), len(outbox.entries()), len(outbox.failed())) == (
        sent,
        left,
        dead,
    )


@pytest.mark.slow
def test_test_send_goes_out_through_the_webhook(tmp_path, hook_server):
    url, received = hook_server
    folder = safe_plugin_dir(tmp_path)
    config = tmp_path / "notifier.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [notifier]
            state_dir = "{tmp_path / "state"}"
            plugin_dirs = ["{folder}"]

            [mail]
            transport = "webhook"
            to = ["ops@example.org"]
            """
        )
    )
    environment = {**os.environ, "NOTIFIER_WEBHOOK_URL": f"{url}/hook"}

    sent = subprocess.run(
        [sys.executable, "-m", "notifier", "test-send", "-c", str(config)],
        capture_output=True,
        text=True,
        env=environment,
    )

    assert sent.returncode == 0, sent.stderr
    ((path, _, posted),) = received
    assert path == "/hook"
    assert posted["kind"] == "TEST"
    assert posted["to"] == ["ops@example.org"]
