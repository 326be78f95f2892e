"""`mmgat-train finetune` end to end: build OpenMIC-IRMAS and import recordings from the fixture
archives, fine-tune the shipped default for a few steps (stopped once with Ctrl-C and resumed),
export, and run mmgat-live on the result."""

from __future__ import annotations

import json
import resource


from live_fixtures import check_record, parse_records, run_live
from mmgat.model.frontend_file import DEFAULT_FRONTEND
from mmgat.model.train import finetune as finetune_module
from mmgat.model.train import train_frontend as train_frontend_module
from mmgat.model.train.cli import main
from mmgat.model.train.data import read_manifest
from mmgat.model.train.evaluate import evaluate
from mmgat.model.train.openmic_irmas import build
from mmgat.model.train.real import import_recordings
from mmgat.model.train.shipped import shipped_checkpoint
from real_fixtures import write_irmas, write_openmic, write_recordings


def test_the_shipped_model_is_rebuilt_as_a_checkpoint(tmp_path):
    from mmgat.model.checkpoint import load_checkpoint

    path = shipped_checkpoint(tmp_path / "base.pt")  # parity-checked against the artifact
    model, checkpoint = load_checkpoint(path)
    assert checkpoint["frontend"]["name"] == "vggish-trunk" and checkpoint["window"] == 10
    assert model.config.label_embeddings and model.config.auxiliary


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: what the test costs, whatever else
    shares the machine (wall time on this shared 2-core machine varies fourfold)."""
    own, children = (resource.getrusage(who) for who in
                     (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def test_finetune_stops_resumes_exports_and_runs_live(tmp_path, monkeypatch, capsys):
    started = cpu_seconds()
    data, mine = tmp_path / "openmic-irmas", tmp_path / "mine"
    build(write_openmic(tmp_path / "openmic"), write_irmas(tmp_path / "irmas"), data)
    import_recordings(mine, folders=write_recordings(tmp_path / "recordings"))
    out = tmp_path / "run"

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    # A schedule of one step, its probe fitted briefly: the machinery, not the training.
    monkeypatch.setattr(finetune_module, "seconds_per_step", lambda device: 1e9)
    monkeypatch.setattr(train_frontend_module, "PROBE_STEPS", 10)
    with monkeypatch.context() as patch:  # Ctrl-C once the frontend is trained
        patch.setattr(finetune_module, "fit", stopped)
        assert main(["finetune", "--data", str(data), "--replay", str(mine), "--out", str(out),
                     "--device", "cpu", "--minutes", "0.05"]) == 130
    state = json.loads((out / "finetune.json").read_text())
    assert state["stage"] == "mmgat" and state["frontend_steps"] > 0  # per-second labels: trunk
    frontend = out / DEFAULT_FRONTEND.name
    trained_at = frontend.stat().st_mtime_ns
    assert main(["finetune", "--data", str(data), "--out", str(out), "--minutes", "0.05"]) == 1
    assert "--resume" in capsys.readouterr().err
    summary = finetune_module.finetune(data, out, minutes=0.05, resume=True, device="cpu",
                                       progress=False)
    assert frontend.stat().st_mtime_ns == trained_at  # the frontend was not trained again
    assert json.loads((out / "finetune.json").read_text())["stage"] == "done"
    assert summary["epochs"] >= 1 and 0.0 <= summary["val"]["f1_micro"] <= 1.0

    report = evaluate(out / "mmgat.onnx", data, split="all", device="cpu")  # with unknowns
    clips = read_manifest(data)
    assert report["clips"] == len(clips)
    for name, row in report["per_class"].items():  # support: the known positives
        assert row["support"] == sum(name in e["clip_labels"] for e in clips)

    clip = next((data / "audio").glob("*.flac"))
    done = run_live(["--model", out / "mmgat.onnx", "--file", clip, "--cpu", "--no-display",
                     "--as-fast-as-possible", "--jsonl", "-"])
    assert done.returncode == 0, done.stderr.decode()
    records = parse_records(done.stdout)
    assert len(records) >= 10
    for record in records:
        check_record(record, window=10)
    assert cpu_seconds() - started < 60


def test_finetune_errors_are_one_line(tmp_path, capsys):
    assert main(["finetune", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 1
    assert "not a data set" in capsys.readouterr().err
    assert main(["finetune", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--resume"]) == 1
