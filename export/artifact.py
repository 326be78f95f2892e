"""The exported artifact's format, shared by the writer (export/onnx.py) and the runtime that
loads it (export/runtime.py).

An artifact is `NAME.onnx` with its metadata inside (JSON under the `mmgat` key) and
`NAME.onnx.sha256` beside it; the frontend file it was trained on lies beside it too, and is
accepted only when its fingerprint matches the metadata.
"""

from __future__ import annotations

from mmgat.model.graph import SIMILARITIES
from mmgat.model.labels import CLASSES, GROUPS

METADATA_KEY = "mmgat"
INPUTS = ("nodes", "weights", "scale_masks", "node_mask")
OUTPUTS = ("probs", "group_probs", "node_probs")
REQUIRED_METADATA = ("classes", "groups", "thresholds", "group_thresholds", "second_thresholds",
                     "window", "hop",
                     "neighbours", "frontend_name", "frontend_fingerprint", "frontend_file",
                     "text_encoder", "version", "training")


class ModelError(ValueError):
    """An artifact that cannot be used: missing, corrupt, or not matching its frontend."""


def check_metadata(metadata: dict, source) -> dict:
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ModelError(f"{source}: metadata lacks {', '.join(missing)}")
    if tuple(metadata["classes"]) != CLASSES or tuple(metadata["groups"]) != GROUPS:
        raise ModelError(f"{source}: its class list differs from this version's")
    for key, names in (("thresholds", CLASSES), ("second_thresholds", CLASSES),
                       ("group_thresholds", GROUPS)):
        values = metadata[key]
        if not (isinstance(values, list) and len(values) == len(names)
                and all(isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in values)):
            raise ModelError(f"{source}: its {key} are not {len(names)} numbers in [0, 1]")
    graph_settings(metadata, source)
    return metadata


def graph_settings(metadata: dict, source) -> dict:
    """How the model's instance graphs must be built: InstanceGraph's `neighbours` and
    `similarity` (artifacts from before `similarity` was recorded used cosine). The scales need
    nothing here: the model picks its masks among the three every graph carries."""
    similarity, neighbours = metadata.get("similarity", "cosine"), metadata["neighbours"]
    if similarity not in SIMILARITIES:
        raise ModelError(f"{source}: its instance graph uses similarity {similarity!r}, which this "
                         f"version does not implement ({', '.join(SIMILARITIES)})")
    if not isinstance(neighbours, int) or neighbours < 1:
        raise ModelError(f"{source}: its instance graph keeps {neighbours!r} neighbours per node; "
                         f"want a whole number >= 1")
    return {"neighbours": neighbours, "similarity": similarity}
