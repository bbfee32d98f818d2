"""The worker's side: vLLM builds a genomed adapter from a lease, not from files.

vLLM has no hook where its worker reads an adapter, so this is the plugin's
one patch of vLLM: `WorkerLoRAManager._load_adapter` (vLLM 0.32.0,
vllm/lora/worker_manager.py; LRUCacheWorkerLoRAManager inherits it). For a
`lora_path` of genomed's (identity.py) it acquires the adapter from genomed,
checks that its content is the one the path names, and builds the LoRAModel
with `LoRAModel.from_lora_tensors` from the lease's torch views and
`PEFTHelper.from_dict(lease.config)`, with the checks vLLM runs on a
directory (features and rank, unexpected modules, MoE/classifier formats).
Every other adapter goes to vLLM's own code unchanged.

Memory: `from_lora_tensors` keeps a tensor as it is when its dtype is the
engine's `lora_dtype`, so the LoRAModel in vLLM's CPU cache holds views into
genomed's arena. Two exceptions, both copies of the affected tensors only:
another dtype (vLLM converts), and B of each module whose scaling is not 1:
vLLM folds the scaling into B in place (`LoRALayerWeights.optimize`, `lora_b
*= scaling`), which the read-only mapping cannot take, so that B is given
as a private copy. Activating an adapter copies it into the layers' stacked
buffers as for any adapter. The log line of each load says how many bytes
are views and how many were copied.

Lifetime: the lease is released as soon as the model is built, and the
client defers the RELEASE until no view of it is referenced any more
(python/README.md, "Lifetimes"). The views live exactly as long as vLLM keeps
the LoRAModel: its CPU LRU eviction, `remove_lora` and the in-place reload
drop it and with it the last view; genomed's LIST shows the lease until then.
"""

from __future__ import annotations

import logging
from typing import Dict, Iterable, Optional

import genomed
import torch
from vllm.exceptions import LoRAAdapterNotFoundError
from vllm.lora.lora_model import LoRAModel
from vllm.lora.peft_helper import PEFTHelper
from vllm.lora.request import LoRARequest
from vllm.lora.utils import is_base_embedding_weights, parse_fine_tuned_lora_name
from vllm.lora.worker_manager import WorkerLoRAManager

from . import errors, identity

# Under "vllm." so that vLLM's logging configuration shows it beside its own lines.
logger = logging.getLogger("vllm.genomed_vllm")

_ORIGINAL = "_genomed_original_load_adapter"


def install() -> None:
    """Patches WorkerLoRAManager._load_adapter (idempotent)."""
    if hasattr(WorkerLoRAManager, _ORIGINAL):
        return
    original = WorkerLoRAManager._load_adapter

    def _load_adapter(self: WorkerLoRAManager, lora_request: LoRARequest) -> LoRAModel:
        ref = identity.parse(lora_request.lora_path)
        if ref is None:
            return original(self, lora_request)
        return load_from_genomed(self, lora_request, ref)

    setattr(WorkerLoRAManager, _ORIGINAL, original)
    WorkerLoRAManager._load_adapter = _load_adapter


def _expected_modules(manager) -> set:
    """The module names an adapter may target, as vLLM's _load_adapter computes them."""
    expected = []
    for module in manager.supported_lora_modules:
        if module in manager.packed_modules_mapping:
            expected.extend(manager.packed_modules_mapping[module])
        else:
            expected.append(module)
        if module == "experts":
            expected.append(module)
    return set(expected)


def _check_modules(names: Iterable[str], expected: set, peft_helper: PEFTHelper,
                   weights_mapper, skip_prefixes, ref: identity.AdapterRef) -> None:
    """vLLM's check of a directory's tensors (LoRAModel.from_local_checkpoint):
    an adapter for modules the model does not have is refused, not ignored."""
    unexpected = []
    for name in names:
        if is_base_embedding_weights(name) or "base_layer" in name:
            continue
        if skip_prefixes and LoRAModel._should_skip_module(name, skip_prefixes):
            continue
        module, _ = parse_fine_tuned_lora_name(name, weights_mapper)
        if ".experts" in module:
            if module[module.find(".experts") + 1:] not in expected:
                unexpected.append(module)
        elif (module.rsplit(".", 1)[-1] not in expected
              and module.rsplit(".", 1)[-1] not in (peft_helper.modules_to_save or ())):
            unexpected.append(module)
    if unexpected:
        raise ValueError(f"While loading {ref.lora_path}, expected target modules in "
                         f"{expected} but received {unexpected}. Please verify that the "
                         "loaded LoRA module is correct")


def _in_arena(t: Optional[torch.Tensor], arena_start: int, arena_end: int) -> bool:
    return t is not None and arena_start <= t.data_ptr() < arena_end


def load_from_genomed(manager: WorkerLoRAManager, lora_request: LoRARequest,
                      ref: identity.AdapterRef) -> LoRAModel:
    try:
        # Never another content under this identity: on content_changed the
        # caller asks for the name again (the API server: unload it, request it).
        lease, arena = identity.acquire(ref)
    except genomed.AdapterNameError as e:
        if e.code == "not_found":
            raise LoRAAdapterNotFoundError(lora_request.lora_name,
                                           lora_request.lora_path) from e
        raise errors.from_genomed(ref.name, e) from e
    except genomed.Error as e:
        raise errors.from_genomed(ref.name, e) from e
    with lease:
        config = lease.config
        config["vllm_max_position_embeddings"] = manager.max_position_embeddings
        peft_helper = PEFTHelper.from_dict(config)
        peft_helper.validate_legal(manager.lora_config)

        adapter_manager = manager._adapter_manager
        model = adapter_manager.model
        mapper = getattr(model, "hf_to_vllm_mapper", None)
        if mapper is not None:
            mapper = mapper.get_rename_mapper()
        skip_prefixes = getattr(model, "lora_skip_prefixes", None)
        _check_modules(lease.dtypes, _expected_modules(adapter_manager), peft_helper,
                       mapper, skip_prefixes, ref)

        tensors: Dict[str, torch.Tensor] = lease.to_torch()
        lora = manager._lora_model_cls.from_lora_tensors(
            lora_model_id=lora_request.lora_int_id, tensors=tensors,
            peft_helper=peft_helper, device="cpu", dtype=manager.lora_config.lora_dtype,
            model_vocab_size=manager.vocab_size, weights_mapper=mapper,
            skip_prefixes=skip_prefixes)
        del tensors
        start = arena.ctypes.data
        end = start + arena.nbytes
        viewed = copied = 0
        for weights in lora.loras.values():
            if weights.scaling != 1 and _in_arena(weights.lora_b, start, end):
                weights.lora_b = weights.lora_b.clone()  # optimize() scales it in place
            for t in (weights.lora_a, weights.lora_b):
                if t is not None:
                    size = t.numel() * t.element_size()
                    if _in_arena(t, start, end):
                        viewed += size
                    else:
                        copied += size
        lora.is_3d_lora_weight = lora_request.is_3d_lora_weight
        adapter_manager._validate_moe_lora_format(lora)
        adapter_manager._validate_modules_to_save(lora)
        adapter_manager._validate_token_classification_lora(lora)
    logger.info("genomed: built LoRA '%s' (%s, id %d) from lease: %d bytes viewed in "
                "genomed's arena, %d bytes copied", lora_request.lora_name, ref.lora_path,
                lora_request.lora_int_id, viewed, copied)
    return lora
