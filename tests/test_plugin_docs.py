"""docs/writing-plugins.md agrees with the code it documents.

The hook contract lives in notifier/hookspecs.py; the guide must have one
section per hook whose heading is the hook's signature, and the examples in
the guide must work when copied.
"""

from __future__ import annotations

import ast
import re
import typing
from email.message import EmailMessage
from pathlib import Path

import pytest

from notifier import SendOutcome, Status, TransportType, hookspecs
from notifier.checks.perfdata import metrics_of, parse_perfdata
from notifier.options import Kind
from notifier.plugins import DISABLE_ENV, TRACE_ENV, build_registry
from notifier.testing import load_plugin_file, run_check_type

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "writing-plugins.md"
HOOKSPECS = REPO / "notifier" / "hookspecs.py"


def hook_signatures() -> dict[str, tuple[str, ast.FunctionDef]]:
    """Return ``name(args) -> returns`` of every hookspec, by hook name."""
    tree = ast.parse(HOOKSPECS.read_text())
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(target, ast.Name) and target.id == "hookspec":
                returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
                signature = f"{node.name}({ast.unparse(node.args)}){returns}"
                found[node.name] = (signature, node)
    return found


def sections(text: str) -> dict[str, str]:
    """Return the text under each ``##``/``###`` heading, by heading."""
    parts = re.split(r"^(#{2,3} .+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


@pytest.fixture(scope="module")
def guide() -> str:
    return GUIDE.read_text()


def test_hookspecs_are_found():
    # Guards the parser below: an empty result would make every check pass.
    assert "notifier_check_types" in hook_signatures()


def test_every_hook_has_a_section_headed_by_its_exact_signature(guide):
    headings = set(sections(guide))

    for name, (signature, _) in hook_signatures().items():
        expected = f"### `{signature}`"
        documented = [h for h in headings if h.startswith(f"### `{name}(")]
        assert documented, f"{name} has no section in {GUIDE.name}"
        assert documented == [expected], (
            f"{name}: the guide says {documented}, hookspecs.py says {expected!r}"
        )


def test_no_section_documents_a_hook_that_does_not_exist(guide):
    hooks = hook_signatures()

    for heading in sections(guide):
        match = re.match(r"### `(notifier_\w+)\(", heading)
        if match:
            assert match.group(1) in hooks, f"stale section: {heading}"


def test_hook_options_are_mentioned_in_their_section(guide):
    by_heading = sections(guide)

    for signature, node in hook_signatures().values():
        text = by_heading[f"### `{signature}`"]
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call):
                for keyword in decorator.keywords:
                    if keyword.arg and ast.literal_eval(keyword.value):
                        assert keyword.arg in text, (signature, keyword.arg)


def test_each_hook_section_has_an_example_that_implements_it(guide, tmp_path):
    by_heading = sections(guide)

    for name, (signature, _) in hook_signatures().items():
        blocks = [b for b in python_blocks(by_heading[f"### `{signature}`"])]
        implementing = [b for b in blocks if f"def {name}(" in b]
        assert implementing, f"the {name} section has no example implementing it"
        for index, block in enumerate(implementing):
            path = tmp_path / f"{name}_{index}.py"
            path.write_text(block)
            module = load_plugin_file(path)
            returned = getattr(module, name)()
            assert isinstance(returned, list) and returned, (name, returned)


def test_check_type_example_runs(guide, tmp_path):
    section = sections(guide)["### `notifier_check_types() -> list[CheckType]`"]
    path = tmp_path / "always_ok.py"
    path.write_text(python_blocks(section)[0])

    result = run_check_type(path, {}, tmp_path=tmp_path)

    assert result.status is Status.OK


def test_transport_example_delivers(guide, tmp_path, capsys):
    section = sections(guide)["### `notifier_transports() -> list[TransportType]`"]
    path = tmp_path / "print_transport.py"
    path.write_text(python_blocks(section)[0])
    (transport_type,) = load_plugin_file(path).notifier_transports()
    message = EmailMessage()
    message["Subject"] = "[notifier] CRITICAL web-1: disk"

    transport = transport_type.create(None)
    with transport.session() as session:
        outcome = session.send(message, ["ops@example.org"])

    assert isinstance(transport_type, TransportType)
    assert outcome == SendOutcome(("ops@example.org",))
    assert "[notifier] CRITICAL web-1: disk" in capsys.readouterr().err


def test_twenty_line_drop_in_loads_from_a_folder_and_runs(guide, tmp_path):
    example = python_blocks(sections(guide)["## A check in twenty lines"])[0]
    folder = tmp_path / "plugins"
    folder.mkdir(mode=0o755)
    (folder / "uptime_check.py").write_text(example)
    (folder / "uptime_check.py").chmod(0o644)

    registry = build_registry([folder], load_entry_points=False)
    check_type = registry.check_types["rebooted"].check_type
    long_ago = run_check_type(check_type, {"min_uptime": "1s"}, tmp_path=tmp_path)
    recent = run_check_type(check_type, {"min_uptime": "10000d"}, tmp_path=tmp_path)

    assert registry.failures == ()
    assert len(example.strip().splitlines()) <= 25
    assert long_ago.status is Status.OK
    assert recent.status is Status.WARNING
    assert recent.metrics["uptime_seconds"] > 1


def test_every_option_kind_is_in_the_kinds_table(guide):
    for kind in typing.get_args(Kind):
        assert f"| `{kind}` |" in guide, f"option kind {kind!r} is not documented"


def test_environment_variables_named_in_the_guide_are_the_real_ones(guide):
    assert f"{TRACE_ENV}=1" in guide
    assert f"{DISABLE_ENV}=" in guide


def test_perf_data_examples_in_the_guide_are_what_the_parser_does(guide):
    examples = {
        "`load1=0.55;5;10;0;` gives `load1 = 0.55`": ("load1=0.55;5;10;0;", "load1"),
        "`'/ used'=12MB` gives\n`/ used_bytes = 12582912`": (
            "'/ used'=12MB",
            "/ used_bytes",
        ),
        "`rta=0.5ms` gives `rta_seconds = 0.0005`": ("rta=0.5ms", "rta_seconds"),
    }

    for sentence, (printed, name) in examples.items():
        assert sentence in guide
        value = float(sentence.rsplit("= ", 1)[1].rstrip("`"))
        assert metrics_of(parse_perfdata(printed)) == {name: value}


def test_guide_is_linked_from_the_plugins_readme():
    assert "docs/writing-plugins.md" in (REPO / "plugins" / "README.md").read_text()


def test_hookspecs_module_holds_only_specs():
    # The style guide: hookspecs.py is the contract and nothing else lives there.
    public = [
        name
        for name in dir(hookspecs)
        if name.startswith("notifier_") and callable(getattr(hookspecs, name))
    ]
    assert sorted(public) == sorted(hook_signatures())
