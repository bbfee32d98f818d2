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

// Plans where every tensor goes, with the encoded contract in the header.
// Errors (Errc::limit_exceeded): a contract over kMaxContractBytes; names
// longer than kMaxNameBytes or shapes with more than kMaxDims dims (which
// the header parse already refuses; checked again here because the resident
// table cannot hold them).
Result<layout::ResidentLayout> plan_layout(const SafetensorsHeader& st, const layout::AdapterContract& contract);

}  // namespace genomed::format
