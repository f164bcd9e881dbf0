#include "histocnn/io/safetensors.h"

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

#include "histocnn/core/error.h"
#include "histocnn/io/atomic_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "histocnn safetensors I/O assumes a little-endian host"
#endif

namespace histocnn::io {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100ULL * 1000 * 1000;
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kHint = "the file is damaged, truncated or not a safetensors file; "
                              "re-download or re-export it";

struct DtypeInfo {
  const char* name;
  torch::ScalarType type;
  size_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"F32", torch::kFloat32, 4}, {"F64", torch::kFloat64, 8}, {"F16", torch::kFloat16, 2},
    {"BF16", torch::kBFloat16, 2}, {"I64", torch::kInt64, 8}, {"I32", torch::kInt32, 4},
    {"I16", torch::kInt16, 2},   {"I8", torch::kInt8, 1},     {"U8", torch::kUInt8, 1},
    {"BOOL", torch::kBool, 1},
};

const DtypeInfo* dtype_by_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeInfo* dtype_by_type(torch::ScalarType type) {
  for (const auto& d : kDtypes)
    if (type == d.type) return &d;
  return nullptr;
}

std::string supported_dtypes() {
  std::string out;
  for (const auto& d : kDtypes) {
    if (!out.empty()) out += ", ";
    out += d.name;
  }
  return out;
}

struct Entry {
  std::string name;
  const DtypeInfo* dtype;
  std::vector<int64_t> shape;
  uint64_t begin;
  uint64_t end;
};

uint64_t read_u64_le(const std::string& bytes) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

void write_u64_le(std::string& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

Entry parse_entry(const std::string& source, const std::string& name, const json& info,
                  uint64_t buffer_size) {
  HISTOCNN_CHECK(info.is_object(), "safetensors file '{}': entry '{}' must be a JSON object, got {}; {}",
                 source, name, info.type_name(), kHint);
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    HISTOCNN_CHECK(info.contains(key), "safetensors file '{}': tensor '{}' has no \"{}\"; {}", source,
                   name, key, kHint);
  }
  Entry entry;
  entry.name = name;

  const json& dtype = info.at("dtype");
  HISTOCNN_CHECK(dtype.is_string(), "safetensors file '{}': tensor '{}' has a non-string dtype; {}",
                 source, name, kHint);
  entry.dtype = dtype_by_name(dtype.get<std::string>());
  HISTOCNN_CHECK(entry.dtype != nullptr,
                 "safetensors file '{}': tensor '{}' has unsupported dtype '{}' (supported: {}); "
                 "convert the tensor to a supported dtype before saving",
                 source, name, dtype.get<std::string>(), supported_dtypes());

  const json& shape = info.at("shape");
  HISTOCNN_CHECK(shape.is_array(), "safetensors file '{}': tensor '{}' has a shape that is not a list; {}",
                 source, name, kHint);
  // The element count is bounded by the buffer size, so any count beyond it is rejected early
  // and the products below never overflow.
  uint64_t elements = 1;
  bool too_large = false;
  for (const json& dim : shape) {
    HISTOCNN_CHECK(dim.is_number_integer(),
                   "safetensors file '{}': tensor '{}' has a shape entry {} that is not an integer; {}",
                   source, name, dim.dump(), kHint);
    HISTOCNN_CHECK(dim.is_number_unsigned(),
                   "safetensors file '{}': tensor '{}' has a negative dimension {}; {}", source, name,
                   dim.dump(), kHint);
    uint64_t d = dim.get<uint64_t>();
    HISTOCNN_CHECK(d <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                   "safetensors file '{}': tensor '{}' has an absurd dimension {}; {}", source, name,
                   d, kHint);
    entry.shape.push_back(static_cast<int64_t>(d));
    if (d == 0) {
      elements = 0;
    } else if (elements != 0 && !too_large) {
      if (elements > buffer_size / d) too_large = true;
      else elements *= d;
    }
  }
  if (elements == 0) too_large = false;

  const json& offsets = info.at("data_offsets");
  HISTOCNN_CHECK(offsets.is_array() && offsets.size() == 2,
                 "safetensors file '{}': tensor '{}' needs data_offsets [begin, end], got {}; {}",
                 source, name, offsets.dump(), kHint);
  for (const json& o : offsets) {
    HISTOCNN_CHECK(o.is_number_unsigned(),
                   "safetensors file '{}': tensor '{}' has data_offsets {} that are not non-negative "
                   "integers; {}",
                   source, name, offsets.dump(), kHint);
  }
  entry.begin = offsets[0].get<uint64_t>();
  entry.end = offsets[1].get<uint64_t>();
  HISTOCNN_CHECK(entry.begin <= entry.end,
                 "safetensors file '{}': tensor '{}' has data_offsets [{}, {}] with begin > end; {}",
                 source, name, entry.begin, entry.end, kHint);
  HISTOCNN_CHECK(entry.end <= buffer_size,
                 "safetensors file '{}': tensor '{}' ends at byte {} but the data buffer has only {} "
                 "bytes; {}",
                 source, name, entry.end, buffer_size, kHint);
  const uint64_t bytes = entry.end - entry.begin;
  HISTOCNN_CHECK(!too_large && elements <= buffer_size / entry.dtype->size &&
                     elements * entry.dtype->size == bytes,
                 "safetensors file '{}': tensor '{}' has shape {} of {} ({} bytes expected) but its "
                 "data_offsets [{}, {}] cover {} bytes; {}",
                 source, name, shape.dump(), entry.dtype->name,
                 too_large ? std::string("too many") : std::to_string(elements * entry.dtype->size),
                 entry.begin, entry.end, bytes, kHint);
  return entry;
}

