"""The offline lip-sync backend's audio->mouth map: a ridge regression from the speech-band log energies
of 5 audio frames around each lag to the two mouth signals, fitted on 18 clips of the
dev set by `benchmarks/bench_lipsync.py --fit` (whose held-out figures refit it without the clip they judge).
Generated: edit the benchmark, not this file."""

MODEL = {"context": 2, "bands": [80, 300, 800, 1600, 3200, 7600], "alpha": 0.1,
         "clips": 18,
         "W": [[0.01638, -0.01271], [0.0304, -0.00158], [-0.03315, -0.02595], [-0.02439, -0.02767], [-0.01829, -0.01674], [-0.00153, 0.00242], [-0.02458, -0.06269], [0.01211, 0.01593], [0.00636, 0.05562], [0.08298, 0.03883], [-0.00237, -0.00856], [-0.00629, 0.01567], [-0.09214, -0.11001], [0.00666, 0.02059], [0.07758, 0.15021], [0.16927, 0.11627], [-0.033, -0.04678], [-0.01738, -0.00432], [-0.10768, -0.13481], [0.02712, 0.03839], [0.13533, 0.22324], [0.16608, 0.10817], [-0.03048, -0.03824], [-0.00804, -0.01531], [-0.10915, -0.11587], [0.02742, 0.04253], [0.12957, 0.24094], [0.14079, 0.09482], [0.00615, -0.07093], [-0.06711, -0.05398]]}
