"""./scripts/demo installs only what the demo needs, once: pip runs again only when pyproject.toml or
the needed extras change. And what the demo leaves behind is ignored by git."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def checkout(tmp_path: Path) -> Path:
    """A copy of the script and pyproject.toml, with a .venv whose pip and whatsagent only log their calls."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "demo", tmp_path / "scripts" / "demo")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls.log"
    executable(
        bin_dir / "python",
        f'#!/usr/bin/env bash\nif [ "$1 $2" = "-m pip" ]; then echo "pip $*" >> {log}; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n',
    )
    executable(bin_dir / "whatsagent", f'#!/usr/bin/env bash\necho "whatsagent $*" >> {log}\n')
    return tmp_path


def run_demo(repo: Path, **env: str) -> list[str]:
    log = repo / "calls.log"
    log.unlink(missing_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    subprocess.run([str(repo / "scripts" / "demo"), "--port", "9"], env={**clean, **env}, check=True, cwd=repo)
    return log.read_text().splitlines()


def test_the_demo_installs_core_and_media_once_and_again_only_when_something_changed(tmp_path):
    repo = checkout(tmp_path)
    first = run_demo(repo)
    assert first[0].startswith("pip -m pip install") and first[0].endswith("-e .[media]"), first
    assert first[1] == "whatsagent demo --port 9"
    assert run_demo(repo) == ["whatsagent demo --port 9"], "nothing changed: no pip"

    with_key = run_demo(repo, OPENAI_API_KEY="sk-test")
    assert with_key[0].endswith("-e .[media,openai]"), "the SDK of the provider whose key is set"

    (repo / "pyproject.toml").write_text((repo / "pyproject.toml").read_text() + "\n# changed\n")
    assert run_demo(repo, OPENAI_API_KEY="sk-test")[0].startswith("pip "), "pyproject.toml changed: pip again"
    assert "dev" not in " ".join(with_key)


def test_what_the_demo_leaves_behind_is_ignored_by_git():
    leftovers = ["whatsagent-demo.db", "whatsagent-demo.db-wal", "whatsagent-demo.db.lock", "whatsagent-media/ab/cd"]
    result = subprocess.run(["git", "check-ignore", *leftovers], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.split() == leftovers
