"""Tiny base models and LoRA adapters written by the real transformers and PEFT.

Nothing comes from a model hub: every base model is built from a transformers
config class with seeded random weights and saved with `save_pretrained`;
every adapter is made with `get_peft_model(...)`, its trainable parameters
(LoRA A/B, DoRA magnitudes, lora biases, `modules_to_save` copies) filled with
seeded random values (so the adapter changes the model's output; PEFT's
default init leaves B at zero), and saved by PEFT's `save_pretrained`.

`write_all(out)` writes every base model to `out/bases/<name>/` and every
adapter to `out/adapters/<name>/` (one root for genomed) and returns a
`Fixtures` with their paths and what a test or benchmark needs to rebuild the
models (`load_base`, `example_inputs`). Everything is deterministic for a
given seed and takes a few seconds of CPU.

Usable on its own (e.g. by a benchmark):
    python peft_fixtures.py OUT_DIR
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import transformers
from peft import LoraConfig, get_peft_model

# Base-model architectures. `cls` is the transformers class the adapters are
# made for (and the class that loads every base of that family).
_LLAMA = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
_GPT2 = dict(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=64,
             bos_token_id=0, eos_token_id=0)
_BERT = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=64)
_MIXTRAL = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                num_experts_per_tok=2, max_position_embeddings=64)
_VIT = dict(image_size=8, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=64)
_DISTILBERT = dict(vocab_size=64, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                   max_position_embeddings=64)


@dataclasses.dataclass(frozen=True)
class BaseSpec:
    name: str
    config_cls: str             # transformers config class
    config: Dict[str, Any]
    model_cls: str              # class that is built and saved
    load_cls: str               # class adapters are made for / that loads the directory
    dtype: torch.dtype = torch.float32
    seed: int = 0
    max_shard_size: Optional[str] = None  # set: save sharded (index.json + shards)
    weights_of: Optional[str] = None      # same weights as this base (saved differently)
    doc: str = ""


@dataclasses.dataclass(frozen=True)
class AdapterSpec:
    name: str
    base: str
    lora: Dict[str, Any]        # LoraConfig keyword arguments
    seed: int
    adapter_dtype: Optional[torch.dtype] = None  # cast the trainable weights before saving
    doc: str = ""


BASES: List[BaseSpec] = [
    BaseSpec("llama", "LlamaConfig", _LLAMA, "LlamaForCausalLM", "LlamaForCausalLM", seed=1,
             doc="LLaMA-style causal LM, one model.safetensors"),
    BaseSpec("llama-sharded", "LlamaConfig", _LLAMA, "LlamaForCausalLM", "LlamaForCausalLM",
             max_shard_size="32KB", weights_of="llama",
             doc="the same weights as 'llama', saved as model.safetensors.index.json + shards"),
    BaseSpec("llama-wide", "LlamaConfig", {**_LLAMA, "hidden_size": 48, "intermediate_size": 96},
             "LlamaForCausalLM", "LlamaForCausalLM", seed=2,
             doc="LLaMA with another hidden size: every projection has other shapes"),
    BaseSpec("llama-tied", "LlamaConfig", {**_LLAMA, "tie_word_embeddings": True},
             "LlamaForCausalLM", "LlamaForCausalLM", seed=3,
             doc="LLaMA whose lm_head is tied to embed_tokens (no lm_head.weight in the file)"),
    BaseSpec("gpt2", "GPT2Config", _GPT2, "GPT2LMHeadModel", "GPT2LMHeadModel",
             dtype=torch.bfloat16, seed=4, doc="GPT-2 (Conv1D layers), BF16"),
    BaseSpec("gpt2-headless", "GPT2Config", _GPT2, "GPT2Model", "GPT2LMHeadModel",
             dtype=torch.bfloat16, weights_of="gpt2",
             doc="the same weights as 'gpt2' saved from GPT2Model: tensor names without "
                 "'transformer.' (the layout of the hub's gpt2 checkpoint); transformers "
                 "loads it into GPT2LMHeadModel"),
    BaseSpec("bert-cls3", "BertConfig", {**_BERT, "num_labels": 3},
             "BertForSequenceClassification", "BertForSequenceClassification", seed=5,
             doc="BERT sequence classifier, 3 labels"),
    BaseSpec("bert-cls2", "BertConfig", {**_BERT, "num_labels": 2},
             "BertForSequenceClassification", "BertForSequenceClassification", seed=6,
             doc="the same BERT with a 2-label classifier head"),
    BaseSpec("distilbert-cls3", "DistilBertConfig", {**_DISTILBERT, "num_labels": 3},
             "DistilBertForSequenceClassification", "DistilBertForSequenceClassification", seed=7,
             doc="DistilBERT sequence classifier (pre_classifier + classifier heads)"),
    BaseSpec("vit", "ViTConfig", {**_VIT, "num_labels": 3}, "ViTForImageClassification",
             "ViTForImageClassification", seed=8,
             doc="ViT image classifier: its patch embedding is a Conv2d"),
    BaseSpec("mixtral", "MixtralConfig", _MIXTRAL, "MixtralForCausalLM", "MixtralForCausalLM",
             seed=9,
             doc="Mixtral MoE: transformers 5 holds the experts as fused 3-D parameters "
                 "(mlp.experts.gate_up_proj) and saves them in the checkpoint layout "
                 "(block_sparse_moe.experts.N.w1.weight)"),
]

ADAPTERS: List[AdapterSpec] = [
    AdapterSpec("llama-qkvo", "llama", dict(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        task_type="CAUSAL_LM"), seed=11,
        doc="LLaMA attention projections"),
    AdapterSpec("gpt2-conv1d", "gpt2", dict(
        r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True,
        task_type="CAUSAL_LM"), seed=12, adapter_dtype=torch.bfloat16,
        doc="GPT-2 Conv1D layers (fan_in_fan_out), attn and mlp c_proj, BF16 weights"),
    AdapterSpec("bert-seqcls", "bert-cls3", dict(
        r=4, lora_alpha=8, target_modules=["query", "value"], task_type="SEQ_CLS"), seed=13,
        doc="sequence classifier: PEFT adds the classifier head to modules_to_save"),
    AdapterSpec("distilbert-seqcls", "distilbert-cls3", dict(
        r=4, lora_alpha=8, target_modules=["q_lin", "v_lin"], task_type="SEQ_CLS"), seed=21,
        doc="DistilBERT sequence classifier: PEFT's modules_to_save ['classifier', 'score'] "
            "wraps (suffix match) both 'classifier' and 'pre_classifier'"),
    AdapterSpec("bert-bias-all", "bert-cls3", dict(
        r=4, lora_alpha=8, target_modules=["query", "value"], bias="all"), seed=22,
        doc="bias='all': PEFT trains and saves every bias of the model (LoRA layers' as "
            "'<module>.base_layer.bias')"),
    AdapterSpec("llama-patterns", "llama", dict(
        r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        # PEFT takes the first key that matches (`get_pattern_key`); keys are regexes.
        # save_pretrained writes the config with sorted keys, so the file's order (the
        # one PeftModel.from_pretrained and genomed use) is the sorted one.
        rank_pattern={
            "model.layers.1.self_attn.q_proj": 8,   # dotted full path
            "layers.1.self_attn.v_proj": 6,         # dotted partial path, before ...
            "v_proj": 2,                            # ... a bare name that also matches it
            "^model.layers.0.self_attn.k_proj": 5,  # PEFT's documented '^' form
        },
        alpha_pattern={
            "model.layers.0.self_attn.q_proj": 32,
            "k_proj|o_proj": 3,                     # a regex alternation
            "layers.1.self_attn.k_proj": 24.5,      # never reached: 'k_proj|o_proj' is first
        },
        task_type="CAUSAL_LM"), seed=14,
        doc="rank_pattern / alpha_pattern with dotted, bare, '^' and alternation keys"),
    AdapterSpec("llama-rslora", "llama", dict(
        r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_rslora=True,
        task_type="CAUSAL_LM"), seed=15, adapter_dtype=torch.float16,
        doc="rank-stabilised LoRA (scaling alpha/sqrt(r)), F16 weights"),
    AdapterSpec("llama-dora", "llama", dict(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], use_dora=True,
        task_type="CAUSAL_LM"), seed=16,
        doc="DoRA: a lora_magnitude_vector per module"),
    AdapterSpec("llama-lora-bias", "llama", dict(
        r=4, lora_alpha=8, target_modules=["q_proj", "o_proj"], lora_bias=True,
        task_type="CAUSAL_LM"), seed=17,
        doc="lora_bias: lora_B has a bias"),
    AdapterSpec("llama-embedding", "llama", dict(
        r=4, lora_alpha=8, target_modules=["embed_tokens", "q_proj"], task_type="CAUSAL_LM"),
        seed=18,
        doc="an Embedding LoRA (lora_embedding_A/B); PEFT also saves the embedding's base "
            "weight (save_embedding_layers='auto')"),
    AdapterSpec("llama-regex-mlp", "llama", dict(
        r=4, lora_alpha=4, target_modules=r"model\.layers\.1\.mlp\.(gate|up|down)_proj",
        task_type="CAUSAL_LM"), seed=19,
        doc="target_modules as a regex string: non-square MLP projections of layer 1 only"),
    AdapterSpec("llama-tied-lm-head", "llama-tied", dict(
        r=4, lora_alpha=8, target_modules=["q_proj", "lm_head"], task_type="CAUSAL_LM"),
        seed=20,
        doc="LoRA on lm_head of a model whose lm_head is tied to embed_tokens"),
    AdapterSpec("llama-rslora-patterns", "llama", dict(
        r=8, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_rslora=True,
        rank_pattern={"v_proj": 4}, alpha_pattern={"model.layers.1.self_attn.q_proj": 12},
        task_type="CAUSAL_LM"), seed=23,
        doc="rank-stabilised LoRA with rank_pattern / alpha_pattern (alpha/sqrt(effective r))"),
    AdapterSpec("vit-conv", "vit", dict(
        r=4, lora_alpha=8, target_modules=["projection", "query", "value"]), seed=24,
        doc="a Conv2d LoRA (ViT patch embedding) besides linear ones"),
    AdapterSpec("mixtral-expert-params", "mixtral", dict(
        r=4, lora_alpha=8, target_modules=["q_proj"],
        target_parameters=["mlp.experts.gate_up_proj", "mlp.experts.down_proj"],
        task_type="CAUSAL_LM"), seed=25,
        doc="PEFT's target_parameters (LoRA on MoE expert parameters, as for gpt-oss): a "
            "ParamWrapper per parameter, A [r x experts, in] and B [out, r x experts]"),
    AdapterSpec("mixtral-expert-params-only", "mixtral", dict(
        r=4, lora_alpha=8, target_parameters=["mlp.experts.down_proj"], task_type="CAUSAL_LM"),
        seed=26,
        doc="target_parameters without target_modules: PEFT saves \"target_modules\": []"),
    AdapterSpec("llama-trainable-tokens", "llama", dict(
        r=4, lora_alpha=8, target_modules=["q_proj"], trainable_token_indices=[1, 2, 3],
        task_type="CAUSAL_LM"), seed=27,
        doc="trainable_token_indices: PEFT trains three rows of embed_tokens "
            "(token_adapter.trainable_tokens_delta) besides the LoRA modules"),
    AdapterSpec("llama-layer-replication", "llama", dict(
        r=4, lora_alpha=8, target_modules=["q_proj"], layer_replication=[[0, 2], [1, 2]],
        task_type="CAUSAL_LM"), seed=28,
        doc="layer_replication: PEFT stacks base layers 0,1,1 into 3 layers (sharing base "
            "weights); the adapter has LoRA weights for model.layers.2, which the base "
            "checkpoint does not have"),
]


BASE_BY_NAME: Dict[str, BaseSpec] = {s.name: s for s in BASES}
ADAPTER_BY_NAME: Dict[str, AdapterSpec] = {s.name: s for s in ADAPTERS}


@dataclasses.dataclass
class Fixtures:
    root: Path                       # genomed --root: one directory per adapter
    bases: Dict[str, Path]           # base name -> save_pretrained directory
    adapters: Dict[str, Path]        # adapter name -> save_pretrained directory
    base_specs: Dict[str, BaseSpec]
    adapter_specs: Dict[str, AdapterSpec]

    def base_of(self, adapter: str) -> str:
        return self.adapter_specs[adapter].base

    def load_base(self, base: str) -> torch.nn.Module:
        """A fresh copy of base model `base`, loaded by transformers from its directory."""
        spec = self.base_specs[base]
        cls = getattr(transformers, spec.load_cls)
        model = cls.from_pretrained(self.bases[base], dtype=spec.dtype)
        return model.eval()

    def example_inputs(self, base: str, seed: int = 0) -> Dict[str, torch.Tensor]:
        spec = self.base_specs[base]
        generator = torch.Generator().manual_seed(seed)
        if spec.config_cls == "ViTConfig":
            size, channels = spec.config["image_size"], spec.config["num_channels"]
            return {"pixel_values": torch.randn((2, channels, size, size), generator=generator)}
        vocab = spec.config["vocab_size"]
        return {"input_ids": torch.randint(0, vocab, (2, 7), generator=generator)}

    def metadata(self) -> Dict[str, Any]:
        """JSON-able description (paths and specs)."""
        return {
            "root": str(self.root),
            "bases": {n: {"path": str(p), "model_cls": self.base_specs[n].load_cls,
                          "dtype": str(self.base_specs[n].dtype).removeprefix("torch."),
                          "sharded": self.base_specs[n].max_shard_size is not None,
                          "doc": self.base_specs[n].doc}
                      for n, p in self.bases.items()},
            "adapters": {n: {"path": str(p), "base": self.adapter_specs[n].base,
                             "doc": self.adapter_specs[n].doc}
                         for n, p in self.adapters.items()},
        }


def _build_base(spec: BaseSpec) -> torch.nn.Module:
    config = getattr(transformers, spec.config_cls)(**spec.config)
    torch.manual_seed(spec.seed)
    model = getattr(transformers, spec.model_cls)(config)
    return model.to(spec.dtype).eval()


def _randomise_trainable(model: torch.nn.Module, seed: int) -> None:
    """Fills every trainable parameter with seeded random values. DoRA magnitudes
    stay positive (they are norms)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            values = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            if "lora_magnitude_vector" in name:
                values = values.abs() + 0.5
            else:
                values = values * 0.2
            param.copy_(values.to(param.dtype))


