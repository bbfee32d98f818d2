"""A training loop publishing versions of one LoRA adapter to the servers on
its node, through files and RELOAD (README, "Publishing new versions").

Every step the trainer updates its LoRA tensors, writes them to a temporary
file in the adapter's directory and renames it over adapter_model.safetensors
(a rename is atomic: any load opens the old file or the new one, never half
of each; the config does not change between versions, so the two files never
pair across versions), then asks genomed to RELOAD the name. RELOAD loads
the new file as a new generation beside the one in use and swaps it in once
verified: every acquire after it returns gets the new version, a request
still holding the old version keeps reading its bytes until it releases
them, and a version that fails to load leaves the previous one serving
(the trainer gets the typed error). Every server on the node (vLLM with
genomed_vllm, or any genomed client) sees the version as a content digest
(`Lease.digest`), so caches keyed by it never serve a stale version.

With --memory there are no files: each version's tensors and config go
to genomed from the trainer's memory (client.publish: two sealed memfds,
validated as files are and swapped in the same way; the trainer must run
as genomed's user or be given --publish-uid / --publish-gid), and --root
is not needed.

    python publish_versions.py --socket /run/genomed.sock --root /srv/adapters \\
        --name policy --steps 3
    python publish_versions.py --socket /run/genomed.sock --memory --name policy
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Dict

import genomed
import torch
from safetensors.torch import save_file

LAYERS, HIDDEN, RANK, ALPHA = 2, 64, 8, 16
TARGETS = ("q_proj", "v_proj")


def initial_tensors(seed: int = 0) -> Dict[str, torch.Tensor]:
    """PEFT's names and shapes for a LoRA on TARGETS of a LAYERS-layer model."""
    gen = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(LAYERS):
        for module in TARGETS:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(RANK, HIDDEN, generator=gen)
            tensors[f"{prefix}.lora_B.weight"] = torch.zeros(HIDDEN, RANK)
    return tensors


def train_step(tensors: Dict[str, torch.Tensor], step: int) -> Dict[str, torch.Tensor]:
    """Stands for an optimiser step: any change of the weights makes a new version."""
    gen = torch.Generator().manual_seed(1000 + step)
    return {k: v + 0.01 * torch.randn(v.shape, generator=gen) for k, v in tensors.items()}


CONFIG = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": RANK, "lora_alpha": ALPHA,
          "lora_dropout": 0.0, "bias": "none", "target_modules": list(TARGETS),
          "base_model_name_or_path": "my-base-model"}


def write_config(adapter_dir: Path) -> None:
    """PEFT's adapter_config.json, written once (versions share it)."""
    adapter_dir.mkdir(parents=True, exist_ok=True)
    tmp = adapter_dir / ".adapter_config.json.tmp"
    tmp.write_text(json.dumps(CONFIG, indent=2) + "\n")
    os.replace(tmp, adapter_dir / "adapter_config.json")


def publish(client: genomed.Client, root: Path, name: str,
            tensors: Dict[str, torch.Tensor]) -> genomed.ReloadInfo:
    """Writes one version's tensors and swaps it in. A name not resident yet
    is simply loaded (its first version)."""
    adapter_dir = root / name
    tmp = adapter_dir / f".adapter_model.safetensors.{os.getpid()}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, adapter_dir / "adapter_model.safetensors")
    return client.reload(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--root", type=Path, help="one of genomed's --root (not with --memory)")
    parser.add_argument("--memory", action="store_true",
                        help="publish from memory (client.publish), no files")
    parser.add_argument("--name", default="policy")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    if (args.root is None) != args.memory:
        parser.error("give --root DIR, or --memory")

    if not args.memory:
        write_config(args.root / args.name)
    tensors = initial_tensors()
    with genomed.connect(args.socket) as client:
        for step in range(args.steps):
            tensors = train_step(tensors, step)
            info = (client.publish(args.name, tensors, CONFIG) if args.memory
                    else publish(client, args.root, args.name, tensors))
            # One line per version: what the servers now get, and how many
            # requests still read the previous version.
            print(f"step {step}: {args.name} generation {info.generation} digest "
                  f"{info.digest} (previous {info.previous_digest or '-'}, "
                  f"{info.previous_leases} leases still on it)", flush=True)


if __name__ == "__main__":
    main()
