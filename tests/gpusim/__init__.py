"""A CPU CUDA simulator for the project's kernels (``simulator.SimModule``), used by the tests.

g++ compiles the unmodified ``kernels/*.cu`` against ``cuda_sim.h``; every CUDA thread of a
launch runs as its own fiber, so warp shuffles, barriers and their misuse behave (and fail) as on
a GPU. Optional AddressSanitizer / ThreadSanitizer builds run their launches in a subprocess.
"""
