"""The CPU live runtime without torch: every runtime module imports, and `mmgat-live` and
`mmgat-tag` run the demo clip, in a process where torch, torchaudio and torchvggish cannot be
imported (as after `pip install .`, which installs none of them)."""

import json
import subprocess
import sys
import textwrap

RUNTIME_MODULES = (
    "mmgat.model.audio", "mmgat.model.frontend_file", "mmgat.model.int8", "mmgat.model.graph",
    "mmgat.model.labels", "mmgat.model.serving", "mmgat.model.sidecar", "mmgat.commands.install",
    "mmgat.model.window", "mmgat.commands.command", "mmgat.export.artifact", "mmgat.export.runtime",
    "mmgat.stream.cli", "mmgat.stream.display", "mmgat.stream.latency", "mmgat.stream.options",
    "mmgat.stream.pipeline", "mmgat.stream.resample", "mmgat.stream.ring", "mmgat.stream.scheduler",
    "mmgat.stream.sinks", "mmgat.stream.sources", "mmgat.stream.stream", "mmgat.stream.tag",
    "mmgat.stream.tag_extras", "mmgat.stream.live", "mmgat.stream.settings",
    "mmgat.stream.tag_engine",
)
BLOCKED = ("torch", "torchaudio", "torchvggish")

SCRIPT = textwrap.dedent("""
    import importlib, sys

    class NotInstalled:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

    sys.meta_path.insert(0, NotInstalled())
    for name in {modules!r}:
        importlib.import_module(name)
    from mmgat.model.frontend_file import ASSETS
    from mmgat.stream.cli import main as live
    from mmgat.stream.tag import main as tag

    status = live(["--demo", "--no-display", "--as-fast-as-possible", "-q", "--jsonl", sys.argv[1]])
    status += tag([str(ASSETS / "demo.flac"), "--out", sys.argv[2], "--no-progress"])
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in {blocked!r})
    print("loaded:", loaded)
    sys.exit(status or bool(loaded))
""").format(blocked=BLOCKED, modules=RUNTIME_MODULES)


def test_the_live_runtime_runs_without_torch(tmp_path):
    live, tagged = tmp_path / "live.jsonl", tmp_path / "tags.jsonl"
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(live), str(tagged)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "loaded: []" in run.stdout
    records = [json.loads(line) for line in live.read_text().splitlines()]
    assert len(records) == 18 and "guitar" in records[-1]["active"]  # the demo: 18 s, a guitar throughout
    (row,) = [json.loads(line) for line in tagged.read_text().splitlines()]
    assert row["path"].endswith("demo.flac") and not row.get("error")
