"""One cold load of a safetensors file by a Python loader, for genome-bench.

genome-bench drops the file from the page cache, then runs

    python cold_python_load.py LOADER FILE

and reads one JSON line: {"seconds": S, "bytes": N}. Only the load itself is
timed (after the imports), so the interpreter's start-up and torch's import
are not charged to the loader, up to a first touch of every 4 KiB of every
tensor: safetensors' load_file (0.8) maps the file and returns tensors over
the mapping, whose reads happen on that first touch; a loader that read the
bytes already pays next to nothing for it. LOADER:

  load_file        safetensors.torch.load_file(FILE): every tensor as a CPU
                   torch tensor (read into memory the loader allocates)
  fastsafetensors  fastsafetensors.fastsafe_open(FILE, nogds=True,
                   device="cpu"): every tensor through get_tensor (its own
                   parallel reads into host memory it allocates)

"""

import json
import sys
import time


def touch(t):
    """Reads one byte of every 4 KiB of a tensor (and its last); its size in bytes."""
    import torch

    b = t.reshape(-1).view(torch.uint8)
    if b.numel():
        b[::4096].sum().item()
        b[-1].item()
    return b.numel()


def load_file(path):
    from safetensors.torch import load_file as st_load

    start = time.perf_counter()
    tensors = st_load(path)
    n = sum(touch(t) for t in tensors.values())
    return time.perf_counter() - start, n


def fastsafetensors(path):
    from fastsafetensors import fastsafe_open

    start = time.perf_counter()
    n = 0
    with fastsafe_open(filenames=[path], nogds=True, device="cpu", framework="pt") as f:
        for key in f.keys():
            n += touch(f.get_tensor(key))
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
