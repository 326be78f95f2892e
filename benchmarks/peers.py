"""Compute cost of mmgat-live against two well-known peers, on the same audio, in one run.

Peers, written here from their papers with random weights (the cost does not depend on them):
  PANNs CNN14 (Kong et al. 2020): its live demo re-scores the last 10 s at 32 kHz every hop.
  YAMNet (MobileNet v1 on log-mel patches): one 0.96 s patch per hop.
Ours: one live pipeline step (frontend + graph + MMGAT) at W=10, hop 1 s.

1. Per hop: wall time of each model's live update, interleaved hop by hop on the same noise,
   after the window has filled. Goal: ours <= 0.1 x CNN14 at p50.
2. Offline: seconds of audio per wall second, each model batched its natural way.

    python benchmarks/peers.py --json OUT.json [--model MODEL.onnx] [--hops 50] [--threads 2]

Without --model it uses the shipped artifact, or else the seeded test artifact (same cost).
--device cuda runs every model on the GPU under bf16 autocast (and skips when there is none).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mmgat.commands.install import import_torchaudio
from mmgat.export.runtime import load_runtime
from mmgat.model.audio import FRAME_SAMPLES, SAMPLE_RATE
from mmgat.stream.pipeline import Pipeline
from mmgat.stream.settings import StreamSettings
from mmgat.stream.stream import Stream

from live_latency import percentiles
from machine import machine, save
from mmgat_ort import artifact  # the shipped model, else the tests' seeded one

torchaudio = import_torchaudio()

WINDOW = 10  # seconds each update scores, ours (graph nodes) and CNN14 (its input)
CNN14_RATE = 32_000
CNN14_SAMPLES = WINDOW * CNN14_RATE
YAMNET_STFT_HOP = 160
YAMNET_PATCH_HOP = 96 * YAMNET_STFT_HOP  # 0.96 s
YAMNET_PATCH_SAMPLES = 512 + 95 * YAMNET_STFT_HOP  # what 96 whole 512-point STFT frames span
YAMNET_SEPARABLE = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), *[(1, 512)] * 5,
                    (2, 1024), (1, 1024))  # (stride, channels) of MobileNet v1's 13 layers
OFFLINE_BATCH = {"ours": 64, "cnn14": 4, "yamnet": 64}
GOAL = 0.1  # ours / CNN14, per-hop p50


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU()]


class CNN14(nn.Module):
    """PANNs CNN14: waveforms (B, samples) at 32 kHz -> (B, 527) AudioSet probabilities."""

    def __init__(self):
        super().__init__()
        self.log_mel = nn.Sequential(
            torchaudio.transforms.MelSpectrogram(CNN14_RATE, n_fft=1024, hop_length=320, f_min=50.0,
                                                 f_max=14000.0, n_mels=64),
            torchaudio.transforms.AmplitudeToDB(top_db=None))
        self.bn0 = nn.BatchNorm2d(64)
        widths = (1, 64, 128, 256, 512, 1024, 2048)
        self.blocks = nn.Sequential(*(
            nn.Sequential(*conv_bn(cin, cout, 3), *conv_bn(cout, cout, 3), nn.AvgPool2d(1 if cout == 2048 else 2))
            for cin, cout in zip(widths, widths[1:])))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, 527)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = self.bn0(self.log_mel(waveforms)[..., None]).transpose(1, 3)  # BN per mel bin; (B, 1, T, 64)
        x = self.blocks(x).mean(dim=3)  # over frequency: (B, 2048, T')
        x = x.amax(dim=2) + x.mean(dim=2)
        return torch.sigmoid(self.fc_audioset(torch.relu(self.fc1(x))))


class YAMNet(nn.Module):
    """YAMNet: patches (B, YAMNET_PATCH_SAMPLES) at 16 kHz -> (B, 521) AudioSet probabilities."""

    def __init__(self):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            SAMPLE_RATE, n_fft=512, win_length=400, hop_length=YAMNET_STFT_HOP, f_min=125.0, f_max=7500.0,
            n_mels=64, power=1.0, center=False)
        layers, channels = conv_bn(1, 32, 3, stride=2), 32
        for stride, width in YAMNET_SEPARABLE:  # depthwise 3x3, then pointwise 1x1
            layers += conv_bn(channels, channels, 3, stride, groups=channels) + conv_bn(channels, width, 1)
            channels = width
        self.mobilenet = nn.Sequential(*layers)
        self.classifier = nn.Linear(1024, 521)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = torch.log(self.mel(patches) + 0.001).transpose(1, 2)[:, None]  # (B, 1, 96, 64)
        return torch.sigmoid(self.classifier(self.mobilenet(x).mean(dim=(2, 3))))


def wall_ms(call, *args) -> float:
    started = time.perf_counter()
    call(*args)
    return (time.perf_counter() - started) * 1e3


def per_hop(pipeline, state, forwards: dict, audio16: torch.Tensor, audio32: torch.Tensor, hops: int) -> dict:
    """Live updates hop by hop; ours fills its window first, the peers were warmed up apart."""
    times = {"ours": [], "cnn14": [], "yamnet": []}
    for index in range(WINDOW + hops):
        end = (index + 1) * FRAME_SAMPLES  # 16 kHz samples heard so far
        state.feed(audio16[end - FRAME_SAMPLES:end].numpy())
        ours_ms = wall_ms(pipeline.step, [state])
        if index < WINDOW:
            continue
        times["ours"].append(ours_ms)
        end32 = end * CNN14_RATE // SAMPLE_RATE
        times["cnn14"].append(wall_ms(forwards["cnn14"], audio32[None, end32 - CNN14_SAMPLES:end32]))
        times["yamnet"].append(wall_ms(forwards["yamnet"], audio16[None, end - YAMNET_PATCH_SAMPLES:end]))
    return {name: percentiles(values) for name, values in times.items()}


def offline(forward, chunks: torch.Tensor, chunk_seconds: float, batch: int) -> dict:
    forward(chunks[:batch])  # first call at this batch size allocates
    started = time.perf_counter()
    for start in range(0, len(chunks), batch):
        forward(chunks[start:start + batch])
    wall_s = time.perf_counter() - started
    audio_s = len(chunks) * chunk_seconds
    return {"batch": batch, "chunks": len(chunks), "audio_s": audio_s, "wall_s": wall_s,
            "audio_s_per_wall_s": audio_s / wall_s}


def gflops(forward, example: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter:
        forward(example)
    return counter.get_total_flops() / 1e9


def onnx_parameters(path: Path) -> int:
    import onnx  # the dev/train extra: only this count needs it

    return sum(int(np.prod(tensor.dims)) for tensor in onnx.load(str(path)).graph.initializer)


def show(report: dict, console: Console) -> None:
    m, models, ratios = report["machine"], report["models"], report["ratios"]
    table = Table(title=f"mmgat-live vs peers: {m['cpu']}, {m['cores']} cores, {report['threads']} torch "
                        f"thread(s), {report['device']}",
                  caption=f"goal: ours/CNN14 per-hop p50 <= {GOAL}: x{ratios['per_hop_p50']['ours/cnn14']:.3f} "
                          f"{'ok' if report['goal']['met'] else 'MISSED'}")
    for column in ("model", "per hop", "params M", "GFLOP/fwd", "hop p50 ms", "hop p99 ms", "ours/peer p50",
                   "offline x real time", "ours/peer offline"):
        table.add_column(column, justify="left" if column in ("model", "per hop") else "right")
    for name, model in models.items():
        hop, peer = model["per_hop_ms"], name != "ours"
        table.add_row(model["name"], model["per_hop_input"], f"{model['params'] / 1e6:.1f}",
                      f"{model['gflops_per_forward']:.2f}", f"{hop['p50']:.1f}", f"{hop['p99']:.1f}",
                      f"{ratios['per_hop_p50'][f'ours/{name}']:.3f}" if peer else "",
                      f"{model['offline']['audio_s_per_wall_s']:.1f}",
                      f"{ratios['offline_cost'][f'ours/{name}']:.3f}" if peer else "")
    console.print(table)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default="benchmarks/results/peers.json", metavar="OUT.json")
    parser.add_argument("--model", help="artifact (default: the shipped one, else the seeded test artifact)")
    parser.add_argument("--hops", type=int, default=50, help="measured hops, after the window has filled")
    parser.add_argument("--offline-seconds", type=int, default=60, help="audio for the offline figures")
    parser.add_argument("--threads", type=int, default=2, help="torch and ORT intra-op threads")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = parser.parse_args(argv)
    if args.offline_seconds < WINDOW:
        parser.error(f"--offline-seconds must be at least {WINDOW} (one CNN14 window)")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("peers: CUDA is not available; nothing measured", file=sys.stderr)
        return 0

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model_path = artifact(args.model)
    session, frontend = load_runtime(model_path, cpu=device.type == "cpu", intra_op_threads=args.threads)
    torch.manual_seed(0)
    peers = {"cnn14": CNN14().eval().to(device), "yamnet": YAMNet().eval().to(device)}
    # Everything a live user waits for: the copy to the device, the forward, the scores back.
    forwards = {"ours": frontend.embed, **{name: (lambda x, net=net: net(x.to(device)).float().cpu())
                                           for name, net in peers.items()}}
    seconds = max(WINDOW + args.hops, args.offline_seconds)
    audio16 = torch.from_numpy((0.1 * np.random.default_rng(0).standard_normal(seconds * SAMPLE_RATE))
                               .astype(np.float32))
    audio32 = torchaudio.functional.resample(audio16, SAMPLE_RATE, CNN14_RATE)  # once, not per hop
    offline_chunks = {  # (chunks, seconds each), non-overlapping
        "ours": (audio16[:args.offline_seconds * SAMPLE_RATE].reshape(-1, FRAME_SAMPLES), 1.0),
        "cnn14": (audio32[:args.offline_seconds // WINDOW * CNN14_SAMPLES].reshape(-1, CNN14_SAMPLES), WINDOW),
        "yamnet": (audio16[:args.offline_seconds * SAMPLE_RATE].unfold(0, YAMNET_PATCH_SAMPLES, YAMNET_PATCH_HOP),
                   YAMNET_PATCH_HOP / SAMPLE_RATE)}

    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        pipeline = Pipeline(session, frontend)
        pipeline.warm_up()
        state = Stream.fed(StreamSettings(WINDOW, 1.0, **session.graph))
        examples = {"ours": audio16[None, :FRAME_SAMPLES], "cnn14": audio32[None, :CNN14_SAMPLES],
                    "yamnet": audio16[None, :YAMNET_PATCH_SAMPLES]}
        flops = {name: gflops(forwards[name], example) for name, example in examples.items()}  # also warms up
        hop_ms = per_hop(pipeline, state, forwards, audio16, audio32, args.hops)
        offline_figures = {name: offline(forwards[name], *offline_chunks[name], OFFLINE_BATCH[name])
                           for name in forwards}

    described = {
        "ours": ("mmgat-live", "1 s frame, W=10 window", sum(p.numel() for p in frontend.parameters())
                 + onnx_parameters(model_path), "pipeline.step: frontend + graph push + MMGAT (ONNX Runtime)",
                 "frontend.embed on 1 s frames (graph pushes and MMGAT scoring not included)"),
        "cnn14": ("PANNs CNN14", "last 10 s at 32 kHz", sum(p.numel() for p in peers["cnn14"].parameters()),
                  "log-mel + CNN14 forward, batch 1 (audio resampled to 32 kHz once beforehand, not timed)",
                  "non-overlapping 10 s chunks at 32 kHz"),
        "yamnet": ("YAMNet", "last 0.96 s patch", sum(p.numel() for p in peers["yamnet"].parameters()),
                   f"log-mel + MobileNet v1 forward on {YAMNET_PATCH_SAMPLES} samples (96 STFT frames), batch 1",
                   "non-overlapping 0.96 s patches (YAMNet's own tagger hops 0.48 s: twice this cost)")}
    models = {name: {"name": title, "per_hop_input": hop_input, "params": params,
                     "gflops_per_forward": flops[name], "per_hop_ms": hop_ms[name], "per_hop_timed": hop_timed,
                     "offline": {**offline_figures[name], "timed": offline_timed}}
              for name, (title, hop_input, params, hop_timed, offline_timed) in described.items()}
    speed = {name: figures["audio_s_per_wall_s"] for name, figures in offline_figures.items()}
    ratios = {f"per_hop_{q}": {f"ours/{peer}": hop_ms["ours"][q] / hop_ms[peer][q] for peer in peers}
              for q in ("p50", "p99")}
    ratios["offline_cost"] = {f"ours/{peer}": speed[peer] / speed["ours"] for peer in peers}  # wall per audio s
    report = {"benchmark": "peers", "model": str(model_path), "provider": session.provider,
              "device": str(frontend.device), "threads": args.threads,
              "machine": machine(),
              "notes": "random-noise audio (numpy seed 0); peers with random weights; wall times; "
                       "gflops: FlopCounterMode (2 per multiply-add; convolutions and matmuls, no STFT), "
                       "ours: the frontend only (MMGAT runs in ONNX Runtime); params ours: frontend + ONNX "
                       "initializers",
              "models": models, "ratios": ratios,
              "goal": {"per_hop_p50_ours/cnn14": GOAL, "met": bool(ratios["per_hop_p50"]["ours/cnn14"] <= GOAL)}}
    save(report, args.json)
    show(report, Console(width=max(120, Console().width)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
