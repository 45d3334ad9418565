"""What `mipnerf bench` measures: training and rendering throughput, FLOP rates, MFU, memory.

The workload is the anchor's (hjxwhy/mipnerf_pl's model, timed the same way by
benchmarks/side_by_side.py), so the two can be compared side by side: rays from cameras on a
sphere of radius 4 looking at random points near the origin, near 2, far 6, Adam at lr 5e-4,
randomized sampling, white background, the loss of both levels (coarse x0.1); rendering is
deterministic in chunks. Training goes through the trainer's own `train_step` and optimizer
and rendering through `core.render.render_rays`, both under the command's one
`runtime.Runtime`, so the numbers are those of the real code paths.

- flops.py     the model's matmul FLOPs per sample / trained ray / rendered ray
- peaks.py     measured matmul peaks (for MFU), peak memory of a phase, the machine
- workload.py  the anchor's rays, an image's rays, the seeded model, the training settings
- run.py       run_bench: the phases (train, render, memory) -> BenchResult
- report.py    the result schema and the BENCHMARKS.md table rows
"""
