// One SAX pass over a safetensors header: a small state machine that knows
// where in the format each event arrives (root object, tensor entry, shape
// list, ...), refuses what does not belong there as it arrives, and checks
// each limit before it stores the element the limit is about.
#include "worker/format/header_json.h"

#include <array>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "layout/resident_layout.h"

namespace genomed::format {
namespace {

using json = nlohmann::json;

// A number as the format sees it: a non-negative integer fitting u64, or
// (for messages) what else it is.
struct Number {
  std::optional<std::uint64_t> u64;
  std::string otherwise;  // "negative value -3", "non-integer value 2.5"
};

// At most `n` bytes of `s` (valid UTF-8), never ending inside a character:
// messages travel as msgpack strings that clients decode as UTF-8.
std::string_view cut_utf8(std::string_view s, std::size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

std::string list_text(const std::vector<std::uint64_t>& values) {
  std::string s = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) s += ',';
    s += std::to_string(values[i]);
  }
  return s + "]";
}

class HeaderSax final : public nlohmann::json_sax<json> {
 public:
  HeaderSax(std::uint64_t data_size, const std::string& label, HeaderEntries& out)
      : data_size_(data_size), label_(label), out_(out) {}

  // The outcome once sax_parse returned: the syntax error, else the first
  // format error or limit, else Ok.
  Status result() const {
    if (!syntax_error_.ok()) return syntax_error_;
    if (!error_.ok()) return error_;
    if (at_ != At::done) return Status(Errc::internal, label_ + ": header parse ended early");
    return Status::Ok();
  }

  bool null() override { return value("null"); }
  bool boolean(bool) override { return value("boolean"); }
  bool binary(binary_t&) override { return value("binary"); }
  bool string(string_t& s) override { return value("string", nullptr, &s); }
  bool number_unsigned(number_unsigned_t v) override {
    const Number n{v, {}};
    return value("number", &n);
  }
  bool number_integer(number_integer_t v) override {
    // nlohmann reports non-negative integers as unsigned, except "-0".
    const Number n = v >= 0 ? Number{static_cast<std::uint64_t>(v), {}}
                            : Number{std::nullopt, "negative value " + std::to_string(v)};
    return value("number", &n);
  }
  bool number_float(number_float_t, const string_t& text) override {
    // Integers past u64 arrive here too: still not an integer we accept.
    const Number n{std::nullopt, "non-integer value " + text.substr(0, 40)};
    return value("number", &n);
  }
  bool start_object(std::size_t) override { return value("object"); }
  bool start_array(std::size_t) override { return value("array"); }
  bool end_object() override;
  bool end_array() override;
  bool key(string_t& k) override;
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    // nlohmann quotes the token it stopped in, which may be megabytes long.
    syntax_error_ = Status(Errc::st_header_invalid_json,
                           label_ + ": safetensors header is not valid JSON: " +
                               std::string(cut_utf8(e.what(), 300)));
    return false;
  }

 private:
  // Where the pass is: what the next event may be.
  enum class At {
    top,             // before the root value (must be an object)
    root,            // in the root object: a tensor name, "__metadata__", or its end
    entry_value,     // after a tensor name: its entry object
    entry,           // in a tensor entry: "dtype", "shape", "data_offsets", or its end
    dtype_value,     // after "dtype": a string
    shape_value,     // after "shape": a list
    shape,           // in a shape list: non-negative integers
    offsets_value,   // after "data_offsets": a list
    offsets,         // in a data_offsets list: two non-negative integers
    metadata_value,  // after "__metadata__": an object
    metadata,        // in __metadata__: a key, or its end
    metadata_item,   // after a key of __metadata__: a string
    done,            // after the root object
  };
  // The keys of the entry being read, as bits of fields_.
  static constexpr unsigned kDtype = 1, kShape = 2, kOffsets = 4;

  bool value(const char* type, const Number* number = nullptr, const std::string* text = nullptr);
  bool finish_entry();

  // A format error: recorded (the first one counts), and the rest of the
  // header is only scanned, so that invalid JSON is still reported as such.
  bool fail(Errc code, const std::string& message) {
    if (error_.ok()) error_ = Status(code, message);
    skipping_ = true;
    return true;
  }
  // A limit: the pass stops here, before any more is stored.
  bool exceed(const std::string& message) {
    error_ = Status(Errc::limit_exceeded, label_ + ": " + message);
    return false;
  }
  TensorInfo& tensor() { return out_.tensors.back(); }
  std::string where() { return label_ + ": tensor " + quoted_name(tensor().name); }

  const std::uint64_t data_size_;
  const std::string& label_;
  HeaderEntries& out_;
  At at_ = At::top;
  bool skipping_ = false;  // after a format error
  Status error_;
  Status syntax_error_;
  unsigned fields_ = 0;  // of the entry being read (Field bits)
  std::array<std::uint64_t, 2> offsets_{};
  std::size_t offsets_seen_ = 0;  // elements of its data_offsets list so far
  bool metadata_seen_ = false;
  std::string metadata_key_;  // the __metadata__ key whose value comes next
};