std::map<std::string, std::string> parse_metadata(const std::string& source, const json& meta) {
  std::map<std::string, std::string> out;
  if (meta.is_null()) return out;
  HISTOCNN_CHECK(meta.is_object(), "safetensors file '{}': \"__metadata__\" must be an object of "
                 "strings, got {}; {}", source, meta.type_name(), kHint);
  for (const auto& item : meta.items()) {
    HISTOCNN_CHECK(item.value().is_string(),
                   "safetensors file '{}': metadata value for '{}' must be a string, got {}; {}", source,
                   item.key(), item.value().type_name(), kHint);
    out.emplace(item.key(), item.value().get<std::string>());
  }
  return out;
}

}  // namespace

SafetensorsFile parse_safetensors(const std::string& bytes, const std::string& source) {
  HISTOCNN_CHECK(bytes.size() >= 8,
                 "safetensors file '{}' has {} bytes, fewer than the 8-byte header length; {}", source,
                 bytes.size(), kHint);
  const uint64_t header_size = read_u64_le(bytes);
  HISTOCNN_CHECK(header_size <= kMaxHeaderBytes,
                 "safetensors file '{}' declares an absurd header length of {} bytes (limit {}); {}",
                 source, header_size, kMaxHeaderBytes, kHint);
  HISTOCNN_CHECK(header_size <= bytes.size() - 8,
                 "safetensors file '{}' declares a {}-byte header but only {} bytes follow the length; {}",
                 source, header_size, bytes.size() - 8, kHint);
  const uint64_t buffer_start = 8 + header_size;
  const uint64_t buffer_size = bytes.size() - buffer_start;

  // Reject duplicate top-level keys instead of letting the last one silently win.
  std::set<std::string> seen_keys;
  std::string duplicate;
  auto callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      if (!seen_keys.insert(parsed.get<std::string>()).second && duplicate.empty())
        duplicate = parsed.get<std::string>();
    }
    return true;
  };
  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + static_cast<std::ptrdiff_t>(buffer_start),
                         callback);
  } catch (const json::exception& e) {
    HISTOCNN_FAIL("safetensors file '{}' has a header that is not valid JSON ({}); {}", source,
                  e.what(), kHint);
  }
  HISTOCNN_CHECK(header.is_object(), "safetensors file '{}' has a JSON header that is a {}, not an "
                 "object; {}", source, header.type_name(), kHint);
  HISTOCNN_CHECK(duplicate.empty(), "safetensors file '{}' lists '{}' twice in its header; {}", source,
                 duplicate, kHint);

  SafetensorsFile result;
  std::vector<Entry> entries;
  try {
    for (const auto& item : header.items()) {
      if (item.key() == kMetadataKey) {
        result.metadata = parse_metadata(source, item.value());
      } else {
        entries.push_back(parse_entry(source, item.key(), item.value(), buffer_size));
      }
    }
  } catch (const json::exception& e) {
    HISTOCNN_FAIL("safetensors file '{}' has a malformed header ({}); {}", source, e.what(), kHint);
  }

  // Overlap check; empty tensors occupy no bytes and cannot overlap anything.
  std::vector<const Entry*> by_offset;
  for (const auto& e : entries)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const Entry& prev = *by_offset[i - 1];
    const Entry& cur = *by_offset[i];
    HISTOCNN_CHECK(cur.begin >= prev.end,
                   "safetensors file '{}': tensors '{}' [{}, {}] and '{}' [{}, {}] overlap; {}", source,
                   prev.name, prev.begin, prev.end, cur.name, cur.begin, cur.end, kHint);
  }

  const char* buffer = bytes.data() + buffer_start;
  for (const auto& e : entries) {
    torch::Tensor t = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
    const size_t n = static_cast<size_t>(e.end - e.begin);
    if (e.dtype->type == torch::kBool) {
      for (size_t i = 0; i < n; ++i) {
        unsigned char v = static_cast<unsigned char>(buffer[e.begin + i]);
        HISTOCNN_CHECK(v <= 1, "safetensors file '{}': BOOL tensor '{}' holds byte value {} (only 0 "
                       "and 1 are valid); {}", source, e.name, static_cast<int>(v), kHint);
      }
    }
    if (n > 0) std::memcpy(t.data_ptr(), buffer + e.begin, n);
    result.tensors.emplace(e.name, std::move(t));
  }
  return result;
}

