#include "worker/format/base_model.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "worker/format/peft_config.h"
#include "worker/format/regular_file.h"

namespace genomed::format {
namespace {

using json = nlohmann::json;

Status invalid(const std::string& what) { return Status(Errc::base_model_invalid, what); }

Result<json> read_json_object(const std::string& path, std::uint64_t limit) {
  auto text = read_small_file(path, limit, Symlinks::follow);
  if (!text) return invalid("base model: " + text.status().message());
  try {
    json j = json::parse(*text);
    if (!j.is_object()) return invalid("base model: " + path + " is not a JSON object");
    return j;
  } catch (const json::exception& e) {
    return invalid("base model: " + path + " is not valid JSON: " + e.what());
  }
}

Status add_shapes(BaseModel& base, const std::string& path) {
  auto file = open_regular(path, Symlinks::follow);
  if (!file) return invalid("base model: " + file.status().message());
  auto header = read_safetensors_header(file->fd.get(), path);
  if (!header) return invalid("base model: " + header.status().message());
  for (TensorInfo& t : header->tensors) base.shapes[t.name] = std::move(t.shape);
  ++base.files;
  return Status::Ok();
}

// The shard names an index lists, each a plain file name inside the directory.
Result<std::set<std::string>> shard_files(const std::string& index_path) {
  GENOMED_ASSIGN_OR_RETURN(json index, read_json_object(index_path, kMaxBaseIndexBytes));
  auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object() || map->empty()) {
    return invalid("base model: " + index_path + " has no \"weight_map\" object");
  }
  std::set<std::string> files;
  for (const auto& [weight, file] : map->items()) {
    if (!file.is_string()) {
      return invalid("base model: " + index_path + ": weight '" + weight + "' maps to a " +
                     file.type_name() + ", not a file name");
    }
    const auto& name = file.get_ref<const std::string&>();
    if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos) {
      return invalid("base model: " + index_path + ": shard '" + name.substr(0, 100) +
                     "' is not a file name inside the directory");
    }
    files.insert(name);
  }
  return files;
}

// The base weight a module's `name` ("a.b.weight") refers to. transformers
// loads a checkpoint saved from the headless model (no "transformer." or
// "bert." prefix) into the model with a head, so PEFT's path without its
// first component names the same weight; and a tied lm_head is the input
// embedding.
const std::vector<std::uint64_t>* find_shape(const BaseModel& base, const std::string& name) {
  if (auto it = base.shapes.find(name); it != base.shapes.end()) return &it->second;
  if (const auto dot = name.find('.'); dot != std::string::npos) {
    if (auto it = base.shapes.find(name.substr(dot + 1)); it != base.shapes.end()) {
      return &it->second;
    }
  }
  const bool lm_head = name == "lm_head.weight" || name.ends_with(".lm_head.weight");
  if (lm_head && !base.tied_embedding.empty()) return &base.shapes.at(base.tied_embedding);
  return nullptr;
}

// The input embedding lm_head shares when the model ties them and saved no
// lm_head weight; "" otherwise.
std::string tied_embedding(const json& config, const BaseModel& base) {
  auto tie = config.find("tie_word_embeddings");
  if (tie != config.end() && tie->is_boolean() && !tie->get<bool>()) return "";
  for (const auto& [name, shape] : base.shapes) {
    if (name == "lm_head.weight" || name.ends_with(".lm_head.weight")) return "";
  }
  for (const char* suffix : {"embed_tokens.weight", "wte.weight", "word_embeddings.weight",
                             "embed_in.weight", "shared.weight"}) {
    for (const auto& [name, shape] : base.shapes) {
      if ((name == suffix || name.ends_with(std::string(".") + suffix)) && shape.size() == 2) {
        return name;
      }
    }
  }
  return "";
}

const TensorInfo& tensor(const std::vector<TensorInfo>& tensors, const std::string& name) {
  // The contract was built from these tensors: every name it holds is here.
  return *std::lower_bound(tensors.begin(), tensors.end(), name,
                           [](const TensorInfo& t, const std::string& n) { return t.name < n; });
}

class CompatibilityCheck {
 public:
  CompatibilityCheck(const BaseModel& base, const std::string& label)
      : base_(base), label_(label) {}

