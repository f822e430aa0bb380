"""bpfsession(8): generated from the CLI's parser, committed, rendered cleanly, installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from bpfsession import manpage
from bpfsession.cli import build_parser
from tests.helpers import ROOT, run

PAGE = ROOT / "share" / "man" / "man8" / "bpfsession.8"


@pytest.fixture(scope="module")
def page() -> str:
    return PAGE.read_text()


@pytest.fixture(scope="module")
def rendered(page) -> str:
    """The page as `man` shows it on an 80-column terminal (warnings would fail the test)."""
    res = run(["man", "-l", str(PAGE)], env={**os.environ, "MANWIDTH": "80", "LANG": "C.UTF-8"})
    assert res.stderr == ""
    return res.stdout


def test_committed_page_equals_a_fresh_rendering(page):
    fresh = run([sys.executable, "-m", "bpfsession.manpage"], cwd=ROOT).stdout
    assert fresh == manpage.render()
    assert fresh == page, "share/man/man8/bpfsession.8 is stale: run scripts/gen-manpage.sh"


def test_every_command_and_option_of_the_parser_is_on_the_page(page):
    commands = list(manpage.walk(build_parser()))
    assert {words[0] for words, _, _ in commands} >= {"new", "send", "list", "show", "attach",
                                                      "map", "tui"}
    for words, parser, _ in commands:
        assert f'.SS "bpfsession {manpage.esc(" ".join(words))}"' in page, words
        for action in parser._actions:
            for option in action.option_strings:
                assert manpage.esc(option) in page, (words, option)


def test_groff_reports_no_warning():
    res = subprocess.run(["groff", "-ww", "-man", "-z", str(PAGE)], capture_output=True,
                         text=True, timeout=30)
    assert (res.returncode, res.stderr) == (0, "")


def test_man_renders_the_sections_and_the_contract_variables(rendered):
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "ENVIRONMENT",
                    "EXIT STATUS", "FILES", "EXAMPLES", "SEE ALSO"):
        assert f"\n{section}\n" in rendered, section
    environment = rendered.split("\nENVIRONMENT\n")[1].split("\nEXIT STATUS\n")[0]
    for var in ("BPFSESSION_IMPORT", "BPFSESSION_NETNS", "BPFSESSION_TIMEOUT", "BPFSESSION_NAME",
                "BPF_NUM_MAPS", "BPF_MAPid", "BPF_MAP_NAME", "BPF_OBJ", "BPFSESSION_ID"):
        assert var in environment, var
    files = rendered.split("\nFILES\n")[1]
    for path in ("/run/bpfsession", "/run/netns", "/sys/fs/bpf"):
        assert path in files
    see_also = rendered.split("\nSEE ALSO\n")[1]
    for ref in ("tc(8)", "ip-netns(8)", "bpftool(8)"):
        assert ref in see_also
    # Options are typed with ASCII dashes, as users copy them.
    assert "--netns" in rendered and "\u2010" not in rendered and "\u2212" not in rendered
    assert max(len(line) for line in rendered.splitlines()) <= 80


def test_roff_escaping_keeps_text_literal():
    assert manpage.esc(".x\n'y\\z-") == "\\&.x\n\\&'y\\ez\\-"
    assert manpage.usage_roff("bpfsession show [-j] SESSION") == \
        "bpfsession show [\\fB\\-j\\fR] \\fISESSION\\fR"


@pytest.fixture
def built_wheel(tmp_path):
    """The project's wheel, built from a copy of its sources (the checkout stays untouched)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("bpfsession", "tui", "share"):
        shutil.copytree(ROOT / name, src / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "-q", "--no-deps", "-w", str(out), str(src)], timeout=300)
    (wheel,) = out.glob("bpfsession-*.whl")
    return wheel


def test_installed_package_puts_page_and_completion_where_man_and_bash_look(built_wheel,
                                                                              tmp_path):
    # A separate environment, so the shared venv (an editable install) is never touched;
    # `pip --python` installs into it without giving it a pip of its own.
    env_dir = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
         "-q", "--no-deps", str(built_wheel)], timeout=300)
    installed = env_dir / "share" / "man" / "man8" / "bpfsession.8"
    assert installed.read_text() == PAGE.read_text()
    completion = env_dir / "share" / "bash-completion" / "completions" / "bpfsession"
    assert completion.read_text() == (ROOT / completion.relative_to(env_dir)).read_text()
    for shell_file in ("share/zsh/site-functions/_bpfsession",
                       "share/fish/vendor_completions.d/bpfsession.fish"):
        assert (env_dir / shell_file).read_text() == (ROOT / shell_file).read_text()
    # man derives its search path from PATH (bin/ -> ../share/man): `man bpfsession` works.
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    res = run(["man", "-w", "bpfsession"], env=env)
    assert res.stdout.strip() == str(installed)