bool HeaderSax::value(const char* type, const Number* number, const std::string* text) {
  if (skipping_) return true;
  const bool object = std::string_view(type) == "object";
  const bool array = std::string_view(type) == "array";
  switch (at_) {
    case At::top:
      if (object) {
        at_ = At::root;
        return true;
      }
      return fail(Errc::st_header_not_object,
                  label_ + ": header JSON must be an object, found " + type);
    case At::entry_value:
      if (object) {
        at_ = At::entry;
        fields_ = 0;
        offsets_seen_ = 0;
        return true;
      }
      return fail(Errc::st_tensor_entry_invalid,
                  where() + ": entry must be an object, found " + type);
    case At::dtype_value: {
      if (text == nullptr) {
        return fail(Errc::st_dtype_unknown, where() + ": dtype must be a string, found " + type);
      }
      const auto dt = layout::dtype_from_name(*text);
      if (!dt)
        return fail(Errc::st_dtype_unknown, where() + ": unknown dtype " + quoted_name(*text));
      tensor().dtype = *dt;
      at_ = At::entry;
      return true;
    }
    case At::shape_value:
      if (array) {
        at_ = At::shape;
        return true;
      }
      return fail(Errc::st_shape_invalid, where() + ": shape must be a list, found " + type);
    case At::shape: {
      const std::size_t d = tensor().shape.size();
      if (number == nullptr || !number->u64) {
        return fail(Errc::st_shape_invalid,
                    where() + ": shape[" + std::to_string(d) + "] is a " +
                        (number ? number->otherwise : "non-integer " + std::string(type)));
      }
      if (d == layout::kMaxDims) {
        return exceed("tensor " + quoted_name(tensor().name) + " has more than " +
                      std::to_string(layout::kMaxDims) +
                      " dimensions (limit kMaxDims = " + std::to_string(layout::kMaxDims) + ")");
      }
      tensor().shape.push_back(*number->u64);
      return true;
    }
    case At::offsets_value:
      if (array) {
        at_ = At::offsets;
        return true;
      }
      return fail(Errc::st_offsets_invalid,
                  where() + ": data_offsets must be a list [begin, end], found " + type);
    case At::offsets:
      if (number == nullptr || !number->u64) {
        return fail(Errc::st_offsets_invalid,
                    where() + ": data_offsets must hold two non-negative integers, found a " +
                        (number ? number->otherwise : "non-integer " + std::string(type)));
      }
      if (offsets_seen_ == 2) {
        return fail(
            Errc::st_offsets_invalid,
            where() + ": data_offsets must be a list [begin, end], found a list of 3 or more");
      }
      offsets_[offsets_seen_++] = *number->u64;
      return true;
    case At::metadata_value:
      if (object) {
        at_ = At::metadata;
        return true;
      }
      return fail(Errc::st_metadata_invalid,
                  label_ + ": __metadata__ must be an object, found " + type);
    case At::metadata_item:
      if (text == nullptr) {
        return fail(Errc::st_metadata_invalid, label_ + ": __metadata__ value for key " +
                                                   quoted_name(metadata_key_) +
                                                   " must be a string, found " + type);
      }
      if (!out_.metadata.try_emplace(metadata_key_, *text).second) {
        return fail(Errc::st_metadata_invalid, label_ + ": __metadata__ has the key " +
                                                   quoted_name(metadata_key_) + " more than once");
      }
      at_ = At::metadata;
      return true;
    case At::root:
    case At::entry:
    case At::metadata:
    case At::done:
      break;  // nlohmann delivers a key first in objects, and nothing after the root
  }
  return fail(Errc::st_header_invalid_json, label_ + ": unexpected " + type + " in the header");
}

bool HeaderSax::key(string_t& k) {
  if (skipping_) return true;
  switch (at_) {
    case At::root:
      if (k == "__metadata__") {
        if (metadata_seen_) {
          return fail(Errc::st_duplicate_tensor,
                      label_ + ": the header names '__metadata__' more than once");
        }
        metadata_seen_ = true;
        at_ = At::metadata_value;
        return true;
      }
      // The limits first: nothing is stored for a name over them.
      if (k.size() > layout::kMaxNameBytes) {
        return exceed("tensor name " + quoted_name(k) + " of " + std::to_string(k.size()) +
                      " bytes exceeds the limit of " + std::to_string(layout::kMaxNameBytes) +
                      " bytes (kMaxNameBytes)");
      }
      if (out_.tensors.size() == kMaxTensors) {
        return exceed("the header holds more than " + std::to_string(kMaxTensors) +
                      " tensors (limit kMaxTensors; tensor number " +
                      std::to_string(kMaxTensors + 1) + " is " + quoted_name(k) + ")");
      }
      out_.tensors.push_back(TensorInfo{std::move(k), layout::DType{}, {}, 0, 0});
      at_ = At::entry_value;
      return true;
    case At::entry: {
      const unsigned field = k == "dtype"          ? kDtype
                             : k == "shape"        ? kShape
                             : k == "data_offsets" ? kOffsets
                                                   : 0;
      if (field == 0) {
        return fail(Errc::st_tensor_entry_invalid,
                    where() + ": entry has the unknown key " + quoted_name(k));
      }
      if ((fields_ & field) != 0) {
        return fail(Errc::st_tensor_entry_invalid,
                    where() + ": entry has the key " + quoted_name(k) + " more than once");
      }
      fields_ |= field;
      at_ = field == kDtype   ? At::dtype_value
            : field == kShape ? At::shape_value
                              : At::offsets_value;
      return true;
    }
    case At::metadata:
      if (out_.metadata.size() == kMaxMetadataEntries) {
        return exceed("__metadata__ holds more than " + std::to_string(kMaxMetadataEntries) +
                      " entries (limit kMaxMetadataEntries)");
      }
      metadata_key_ = std::move(k);
      at_ = At::metadata_item;
      return true;
    default:
      return fail(Errc::st_header_invalid_json, label_ + ": unexpected key in the header");
  }
}

