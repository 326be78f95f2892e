"""ONNX export: parity with torch, metadata, hash checks, provider choice, frontend matching."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmgat.export.cli import main as export_main
from mmgat.export.onnx import PARITY_TOLERANCE, PARITY_WINDOWS, export_checkpoint, parity, verify
from mmgat.export.artifact import ModelError
from mmgat.export.runtime import CPU, CUDA, MMGATSession, choose_providers, load_runtime
from mmgat.model.checkpoint import load_checkpoint, random_checkpoint
from mmgat.model.frontend import Frontend, save_frontend, seeded_init
from mmgat.model.frontend_file import serving_precision
from mmgat.model.labels import CLASSES


def test_parity_for_every_window(tiny_model, tiny_checkpoint):
    model, _ = load_checkpoint(tiny_checkpoint)
    differences = parity(model, MMGATSession(tiny_model))
    assert set(differences) == set(PARITY_WINDOWS) == {1, 2, 10, 37, 64}
    assert max(differences.values()) <= PARITY_TOLERANCE


def test_parity_is_able_to_fail(tiny_model, tiny_checkpoint):
    model, _ = load_checkpoint(tiny_checkpoint)
    model.class_bias.data += 1.0  # a torch model that no longer matches the artifact
    assert max(parity(model, MMGATSession(tiny_model), windows=(10,)).values()) > 1e-2


def test_metadata_is_inside_the_model(tiny_model):
    session = MMGATSession(tiny_model)
    meta = session.metadata
    assert meta["classes"] == list(CLASSES) and len(meta["thresholds"]) == 20
    assert meta["groups"] == ["soft", "hard", "other"]
    assert meta["window"] == 10 and meta["hop"] == 1.0 and meta["text_encoder"] == "random-test"
    assert meta["frontend_name"] == "vggish-trunk" and len(meta["frontend_fingerprint"]) == 16
    assert meta["version"] and "clips" in meta["training"]
    assert session.provider == CPU


def test_intra_op_threads_is_configurable(tiny_model):
    session = MMGATSession(tiny_model, intra_op_threads=2)
    assert session.session.get_session_options().intra_op_num_threads == 2


def test_provider_choice_without_a_gpu():
    assert choose_providers(False, [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers(True, [CUDA, CPU]) == [CPU]
    assert choose_providers(False, [CPU]) == [CPU]


def test_refuses_tampered_or_unhashed_or_foreign_artifacts(tiny_model, tmp_path):
    copy = tmp_path / "m.onnx"
    data = tiny_model.read_bytes()
    copy.write_bytes(data[:-10])
    shutil.copy(f"{tiny_model}.sha256", f"{copy}.sha256")
    with pytest.raises(ModelError, match="sha256"):
        MMGATSession(copy)
    (tmp_path / "m.onnx.sha256").unlink()
    with pytest.raises(ModelError, match="no recorded hash"):
        MMGATSession(copy)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01junk")
    (tmp_path / "junk.onnx.sha256").write_text(hashlib.sha256(junk.read_bytes()).hexdigest())
    with pytest.raises(ModelError, match="not a valid"):
        MMGATSession(junk)
    with pytest.raises(ModelError, match="not found"):
        MMGATSession(tmp_path / "absent.onnx")


def test_runtime_refuses_a_frontend_it_was_not_trained_on(tiny_model, tmp_path):
    session, frontend = load_runtime(tiny_model)
    assert frontend.recorded_fingerprint == session.metadata["frontend_fingerprint"]
    assert frontend.precision == serving_precision(frontend.device)
    assert load_runtime(tiny_model, precision="fp32")[1].precision == "fp32"  # --precision fp32
    moved = tmp_path / "artifact"
    moved.mkdir()
    for path in tiny_model.parent.iterdir():
        shutil.copy(path, moved / path.name)
    other = seeded_init(Frontend(), seed=99).eval()
    save_frontend(other, moved / session.metadata["frontend_file"])
    with pytest.raises(ModelError, match="trained on frontend"):
        load_runtime(moved / tiny_model.name)


def test_models_without_auxiliary_head_export_group_probabilities(tmp_path):
    checkpoint = random_checkpoint(tmp_path, seed=1, auxiliary=False, scales=(1,))
    path = export_checkpoint(checkpoint, tmp_path / "noaux.onnx")
    report = verify(path, checkpoint)
    assert report["parity"] == "ok"
    out = MMGATSession(path).score(*[t.numpy() for t in _inputs(load_checkpoint(checkpoint)[0])])
    probs, groups = out["probs"][0], out["group_probs"][0]
    assert abs(groups[2] - probs[CLASSES.index("voice")]) < 1e-6


def _inputs(model):
    from mmgat.export.onnx import example_inputs
    return example_inputs(model, 5)


def test_cli_export_and_verify(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert export_main([str(tiny_checkpoint), "--out", str(out)]) == 0
    assert capsys.readouterr().err.splitlines() == [f"mmgat-export: wrote {out} and cli.onnx.sha256"]
    assert export_main([str(tiny_checkpoint), "--out", str(tmp_path / "quiet.onnx"), "-q"]) == 0
    assert capsys.readouterr().err == ""  # -q: no info lines
    assert export_main(["--verify", str(out), str(tiny_checkpoint)]) == 0
    assert json.loads(capsys.readouterr().out)["parity"] == "ok"


def test_cli_user_errors_are_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mmgat.export.cli", "--verify",
                             str(tmp_path / "nope.onnx")], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert result.stderr.startswith("mmgat-export: error:")


def test_the_shipped_model_verifies_and_runs_with_the_frontend_it_names():
    """The package's own artifact: hash and metadata check out, and the frontend shipped
    beside it is the one its MMGAT was trained on (same fingerprint)."""
    from mmgat.export.runtime import DEFAULT_MODEL, load_runtime

    if not DEFAULT_MODEL.is_file():
        pytest.skip("no model has been shipped into the package yet")
    assert verify(DEFAULT_MODEL)["metadata"] == "ok"
    session, frontend = load_runtime(cpu=True)
    assert frontend.recorded_fingerprint == session.metadata["frontend_fingerprint"]
    assert frontend.fingerprint() == frontend.recorded_fingerprint  # the weights as they load


def test_a_model_without_its_frontend_beside_it_is_an_error_naming_the_file(tiny_model, tmp_path):
    alone = tmp_path / "alone.onnx"
    for suffix in ("", ".sha256"):
        shutil.copyfile(f"{tiny_model}{suffix}", f"{alone}{suffix}")
    frontend_name = MMGATSession(alone).metadata["frontend_file"]
    with pytest.raises(ModelError, match=f"needs its frontend {frontend_name}"):
        load_runtime(alone)


def with_metadata(model, path, change) -> Path:
    """A copy of the artifact whose metadata `change(metadata_text)` rewrote, hash recorded."""
    import onnx

    proto = onnx.load(str(model))
    for prop in proto.metadata_props:
        if prop.key == "mmgat":
            prop.value = change(prop.value)
    onnx.save(proto, str(path))
    Path(f"{path}.sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest())
    return path


@pytest.mark.parametrize("change, message", [
    (lambda text: text[: len(text) // 2], "not a valid"),  # malformed JSON
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "thresholds"}), "lacks thresholds"),
    (lambda text: json.dumps({**json.loads(text), "classes": json.loads(text)["classes"][:-1]}), "class list"),
    (lambda text: json.dumps({**json.loads(text), "thresholds": json.loads(text)["thresholds"][:-1]}),
     "thresholds are not 20"),
    (lambda text: json.dumps({**json.loads(text), "group_thresholds": ["x"] * 3}), "group_thresholds"),
])
def test_refuses_missing_or_malformed_metadata(tiny_model, tmp_path, change, message):
    with pytest.raises(ModelError, match=message):
        MMGATSession(with_metadata(tiny_model, tmp_path / "m.onnx", change))
