"""The offline lip-sync backend's audio->mouth map: a ridge regression from the speech-band log energies
of 5 audio frames around each lag to the two mouth signals, fitted on 18 clips of the
dev set by `benchmarks/bench_lipsync.py --fit` (whose held-out figures refit it without the clip they judge).
Generated: edit the benchmark, not this file."""

MODEL = {"context": 2, "bands": [80, 300, 800, 1600, 3200, 7600], "alpha": 0.1,
         "clips": 18,
         "W": [[-0.01926, -0.03239], [0.05052, 0.01768], [-0.03921, -0.05312], [0.00693, -0.01224], [-0.01391, -0.00263], [0.00216, 0.01478], [-0.0294, -0.065], [0.01869, 0.02885], [0.009, 0.02406], [0.06934, 0.03321], [-0.00529, -0.01769], [-0.01279, 0.03439], [-0.07758, -0.11397], [0.00802, 0.025], [0.07075, 0.1264], [0.15633, 0.10994], [0.00881, -0.03451], [0.01291, 0.03125], [-0.08868, -0.11439], [0.01531, 0.02265], [0.09767, 0.18365], [0.16825, 0.11296], [-0.00954, -0.02167], [-0.00515, 0.01365], [-0.07944, -0.08406], [0.0059, 0.02361], [0.12817, 0.23175], [0.15264, 0.08826], [0.03834, -0.04027], [-0.0116, -0.00624]]}