bool HeaderSax::end_object() {
  if (skipping_) return true;
  switch (at_) {
    case At::root:
      at_ = At::done;
      return true;
    case At::entry:
      at_ = At::root;
      return finish_entry();
    case At::metadata:
      at_ = At::root;
      return true;
    default:
      return fail(Errc::st_header_invalid_json, label_ + ": unexpected end of an object");
  }
}

bool HeaderSax::end_array() {
  if (skipping_) return true;
  switch (at_) {
    case At::shape:
      at_ = At::entry;
      return true;
    case At::offsets:
      at_ = At::entry;
      if (offsets_seen_ != 2) {
        return fail(Errc::st_offsets_invalid,
                    where() + ": data_offsets must be a list [begin, end], found a list of " +
                        std::to_string(offsets_seen_));
      }
      return true;
    default:
      return fail(Errc::st_header_invalid_json, label_ + ": unexpected end of a list");
  }
}

// The checks that need the whole entry, in the order they were always made.
bool HeaderSax::finish_entry() {
  for (const auto& [field, name] : {std::pair{kDtype, "dtype"}, std::pair{kShape, "shape"},
                                    std::pair{kOffsets, "data_offsets"}}) {
    if ((fields_ & field) == 0) {
      return fail(Errc::st_tensor_entry_invalid, where() + ": entry lacks the key '" + name + "'");
    }
  }
  TensorInfo& t = tensor();
  // Clients index tensors with int64 (numpy, torch): every dim, and the byte
  // size the non-zero dims span, must fit one, even when a zero dim makes the
  // tensor empty ([2^63, 0] would be unusable in every client).
  constexpr std::uint64_t kMaxExtent = std::numeric_limits<std::int64_t>::max();
  std::uint64_t extent = layout::dtype_size(t.dtype);  // bytes spanned by the non-zero dims
  bool empty = false;
  for (const std::uint64_t dim : t.shape) {
    if (dim > kMaxExtent || (dim != 0 && extent > kMaxExtent / dim)) {
      return fail(Errc::st_shape_invalid, where() + ": shape " + list_text(t.shape).substr(0, 200) +
                                              " exceeds 2^63-1 bytes (clients index with int64)");
    }
    if (dim == 0) empty = true;
    if (dim != 0) extent *= dim;
  }
  const std::uint64_t bytes = empty ? 0 : extent;
  const auto [begin, end] = offsets_;
  const std::string offsets = list_text({begin, end});
  if (begin > end) {
    return fail(Errc::st_offsets_invalid,
                where() + ": data_offsets " + offsets + " has begin > end");
  }
  if (end > data_size_) {
    return fail(Errc::st_offsets_out_of_bounds, where() + ": data_offsets " + offsets +
                                                    " end past the data section of " +
                                                    std::to_string(data_size_) + " bytes");
  }
  t.data_begin = begin;
  t.data_end = end;
  if (t.byte_size() != bytes) {
    return fail(Errc::st_size_mismatch,
                where() + ": data_offsets span " + std::to_string(t.byte_size()) +
                    " bytes but shape " + list_text(t.shape) + " of " +
                    std::string(layout::dtype_name(t.dtype)) + " needs " + std::to_string(bytes));
  }
  return true;
}

}  // namespace

std::string quoted_name(std::string_view s) {
  constexpr std::size_t kMax = 120;
  std::string out = "'";
  out += cut_utf8(s, kMax);
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

Result<HeaderEntries> read_header_json(std::string_view text, std::uint64_t data_size,
                                       const std::string& label) {
  HeaderEntries out;
  HeaderSax sax(data_size, label, out);
  json::sax_parse(text.begin(), text.end(), &sax, nlohmann::detail::input_format_t::json,
                  /*strict=*/true, /*ignore_comments=*/false);
  GENOMED_RETURN_IF_ERROR(sax.result());
  return out;
}

}  // namespace genomed::format
