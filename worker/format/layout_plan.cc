// Planning the resident layout of a validated adapter: where each tensor goes
// and how large the header is. Worker-only, because it starts from the
// safetensors header of an untrusted file; the layout it produces is shared
// (layout/resident_layout.h).
#include "worker/format/layout_plan.h"

#include <limits>
#include <string>

namespace genomed::format {
namespace {

// The limits of the resident table.
Status check_table_limits(const SafetensorsHeader& st) {
  for (const TensorInfo& t : st.tensors) {
    if (t.name.size() > layout::kMaxNameBytes) {
      return Status(Errc::limit_exceeded, "tensor name of " + std::to_string(t.name.size()) +
                                              " bytes exceeds the limit of " +
                                              std::to_string(layout::kMaxNameBytes) + ": '" +
                                              t.name.substr(0, 80) + "...' (kMaxNameBytes)");
    }
    if (t.shape.size() > layout::kMaxDims) {
      return Status(Errc::limit_exceeded, "tensor '" + t.name + "' has " +
                                              std::to_string(t.shape.size()) +
                                              " dimensions, more than the limit of " +
                                              std::to_string(layout::kMaxDims) + " (kMaxDims)");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<layout::ResidentLayout> plan_layout(const SafetensorsHeader& st, const layout::AdapterContract& contract) {
  layout::ResidentLayout layout;
  layout.lora_r = contract.config.r;
  layout.lora_alpha = contract.config.lora_alpha;
  layout.contract = layout::encode_contract(contract);
  if (layout.contract.size() > layout::kMaxContractBytes) {
    return Result<layout::ResidentLayout>(Errc::limit_exceeded,
                                  "the adapter's contract (config and module table) takes " +
                                      std::to_string(layout.contract.size()) +
                                      " bytes, more than the limit of " +
                                      std::to_string(layout::kMaxContractBytes) + " (kMaxContractBytes)");
  }
  GENOMED_RETURN_IF_ERROR(check_table_limits(st));
  std::uint64_t table = layout::kFixedHeaderBytes + layout.contract.size();
  for (const TensorInfo& t : st.tensors) {
    layout.tensors.push_back(layout::ResidentTensor{t.name, t.dtype, t.shape, 0, t.byte_size()});
    table += layout::table_entry_bytes(layout.tensors.back());
  }
  layout.header_bytes = layout::align_to_tensor(table);
  std::uint64_t cursor = layout.header_bytes;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max() - layout::kTensorAlignment;
  for (layout::ResidentTensor& t : layout.tensors) {
    if (t.length > kMax - cursor) {
      return Result<layout::ResidentLayout>(Errc::too_large, "adapter does not fit a 64-bit range");
    }
    t.offset = cursor;
    cursor = layout::align_to_tensor(cursor + t.length);
  }
  layout.total_bytes = cursor;
  return layout;
}

}  // namespace genomed::format
