"""The runtime of `mmgat-live` and `mmgat-tag`: sources -> ring buffer -> stream (resampler,
1 s frames every hop) -> frontend -> instance graph -> MMGAT (ONNX Runtime) -> display and sinks.

Modules, one concern each: `sources` (device, file, stdin, array; the Source protocol), `ring`
(SPSC ring buffer), `resample` (streaming 16 kHz mono), `settings` (a stream's window, hop and
graph, resolved once), `stream` (one input's state), `pipeline` (the batched compute step),
`scheduler` (the one loop), `latency` (per-stage timings), `display` (rich dashboard, plain
lines), `sinks` (JSONL, CSV), `options` (the flags and setup both commands share), `cli` and
`live` (mmgat-live: its flags, its run), `tag`, `tag_engine` and `tag_extras` (mmgat-tag: its
flags, the local engine, Ray and Parquet).
The artifact and its frontend are loaded by export/runtime.py. The path of one block, function
by function: docs/architecture.md.
"""