def write_all(out: Path) -> Fixtures:
    """Writes every base model and adapter under `out` and describes them."""
    out = Path(out)
    bases: Dict[str, Path] = {}
    models: Dict[str, torch.nn.Module] = {}
    for spec in BASES:
        directory = out / "bases" / spec.name
        if spec.weights_of is not None:
            source = models[spec.weights_of]
            model = _build_base(spec)
            # Same weights: the source's state dict, minus a head this class lacks.
            state = source.state_dict()
            prefix = getattr(source, "base_model_prefix", "")
            if spec.model_cls != spec.load_cls:  # headless: take the inner model's weights
                model.load_state_dict(getattr(source, prefix).state_dict())
            else:
                model.load_state_dict(state)
        else:
            model = _build_base(spec)
        kwargs = {"max_shard_size": spec.max_shard_size} if spec.max_shard_size else {}
        model.save_pretrained(directory, **kwargs)
        models[spec.name] = model
        bases[spec.name] = directory

    root = out / "adapters"
    adapters: Dict[str, Path] = {}
    base_specs = {s.name: s for s in BASES}
    fixtures = Fixtures(root=root, bases=bases, adapters={}, base_specs=base_specs,
                        adapter_specs={s.name: s for s in ADAPTERS})
    for spec in ADAPTERS:
        base = fixtures.load_base(spec.base)
        # autocast_adapter_dtype=False keeps the adapter in the base dtype (BF16 for gpt2).
        peft_model = get_peft_model(base, LoraConfig(init_lora_weights=False, **spec.lora),
                                    autocast_adapter_dtype=False)
        _randomise_trainable(peft_model, spec.seed)
        if spec.adapter_dtype is not None:
            for name, param in peft_model.named_parameters():
                if param.requires_grad:
                    param.data = param.data.to(spec.adapter_dtype)
        directory = root / spec.name
        peft_model.save_pretrained(directory)
        adapters[spec.name] = directory
    fixtures.adapters = adapters
    return fixtures


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUT_DIR", file=sys.stderr)
        return 2
    fixtures = write_all(Path(argv[1]))
    json.dump(fixtures.metadata(), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
