"""Entry points read from the installed distributions' own files, compared with
what importlib.metadata reads from the same files."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from notifier.entrypoints import entry_points


def every_group() -> set[str]:
    return set(importlib.metadata.entry_points().groups)


def test_finds_what_importlib_metadata_finds_in_this_environment():
    groups = every_group()
    assert "console_scripts" in groups  # pip, pytest, ruff: there is something

    for group in sorted(groups):
        ours = {
            (e.name, e.value, e.distribution, e.version) for e in entry_points(group)
        }
        theirs = {
            (e.name, e.value, e.dist.name, e.dist.version)
            for e in importlib.metadata.entry_points(group=group)
        }
        assert ours == theirs, group


def install(site: Path, folder: str, entry_points_txt: str, metadata: str = "") -> None:
    info = site / folder
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points_txt))
    if metadata:
        name = "PKG-INFO" if folder.endswith(".egg-info") else "METADATA"
        (info / name).write_text(textwrap.dedent(metadata))


def test_the_first_copy_on_the_path_wins_as_python_would_import_it(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for site, version in ((first, "2.0"), (second, "1.0")):
        install(
            site,
            f"Acme_Checks-{version}.dist-info",
            "[notifier]\nacme = acme_checks\n",
            f"Metadata-Version: 2.1\nName: acme-checks\nVersion: {version}\n",
        )

    found = entry_points("notifier", [str(first), str(second)])

    assert [(e.distribution, e.version) for e in found] == [("acme-checks", "2.0")]


def test_reads_egg_info_sections_comments_and_extras(tmp_path):
    site = tmp_path / "site"
    install(
        site,
        "old_plugin.egg-info",
        """\
        # written by setuptools
        [console_scripts]
        old = old_plugin:main

        [notifier]
        ; two plugins in one distribution
        first = old_plugin.checks
        second = old_plugin.more:Registry.instance [fancy]
        """,
        "Metadata-Version: 1.1\nName: old-plugin\nVersion: 0.3.dev0\n\nName: body\n",
    )

    found = entry_points("notifier", [str(site)])

    assert [(e.name, e.value) for e in found] == [
        ("first", "old_plugin.checks"),
        ("second", "old_plugin.more:Registry.instance [fancy]"),
    ]
    assert {(e.distribution, e.version) for e in found} == {("old-plugin", "0.3.dev0")}


def test_a_distribution_without_metadata_is_named_by_its_folder(tmp_path):
    install(tmp_path, "bare_dist-4.1.dist-info", "[notifier]\nbare = bare_mod\n")

    (found,) = entry_points("notifier", [str(tmp_path)])

    assert (found.distribution, found.version) == ("bare_dist", "4.1")


def test_zip_files_and_missing_folders_on_the_path_are_passed_over(tmp_path):
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("z-1.0.dist-info/entry_points.txt", "[notifier]\nz = z\n")
    site = tmp_path / "site"
    install(site, "real-1.0.dist-info", "[notifier]\nreal = real_mod\n")

    found = entry_points("notifier", [str(archive), str(tmp_path / "gone"), str(site)])

    assert [e.name for e in found] == ["real"]


def test_load_imports_the_module_and_follows_the_attributes(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "ep_target_mod.py").write_text(
        "class Registry:\n    class instance:\n        answer = 42\n"
    )
    install(
        site,
        "ep_target-1.0.dist-info",
        "[notifier]\nwhole = ep_target_mod\n"
        "part = ep_target_mod:Registry.instance [x]\n",
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "ep_target_mod", raising=False)

    loaded = {e.name: e.load() for e in entry_points("notifier")}

    assert loaded["whole"].__name__ == "ep_target_mod"
    assert loaded["part"].answer == 42


def test_a_missing_module_fails_at_load_not_at_discovery(tmp_path):
    install(
        tmp_path, "ghost-1.0.dist-info", "[notifier]\nghost = no_such_module_here\n"
    )

    (found,) = entry_points("notifier", [str(tmp_path)])

    with pytest.raises(ModuleNotFoundError, match="no_such_module_here"):
        found.load()
