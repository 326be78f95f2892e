"""What mmgat-train and mmgat-export share (commands/command.py): errors as one line with their exit
status, --debug for the traceback, -v / -q for the log level, Ctrl-C as status 130, and the
common flags before or after mmgat-train's subcommand."""

from __future__ import annotations

import logging

import pytest

from mmgat.commands.command import OneLineParser, add_common_arguments, run_command
from mmgat.export.artifact import ModelError
from mmgat.export.cli import main as export_main
from mmgat.model.train import cli, synth


def test_a_usage_error_is_one_line_and_status_2(capsys):
    assert cli.main(["fit", "--data", "d"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "mmgat-train: error: the following arguments are required: --out"]
    assert cli.main([]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "mmgat-train: error: the following arguments are required: command"]
    assert export_main([]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "mmgat-export: error: give CKPT and --out MODEL.onnx, or --verify MODEL.onnx"]


def test_a_user_error_is_one_line_and_status_1(tmp_path, capsys):
    missing = tmp_path / "missing"
    assert cli.main(["fit", "--data", str(missing), "--out", str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"mmgat-train: error: {missing} is neither a directory with manifest.jsonl nor an OpenMIC .npz"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_lets_the_error_through_with_its_traceback(where, tmp_path):
    job = ["fit", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "out")]
    with pytest.raises(OSError, match="neither a directory"):
        cli.main(["--debug", *job] if where == "before" else [*job, "--debug"])


def test_debug_lets_an_export_error_through(tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        export_main(["--verify", str(tmp_path / "missing.onnx"), "--debug"])


@pytest.mark.parametrize("argv, verbose, quiet, debug", [
    (["fit", "--data", "d", "--out", "o"], False, False, False),
    (["-v", "--debug", "fit", "--data", "d", "--out", "o"], True, False, True),
    (["fit", "--data", "d", "--out", "o", "-q"], False, True, False),
    (["-v", "fit", "--data", "d", "--out", "o", "--debug"], True, False, True),
])
def test_the_common_flags_go_before_or_after_the_subcommand(argv, verbose, quiet, debug):
    args = cli.build_parser().parse_args(argv)
    assert (args.verbose, args.quiet, args.debug) == (verbose, quiet, debug)


def test_ctrl_c_is_status_130_and_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(synth, "run", interrupted)  # registered as the job by build_parser()
    assert cli.main(["synth", "--out", str(tmp_path), "--clips", "1", "--seed", "0"]) == 130
    assert capsys.readouterr().err.splitlines() == ["mmgat-train: interrupted"]


def log_one_line_per_level(args, stop):
    log = logging.getLogger("mmgat.test_command")
    log.debug("a debug line")
    log.info("an info line")
    log.warning("a warning line")


@pytest.mark.parametrize("flags, shown", [
    ([], ["info", "warning"]),
    (["-q"], ["warning"]),
    (["-v"], ["debug", "info", "warning"]),
])
def test_verbose_and_quiet_set_the_level_of_the_packages_log_lines(flags, shown, capsys):
    def build_parser():
        parser = OneLineParser(prog="prog")
        add_common_arguments(parser)
        return parser

    assert run_command("prog", build_parser, log_one_line_per_level, flags) == 0
    lines = {"debug": "prog: a debug line", "info": "prog: an info line",
             "warning": "prog: warning: a warning line"}
    assert capsys.readouterr().err.splitlines() == [lines[level] for level in shown]
