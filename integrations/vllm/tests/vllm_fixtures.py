"""A tiny Llama-like base model, a tokenizer and PEFT adapters for vLLM tests.

Nothing comes from a hub: the base model is built from transformers'
LlamaConfig with seeded random weights and saved with `save_pretrained`; the
tokenizer is a word-level `tokenizers` model over a fixed word list, saved as
a PreTrainedTokenizerFast; every adapter is made by PEFT (`get_peft_model`),
its LoRA weights filled with seeded random values (peft_fixtures does the
same for the client's interop tests), saved by PEFT's `save_pretrained`.

vLLM's CPU attention needs a head size of 32, 64, 80, ...: hidden 64 with
2 heads. The weights are float32 and so is the engine (zero-copy: vLLM keeps
a tensor whose dtype is its lora_dtype as it is).
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List

import torch
import transformers
from peft import LoraConfig, get_peft_model

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
# genomed_testing (the daemon launcher) and peft_fixtures live with the client's tests.
for directory in (REPO / "python" / "tests", REPO / "python" / "tests" / "interop"):
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))

import peft_fixtures  # noqa: E402

WORDS = [f"w{i}" for i in range(60)]
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
VOCAB = SPECIALS + WORDS  # 64 tokens
LLAMA = dict(vocab_size=len(VOCAB), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
             bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False,
             # Larger than the default 0.02: greedy continuations then differ between
             # the base model and each adapter, so an adapter that is not applied shows.
             initializer_range=0.3)
PROMPTS = ["w1 w2 w3 w4", "w10 w20 w30", "w5 w5 w7 w9 w11 w13"]


@dataclasses.dataclass(frozen=True)
class AdapterSpec:
    name: str
    lora: Dict[str, Any]
    seed: int
    doc: str = ""


ADAPTERS: List[AdapterSpec] = [
    AdapterSpec("plain", dict(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj",
                                                                  "o_proj"]), seed=11,
                doc="plain LoRA on the attention projections (scaling 2)"),
    AdapterSpec("scaling-one", dict(r=4, lora_alpha=4, target_modules=["q_proj", "v_proj"]),
                seed=12, doc="alpha == r: scaling 1, so vLLM keeps B unscaled (no copy at all)"),
    AdapterSpec("rslora", dict(r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                               use_rslora=True), seed=13,
                doc="rank-stabilised LoRA: scaling alpha/sqrt(r)"),
    AdapterSpec("patterns", dict(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj",
                                                                    "o_proj"],
                                 rank_pattern={"model.layers.1.self_attn.q_proj": 8,
                                               "v_proj": 2},
                                 alpha_pattern={"model.layers.0.self_attn.q_proj": 32,
                                                "k_proj|o_proj": 3}), seed=14,
                doc="rank_pattern / alpha_pattern"),
    AdapterSpec("all-linear", dict(r=4, lora_alpha=8, target_modules="all-linear"), seed=15,
                doc="PEFT's all-linear: every projection of attention and MLP (packed in "
                    "vLLM's qkv_proj and gate_up_proj)"),
    AdapterSpec("dora", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                             use_dora=True), seed=16,
                doc="DoRA: genomed loads it, vLLM refuses it"),
]
SERVED = [a.name for a in ADAPTERS if not a.lora.get("use_dora")]


def write_base(out: Path, llama: Dict[str, Any] = LLAMA) -> Path:
    """The base model (LlamaConfig(**llama)) and its tokenizer in `out` (one
    directory, as vLLM wants)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    config = transformers.LlamaConfig(**llama)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).to(torch.float32).eval()
    model.save_pretrained(out)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>",
                                                bos_token="<s>", eos_token="</s>",
                                                pad_token="<pad>")
    fast.save_pretrained(out)
    return out


def write_adapter(base_dir: Path, spec: AdapterSpec, out: Path, seed: int = 0) -> Path:
    """PEFT's adapter `spec` for the base model, random weights from spec.seed + seed."""
    base = transformers.LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(init_lora_weights=False, task_type="CAUSAL_LM",
                                            **spec.lora), autocast_adapter_dtype=False)
    peft_fixtures._randomise_trainable(model, spec.seed + seed)
    model.save_pretrained(out)
    return out


def rewrite(base_dir: Path, root: Path, name: str, like: str, seed: int) -> Path:
    """Writes adapter `name` under `root` (replacing its files if any): the kind of
    adapter `like`, with weights drawn from `seed`."""
    path = root / name
    if path.exists():
        shutil.rmtree(path)
    spec = next(s for s in ADAPTERS if s.name == like)
    return write_adapter(base_dir, spec, path, seed=seed)


def write_foreign_modules(source: Path, out: Path) -> Path:
    """Adapter `source` with its q_proj tensors renamed to a module the model
    lacks (qq_proj): valid files genomed loads, which vLLM refuses at load."""
    import json

    from safetensors.torch import load_file, save_file

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out)
    weights = out / "adapter_model.safetensors"
    save_file({k.replace("q_proj", "qq_proj"): v for k, v in load_file(weights).items()},
              weights)
    config = json.loads((out / "adapter_config.json").read_text())
    config["target_modules"] = [m.replace("q_proj", "qq_proj") for m in config["target_modules"]]
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


def write_all(out: Path) -> Dict[str, Path]:
    """The base model in out/base, every adapter in out/adapters/<name> (genomed's root)."""
    paths = {"base": write_base(out / "base")}
    for spec in ADAPTERS:
        paths[spec.name] = write_adapter(paths["base"], spec, out / "adapters" / spec.name)
    return paths


def leases(client) -> Dict[str, int]:
    """Adapter name -> leases genomed counts on it (LIST)."""
    return {a.name: a.leases for a in client.list()}