  Status module(const layout::ContractModule& m, const std::vector<TensorInfo>& tensors,
                bool fan_in_fan_out) {
    const std::string weight = m.path + ".weight";
    const auto* shape = find_shape(base_, weight);
    if (shape == nullptr) {
      return fail("module '" + m.path + "' is not in the base model (" + base_.dir + " has no '" +
                  weight + "')");
    }
    const auto& a = tensor(tensors, m.a).shape;
    const auto& b = tensor(tensors, m.b).shape;
    const std::uint64_t in = a[1];
    const std::uint64_t out = b[0];
    const std::string ab = "A " + shape_text(a) + " and B " + shape_text(b);
    switch (m.kind) {
      case ModuleKind::linear: {
        // PEFT decides the orientation by the layer's type (nn.Linear [out,
        // in], Conv1D [in, out]) and overrides fan_in_fan_out when it
        // disagrees, so either orientation is compatible.
        const std::vector<std::uint64_t> out_in{out, in};
        const std::vector<std::uint64_t> in_out{in, out};
        if (*shape != out_in && *shape != in_out) {
          return mismatch(m, weight, *shape, ab,
                          fan_in_fan_out ? shape_text(in_out) + " ([in, out], fan_in_fan_out)"
                                         : shape_text(out_in) + " ([out, in])");
        }
        return Status::Ok();
      }
      case ModuleKind::embedding: {
        const std::vector<std::uint64_t> want{in, out};
        if (*shape != want) {
          return mismatch(m, weight, *shape, ab,
                          shape_text(want) + " ([num_embeddings, embedding_dim])");
        }
        return Status::Ok();
      }
      case ModuleKind::conv: {
        // [out, in / groups, k...]: the output channels and the kernel size.
        const bool kernel_ok =
            shape->size() == a.size() && std::equal(a.begin() + 2, a.end(), shape->begin() + 2);
        if (!kernel_ok || (*shape)[0] != out) {
          std::vector<std::uint64_t> want{out, in};
          want.insert(want.end(), a.begin() + 2, a.end());
          return mismatch(m, weight, *shape, ab, shape_text(want) + " ([out, in, kernel...])");
        }
        return Status::Ok();
      }
    }
    return Status::Ok();
  }

  // A tensor the adapter replaces or trains in full (modules_to_save, bias):
  // the base model holds the same weight with the same shape. PEFT saves a
  // wrapped layer's own parameters under ".base_layer."; the base model has
  // them without it.
  Status same_weight(const TensorInfo& t, const char* what) {
    std::string name(base_model_path(t.name));
    for (std::size_t at; (at = name.find(".base_layer.")) != std::string::npos;) {
      name.erase(at, std::string_view(".base_layer").size());
    }
    const auto* shape = find_shape(base_, name);
    if (shape == nullptr) {
      return fail(std::string(what) + " '" + t.name + "' has no counterpart '" + name +
                  "' in the base model " + base_.dir);
    }
    if (*shape != t.shape) {
      return fail(std::string(what) + " '" + t.name + "' has shape " + shape_text(t.shape) +
                  " but the base model's '" + name + "' is " + shape_text(*shape));
    }
    return Status::Ok();
  }

 private:
  Status fail(const std::string& why) const {
    return Status(Errc::incompatible_base_model, label_ + ": " + why);
  }
  Status mismatch(const layout::ContractModule& m, const std::string& weight,
                  const std::vector<std::uint64_t>& base_shape, const std::string& ab,
                  const std::string& want) const {
    return fail("module '" + m.path + "': " + ab + " need a base weight of " + want +
                ", but the base model's '" + weight + "' is " + shape_text(base_shape));
  }

  const BaseModel& base_;
  const std::string& label_;
};

}  // namespace

Result<BaseModel> read_base_model(const std::string& dir) {
  BaseModel base;
  base.dir = dir;
  GENOMED_ASSIGN_OR_RETURN(json config,
                           read_json_object(dir + "/" + kBaseConfigFileName, kMaxConfigBytes));
  if (auto it = config.find("model_type"); it != config.end() && it->is_string()) {
    base.model_type = it->get<std::string>();
  }
  const std::string single = dir + "/" + kBaseWeightsFileName;
  const std::string index = dir + "/" + kBaseIndexFileName;
  struct stat st {};
  if (::stat(single.c_str(), &st) == 0) {
    GENOMED_RETURN_IF_ERROR(add_shapes(base, single));
  } else if (::stat(index.c_str(), &st) == 0) {
    GENOMED_ASSIGN_OR_RETURN(auto files, shard_files(index));
    for (const std::string& f : files) GENOMED_RETURN_IF_ERROR(add_shapes(base, dir + "/" + f));
  } else {
    return invalid("base model: " + dir + " has neither " + kBaseWeightsFileName + " nor " +
                   kBaseIndexFileName + " (save it with transformers' save_pretrained)");
  }
  if (base.shapes.empty()) return invalid("base model: " + dir + " holds no weights");
  base.tied_embedding = tied_embedding(config, base);
  return base;
}

Status check_compatible(const BaseModel& base, const layout::AdapterContract& contract,
                        const std::vector<TensorInfo>& tensors, const std::string& label) {
  CompatibilityCheck check(base, label);
  for (const layout::ContractModule& m : contract.modules) {
    GENOMED_RETURN_IF_ERROR(check.module(m, tensors, contract.config.fan_in_fan_out));
  }
  for (const std::string& name : contract.saved_module_tensors) {
    GENOMED_RETURN_IF_ERROR(check.same_weight(tensor(tensors, name), "saved module weight"));
  }
  for (const std::string& name : contract.bias_tensors) {
    GENOMED_RETURN_IF_ERROR(check.same_weight(tensor(tensors, name), "trained bias"));
  }
  return Status::Ok();
}

}  // namespace genomed::format
