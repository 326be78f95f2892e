"""The live runtime (`mmgat-live`): sources -> ring buffer -> resampler -> 1 s frames every hop ->
frontend -> instance graph -> MMGAT (ONNX Runtime) -> display and sinks.

Modules, one concern each: `ring` (SPSC ring buffer), `resample` (streaming 16 kHz mono),
`sources` (device, file, stdin), `pipeline` (per-stream state, batched compute step), `runner`
(the worker loop), `latency` (per-stage timings), `display` (rich dashboard, plain lines),
`sinks` (JSONL, CSV), `cli` (the entry point).
"""
