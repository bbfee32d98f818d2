// Plans the resident layout (layout/resident_layout.h) of an adapter whose
// safetensors header the worker validated: a tensor table sorted by name,
// each tensor 64-byte aligned after the header, the encoded contract in the
// header. Worker-only: its input is an untrusted file's header.
#pragma once

#include "common/status.h"
#include "layout/contract.h"
#include "layout/resident_layout.h"
#include "worker/format/safetensors.h"

namespace genomed::format {

// The limits of the resident table: names of at most kMaxNameBytes, at most
// kMaxDims dims (Errc::st_tensor_entry_invalid). Checked before anything
// else looks at the names (the contract's pattern matching).
Status check_table_limits(const SafetensorsHeader& st);

// Plans where every tensor goes, with the encoded contract in the header.
// Errors: st_tensor_entry_invalid for names longer than kMaxNameBytes or
// shapes with more than kMaxDims dims; too_large for a contract over
// kMaxContractBytes.
Result<ResidentLayout> plan_layout(const SafetensorsHeader& st, const AdapterContract& contract);

}  // namespace genomed::format
