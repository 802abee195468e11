"""`alignlab init`: a starter workspace, and --force never deletes what the user wrote."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from alignlab import cli, workspace
from alignlab.cli import app
from alignlab.config import load_config
from alignlab.workspace import STARTER, create_workspace


def test_init_force_rewrites_the_starter_files_and_keeps_the_users_leaves(tmp_path):
    mine = tmp_path / "taxonomy" / "compositional_skills" / "mine" / "qna.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("version: 3\n")
    (tmp_path / "taxonomy" / ".git").mkdir()

    refused = CliRunner().invoke(app, ["init", str(tmp_path)])
    assert refused.exit_code != 0 and "already exist" in str(refused.exception)
    assert not (tmp_path / "alignlab.yaml").exists()

    result = CliRunner().invoke(app, ["init", str(tmp_path), "--force"])
    assert result.exit_code == 0, result.output
    assert mine.read_text() == "version: 3\n" and (tmp_path / "taxonomy" / ".git").is_dir()
    written = create_workspace(tmp_path, force=True)  # what the command lists as written
    starters = sorted((STARTER / "taxonomy").rglob("qna.yaml"))
    assert starters and mine not in written
    for starter in starters:
        copy = tmp_path / "taxonomy" / starter.relative_to(STARTER / "taxonomy")
        assert copy.read_bytes() == starter.read_bytes() and copy in written
    assert load_config(tmp_path / "alignlab.yaml").name == tmp_path.name


def test_ctrl_c_says_what_is_kept_and_exits_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workspace, "create_workspace", interrupted)
    monkeypatch.setattr(sys, "argv", ["alignlab", "init", str(tmp_path)])
    with pytest.raises(SystemExit) as stopped:
        cli.main()
    assert stopped.value.code == 130 and "run the same command again" in capsys.readouterr().err