SafetensorsFile load_safetensors(const std::filesystem::path& path) {
  return parse_safetensors(read_file(path), path.string());
}

std::string serialize_safetensors(const TensorMap& tensors,
                                  const std::map<std::string, std::string>& metadata) {
  std::vector<torch::Tensor> contiguous;
  contiguous.reserve(tensors.size());
  std::string header = "{";
  bool first = true;
  if (!metadata.empty()) {
    header += json(kMetadataKey).dump() + ":" + json(metadata).dump();
    first = false;
  }
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {  // std::map: sorted by name
    HISTOCNN_CHECK(name != kMetadataKey, "cannot save a tensor named '{}': the name is reserved for "
                   "metadata; rename the tensor", name);
    HISTOCNN_CHECK(tensor.defined(), "cannot save tensor '{}': it is undefined", name);
    HISTOCNN_CHECK(tensor.layout() == torch::kStrided,
                   "cannot save tensor '{}': only dense tensors can be saved; call .to_dense() first",
                   name);
    const DtypeInfo* dtype = dtype_by_type(tensor.scalar_type());
    HISTOCNN_CHECK(dtype != nullptr, "cannot save tensor '{}' of dtype {}: safetensors supports {}; "
                   "convert it first", name, c10::toString(tensor.scalar_type()), supported_dtypes());
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype->size;
    json shape = json::array();
    for (int64_t d : t.sizes()) shape.push_back(d);
    if (!first) header += ",";
    first = false;
    // Key order dtype, shape, data_offsets as in the reference implementation.
    header += json(name).dump() + ":{\"dtype\":\"" + dtype->name + "\",\"shape\":" + shape.dump() +
              ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + nbytes) +
              "]}";
    offset += nbytes;
    contiguous.push_back(std::move(t));
  }
  header += "}";
  header.append((8 - header.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + header.size() + offset);
  write_u64_le(out, header.size());
  out += header;
  for (const auto& t : contiguous) {
    const size_t n = static_cast<size_t>(t.numel()) * t.element_size();
    if (n > 0) out.append(static_cast<const char*>(t.data_ptr()), n);
  }
  return out;
}

void save_safetensors(const std::filesystem::path& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  write_file_atomic(path, serialize_safetensors(tensors, metadata));
}

}  // namespace histocnn::io
