"""One cold load of a safetensors file by a Python loader, for genome-bench.

genome-bench drops the file from the page cache, then runs

    python cold_python_load.py LOADER FILE

and reads one JSON line: {"seconds": S, "bytes": N}. Only the load itself is
timed (after the imports), so the interpreter's start-up and torch's import
are not charged to the loader. LOADER:

  load_file        safetensors.torch.load_file(FILE): every tensor as a CPU
                   torch tensor (read into memory the loader allocates)
  fastsafetensors  fastsafetensors.fastsafe_open(FILE, nogds=True,
                   device="cpu"): every tensor through get_tensor (its own
                   parallel reads into host memory it allocates)

Each tensor's bytes are summed once so that nothing stays lazily unread.
"""

import json
import sys
import time


def load_file(path):
    from safetensors.torch import load_file as st_load

    start = time.perf_counter()
    tensors = st_load(path)
    n = sum(t.numel() * t.element_size() for t in tensors.values())
    return time.perf_counter() - start, n


def fastsafetensors(path):
    from fastsafetensors import fastsafe_open

    start = time.perf_counter()
    n = 0
    with fastsafe_open(filenames=[path], nogds=True, device="cpu", framework="pt") as f:
        for key in f.keys():
            t = f.get_tensor(key)
            n += t.numel() * t.element_size()
    return time.perf_counter() - start, n


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("load_file", "fastsafetensors"):
        print("usage: cold_python_load.py load_file|fastsafetensors FILE", file=sys.stderr)
        return 2
    import torch  # noqa: F401  (imported before the clock starts)

    seconds, n = globals()[sys.argv[1]](sys.argv[2])
    print(json.dumps({"seconds": seconds, "bytes": n}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
