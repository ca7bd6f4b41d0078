#include "vimvq/format/packed_checkpoint.h"

#include <caffe2/serialize/read_adapter_interface.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "vimvq/model/parameter_slot.h"
#include "vimvq/util/atomic_file.h"
#include "vimvq/util/bounded_json.h"
#include "vimvq/util/error.h"
#include "vimvq/vq/packing.h"
#include "vimvq/vq/subvectors.h"

namespace vimvq::format {
namespace {

// Little-endian fixed-width fields.
template <typename T>
void put(std::string& out, T v) {
  for (size_t i = 0; i < sizeof(T); ++i)
    out.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xFF));
}

template <typename T>
T get(const uint8_t* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return static_cast<T>(v);
}

uint32_t crc32_of(const void* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* p = static_cast<const Bytef*>(data);
  while (size > 0) {  // zlib takes uInt lengths
    const uInt chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, p, chunk);
    p += chunk;
    size -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

constexpr size_t kHeaderSize = 8 + 2 + 2 + 4 + 4;  // magic, major, minor, sections, header crc
constexpr size_t kSectionHeaderSize = 4 + 4 + 8;   // tag, payload crc, payload length
constexpr uint32_t kMaxSections = 1u << 20;

uint32_t tag_of(const char (&t)[5]) { return get<uint32_t>(reinterpret_cast<const uint8_t*>(t)); }
const uint32_t kTagMeta = tag_of("META"), kTagArch = tag_of("ARCH"), kTagBook = tag_of("CBK1"),
               kTagCode = tag_of("CODE");

void add_section(std::string& out, uint32_t tag, const std::string& payload) {
  put<uint32_t>(out, tag);
  put<uint32_t>(out, crc32_of(payload.data(), payload.size()));
  put<uint64_t>(out, payload.size());
  out += payload;
}

// Major 2's architecture payload: u64 length of the archive, then the archive deflated (zlib). A
// TorchScript archive stores its entries uncompressed; its code, pickles and fp16 tensors deflate.
std::string deflate_architecture(const std::string& archive) {
  uLongf bound = compressBound(static_cast<uLong>(archive.size()));
  std::string out;
  put<uint64_t>(out, archive.size());
  out.resize(8 + bound);
  if (compress2(reinterpret_cast<Bytef*>(out.data() + 8), &bound,
                reinterpret_cast<const Bytef*>(archive.data()), static_cast<uLong>(archive.size()),
                Z_BEST_COMPRESSION) != Z_OK)
    throw Error("cannot deflate the architecture");
  out.resize(8 + bound);
  return out;
}

std::string fp16_bytes(const at::Tensor& codebook) {
  const at::Tensor h = codebook.detach().to(at::kCPU).to(at::kHalf).contiguous();
  return std::string(static_cast<const char*>(h.data_ptr()), static_cast<size_t>(h.numel()) * 2);
}

// The layer's entry in META's table; the CRC-32s of its two sections bind them to it (a section
// moved to another layer with its own CRC intact no longer matches).
nlohmann::json layer_json(const vq::QuantizedWeight& l, const std::string& book, const std::string& codes) {
  return {{"name", l.name},
          {"shape", l.shape},
          {"k", l.k},
          {"d", l.d},
          {"groups", l.groups},
          {"code_bits", l.code_bits},
          {"method", vq::method_name(l.method)},
          {"codebook_crc32", crc32_of(book.data(), book.size())},
          {"codes_crc32", crc32_of(codes.data(), codes.size())}};
}

}  // namespace

RestDtype parse_rest_dtype(const std::string& name) {
  if (name == "fp16" || name == "float16") return RestDtype::kFloat16;
  if (name == "bf16" || name == "bfloat16") return RestDtype::kBFloat16;
  if (name == "fp32" || name == "float32") return RestDtype::kFloat32;
  throw Error("unknown dtype '" + name + "' for the unquantized parameters (fp16, bf16 or fp32)");
}

const char* rest_dtype_name(RestDtype dtype) {
  switch (dtype) {
    case RestDtype::kFloat16:
      return "float16";
    case RestDtype::kBFloat16:
      return "bfloat16";
    case RestDtype::kFloat32:
      return "float32";
  }
  return "float32";
}

int rest_dtype_bytes(RestDtype dtype) { return dtype == RestDtype::kFloat32 ? 4 : 2; }

namespace {

at::ScalarType scalar_type(RestDtype dtype) {
  switch (dtype) {
    case RestDtype::kFloat16:
      return at::kHalf;
    case RestDtype::kBFloat16:
      return at::kBFloat16;
    case RestDtype::kFloat32:
      return at::kFloat;
  }
  return at::kFloat;
}

// Every non-empty floating parameter and buffer of `root`, recast to `to`.
void cast_floating(const torch::jit::Module& root, at::ScalarType to) {
  for (auto m : root.modules()) {
    std::vector<std::pair<std::string, at::Tensor>> params, buffers;
    for (const auto& p : m.named_parameters(false)) params.emplace_back(p.name, p.value);
    for (const auto& b : m.named_buffers(false)) buffers.emplace_back(b.name, b.value);
    auto recast = [&](const std::vector<std::pair<std::string, at::Tensor>>& tensors, bool is_buffer) {
      for (const auto& [name, value] : tensors)
        if (value.is_floating_point() && value.numel() > 0 && value.scalar_type() != to)
          m.register_parameter(name, value.detach().to(to), is_buffer);
    };
    recast(params, false);
    recast(buffers, true);
  }
}

std::map<std::string, at::Tensor> floating_tensors(const torch::jit::Module& m) {
  std::map<std::string, at::Tensor> out;
  for (const auto& p : m.named_parameters(true))
    if (p.value.is_floating_point()) out.emplace(p.name, p.value);
  for (const auto& b : m.named_buffers(true))
    if (b.value.is_floating_point()) out.emplace(b.name, b.value);
  return out;
}

}  // namespace

std::string architecture_without(const torch::jit::Module& model,
                                 const std::vector<vq::QuantizedWeight>& layers, RestDtype rest) {
  torch::jit::Module copy = model.clone();
  for (const auto& l : layers) model::ParameterSlot(copy, l.name).set(at::empty({0}));
  cast_floating(copy, scalar_type(rest));
  const auto before = floating_tensors(model);
  for (const auto& [name, value] : floating_tensors(copy)) {
    const auto it = before.find(name);
    if (value.numel() > 0 && it != before.end() && at::isfinite(it->second).all().item<bool>() &&
        !at::isfinite(value).all().item<bool>())
      throw Error(std::string("parameter ") + name + " has values beyond " + rest_dtype_name(rest) +
                  "'s range: store the unquantized parameters as bf16 or fp32 (--rest-dtype)");
  }
  std::ostringstream out;
  copy.save(out);
  return out.str();
}

SizeBreakdown write_packed(const std::string& path, const PackedCheckpoint& c) {
  SizeBreakdown size;
  write_file_atomically(path, packed_bytes(path, c, &size));
  return size;
}

namespace {

// One layer's codebook and code payloads, checked against its size plan.
std::pair<std::string, std::string> layer_payloads(const std::string& path, const vq::QuantizedWeight& l) {
  if (l.codebook.size(0) != l.groups * l.k || l.codebook.size(1) != l.d)
    throw Error(path + ": codebook of " + l.name + " is not (groups * k) x d");
  if (l.k > (int64_t{1} << l.code_bits)) throw Error(path + ": " + l.name + ": k does not fit its code bits");
  std::string book = fp16_bytes(l.codebook);
  const auto packed = vq::pack_codes(std::vector<int64_t>(l.codes.begin(), l.codes.end()), l.code_bits);
  const vq::LayerPlan plan = l.plan();
  if (static_cast<int64_t>(book.size()) != plan.codebook_bytes() ||
      static_cast<int64_t>(packed.size()) != plan.code_bytes())
    throw Error(path + ": " + l.name + ": bytes to write differ from the layer's size plan");
  return {std::move(book), std::string(packed.begin(), packed.end())};
}

}  // namespace

std::string packed_bytes(const std::string& path, const PackedCheckpoint& c, SizeBreakdown* sizes) {
  std::vector<std::pair<std::string, std::string>> payloads;
  nlohmann::json meta;
  meta["format"] = {{"name", "vimvq-packed"}, {"major", kMajorVersion}, {"minor", kMinorVersion}};
  meta["provenance"] = c.provenance;
  meta["rest_dtype"] = rest_dtype_name(c.rest);
  meta["layers"] = nlohmann::json::array();
  for (const auto& l : c.layers) {
    payloads.push_back(layer_payloads(path, l));
    meta["layers"].push_back(layer_json(l, payloads.back().first, payloads.back().second));
  }
  const std::string meta_text = meta.dump();
  const std::string arch = deflate_architecture(c.architecture);

  std::string out;
  out.append(kMagic, sizeof kMagic);
  put<uint16_t>(out, kMajorVersion);
  put<uint16_t>(out, kMinorVersion);
  put<uint32_t>(out, static_cast<uint32_t>(2 + 2 * c.layers.size()));
  put<uint32_t>(out, crc32_of(out.data(), out.size()));
  SizeBreakdown size;
  add_section(out, kTagMeta, meta_text);
  size.metadata_bytes = static_cast<int64_t>(meta_text.size());
  add_section(out, kTagArch, arch);
  size.architecture_bytes = static_cast<int64_t>(arch.size());
  for (const auto& [book, codes] : payloads) {
    add_section(out, kTagBook, book);
    add_section(out, kTagCode, codes);
    size.codebook_bytes += static_cast<int64_t>(book.size());
    size.code_bytes += static_cast<int64_t>(codes.size());
  }
  size.file_bytes = static_cast<int64_t>(out.size());
  if (sizes) *sizes = size;
  return out;
}

bool is_packed_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[sizeof kMagic] = {};
  return in.read(magic, sizeof magic) && std::memcmp(magic, kMagic, sizeof kMagic) == 0;
}

namespace {

// Reads one packed file front to back; every length is checked against the bytes left before
// anything is allocated, and every problem is an Error naming the file.
class PackedReader {
 public:
  explicit PackedReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
    if (!in_) throw Error(path + ": cannot open");
    in_.seekg(0, std::ios::end);
    file_size_ = static_cast<uint64_t>(in_.tellg());
    in_.seekg(0);
  }

  Error fail(const std::string& problem) const { return Error(path_ + ": " + problem); }

  // Returns the section count.
  uint32_t header() {
    if (file_size_ < kHeaderSize) throw fail("truncated packed checkpoint (no complete header)");
    uint8_t h[kHeaderSize];
    in_.read(reinterpret_cast<char*>(h), kHeaderSize);
    if (std::memcmp(h, kMagic, sizeof kMagic) != 0) throw fail("not a vimvq packed checkpoint (bad magic)");
    major_ = get<uint16_t>(h + 8);
    minor_ = get<uint16_t>(h + 10);
    if (major_ < kOldestMajorVersion || major_ > kMajorVersion) {
      throw fail("packed format version " + std::to_string(major_) + "." + std::to_string(minor_) +
                 " is not readable by this vimvq (reads " + std::to_string(kOldestMajorVersion) + ".x to " +
                 std::to_string(kMajorVersion) + ".x)");
    }
    if (crc32_of(h, kHeaderSize - 4) != get<uint32_t>(h + kHeaderSize - 4))
      throw fail("header checksum mismatch");
    const uint32_t sections = get<uint32_t>(h + 12);
    if (sections < 2 || sections > kMaxSections || sections % 2 != 0) throw fail("implausible section count");
    offset_ = kHeaderSize;
    return sections;
  }

  uint16_t major() const { return major_; }
  uint16_t minor() const { return minor_; }

  // `crc`: the payload's CRC-32, which major 2's layer table repeats.
  std::string section(uint32_t want_tag, const std::string& what, uint32_t* crc_out = nullptr) {
    if (file_size_ - offset_ < kSectionHeaderSize) throw fail("truncated before the " + what + " section");
    uint8_t sh[kSectionHeaderSize];
    in_.read(reinterpret_cast<char*>(sh), kSectionHeaderSize);
    const uint32_t tag = get<uint32_t>(sh), crc = get<uint32_t>(sh + 4);
    const uint64_t length = get<uint64_t>(sh + 8);
    if (tag != want_tag) throw fail("expected the " + what + " section, found another");
    offset_ += kSectionHeaderSize;
    if (length > file_size_ - offset_) {
      throw fail("truncated " + what + " section (" + std::to_string(length) + " bytes declared, " +
                 std::to_string(file_size_ - offset_) + " left)");
    }
    std::string payload(length, '\0');  // bounded by the file size checked above
    in_.read(payload.data(), static_cast<std::streamsize>(length));
    if (!in_) throw fail("read error in the " + what + " section");
    if (crc32_of(payload.data(), payload.size()) != crc)
      throw fail("checksum mismatch in the " + what + " section");
    offset_ += length;
    if (crc_out) *crc_out = crc;
    const auto bytes = static_cast<int64_t>(length);
    (want_tag == kTagMeta   ? sizes_.metadata_bytes
     : want_tag == kTagArch ? sizes_.architecture_bytes
     : want_tag == kTagBook ? sizes_.codebook_bytes
                            : sizes_.code_bytes) += bytes;
    return payload;
  }

  // The TorchScript archive: as stored in major 1, inflated in major 2 (its declared length
  // bounded by deflate's largest ratio before anything is allocated).
  std::string architecture() {
    std::string payload = section(kTagArch, "architecture");
    if (major_ < 2) return payload;
    constexpr uint64_t kMaxDeflateRatio = 1032;
    if (payload.size() < 8) throw fail("truncated architecture section (no length)");
    const uint64_t length = get<uint64_t>(reinterpret_cast<const uint8_t*>(payload.data()));
    if (length > (payload.size() - 8) * kMaxDeflateRatio)
      throw fail("architecture declares " + std::to_string(length) + " bytes, more than its " +
                 std::to_string(payload.size() - 8) + " deflated bytes can hold");
    std::string archive(length, '\0');
    uLongf got = static_cast<uLongf>(length);
    if (uncompress(reinterpret_cast<Bytef*>(archive.data()), &got,
                   reinterpret_cast<const Bytef*>(payload.data() + 8),
                   static_cast<uLong>(payload.size() - 8)) != Z_OK ||
        got != length)
      throw fail("architecture section does not inflate to its declared length");
    return archive;
  }

  // The table entry of one layer, checked for plausibility, then its two sections.
  vq::QuantizedWeight layer(const nlohmann::json& lj) {
    vq::QuantizedWeight l;
    l.name = lj.at("name").get<std::string>();
    l.shape = lj.at("shape").get<std::vector<int64_t>>();
    l.k = lj.at("k").get<int64_t>();
    l.d = lj.at("d").get<int>();
    l.code_bits = lj.at("code_bits").get<int>();
    const std::string method = lj.at("method").get<std::string>();
    try {
      l.method = vq::parse_method(method);
    } catch (const Error&) {
      throw fail(l.name + ": unknown method '" + method + "'");
    }
    l.groups = lj.value("groups", int64_t{1});
    const int64_t n_sub = checked_subvectors(l);
    uint32_t book_crc = 0, codes_crc = 0;
    const std::string book = section(kTagBook, "codebook", &book_crc);
    check_binding(lj, l.name, "codebook", book_crc);
    if (book.size() != static_cast<size_t>(l.groups * l.k * l.d * 2))
      throw fail(l.name + ": codebook size does not match groups x k x d");
    at::Tensor half = at::empty({l.groups * l.k, l.d}, at::kHalf);
    std::memcpy(half.data_ptr(), book.data(), book.size());
    l.codebook = half.to(at::kFloat);
    if (!at::isfinite(l.codebook).all().item<bool>())
      throw fail(l.name + ": codebook holds a NaN or infinite codeword");
    const std::string codes = section(kTagCode, "codes", &codes_crc);
    check_binding(lj, l.name, "codes", codes_crc);
    if (codes.size() != vq::packed_size(static_cast<size_t>(n_sub), l.code_bits))
      throw fail(l.name + ": packed codes size does not match its shape");
    const auto unpacked =
        vq::unpack_codes(reinterpret_cast<const uint8_t*>(codes.data()), codes.size(), n_sub, l.code_bits);
    for (auto code : unpacked) {
      if (code >= l.k)
        throw fail(l.name + ": code " + std::to_string(code) + " out of range (k = " + std::to_string(l.k) +
                   ")");
    }
    l.codes.assign(unpacked.begin(), unpacked.end());  // each below k <= 256
    return l;
  }

  SizeBreakdown sizes() const {
    SizeBreakdown s = sizes_;
    s.file_bytes = static_cast<int64_t>(file_size_);
    return s;
  }

  void expect_end() const {
    if (offset_ != file_size_) throw fail("trailing bytes after the last section");
  }

 private:
  // Major 2: a layer's section must carry the CRC-32 its table entry names, or it belongs to
  // another layer (or the table to another file).
  void check_binding(const nlohmann::json& lj, const std::string& name, const std::string& what,
                     uint32_t crc) const {
    if (major_ < 2) return;
    if (lj.at(what + "_crc32").get<uint32_t>() != crc)
      throw fail(name + ": its " + what + " section is not the one its layer table entry names (checksum " +
                 "differs: a section of another layer?)");
  }

  // Sub-vector count of a layer whose shape, k, d, code bits and groups are plausible.
  int64_t checked_subvectors(const vq::QuantizedWeight& l) const {
    constexpr int64_t kMaxWeights = int64_t{1} << 40;  // caps the product, not only each dimension
    int64_t numel = 1;
    for (auto s : l.shape) {
      if (s < 0 || s > (int64_t{1} << 32) || (s > 0 && numel > kMaxWeights / s))
        throw fail(l.name + ": implausible shape");
      numel *= s;
    }
    if (l.d < 1 || l.d > 64 || l.code_bits < 1 || l.code_bits > 16 || l.k < 1 || l.k > 256 ||
        l.k > (int64_t{1} << l.code_bits))
      throw fail(l.name + ": implausible k, d or code bits");
    const int64_t n_sub = (numel + l.d - 1) / l.d;
    if (l.groups < 1 || l.groups > n_sub || n_sub % l.groups != 0)
      throw fail(l.name + ": implausible codebook groups");
    return n_sub;
  }

  std::string path_;
  std::ifstream in_;
  uint64_t file_size_ = 0, offset_ = 0;
  uint16_t major_ = 0, minor_ = 0;
  SizeBreakdown sizes_;
};

}  // namespace

PackedCheckpoint read_packed(const std::string& path) {
  PackedReader reader(path);
  const uint32_t sections = reader.header();
  PackedCheckpoint c;
  nlohmann::json meta;
  try {
    auto parsed = parse_json_within_depth(reader.section(kTagMeta, "metadata"));
    if (!parsed) throw reader.fail("metadata nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    meta = std::move(*parsed);
  } catch (const nlohmann::json::exception& e) {
    throw reader.fail(std::string("metadata is not JSON: ") + e.what());
  }
  c.major = reader.major();
  c.minor = reader.minor();
  c.architecture = reader.architecture();
  try {
    c.provenance = meta.at("provenance");
    c.rest = c.major < 2 ? RestDtype::kFloat32 : parse_rest_dtype(meta.at("rest_dtype").get<std::string>());
    const auto& layers = meta.at("layers");
    if (2 + 2 * layers.size() != sections) throw reader.fail("layer table and section count disagree");
    for (const auto& lj : layers) c.layers.push_back(reader.layer(lj));
  } catch (const nlohmann::json::exception& e) {
    throw reader.fail(std::string("metadata: ") + e.what());
  } catch (const Error& e) {
    const std::string what = e.what();
    throw what.rfind(path, 0) == 0 ? e : reader.fail(std::string("metadata: ") + what);
  }
  reader.expect_end();
  c.stored = reader.sizes();
  return c;
}

namespace {

// Every stored layer must land on a quantizable weight of the architecture ("layers.<b>.<name>",
// <name> in the metadata's quantizable_layers), once, where the writer left an empty placeholder.
// (Shapes are then checked by the model's probe forward at load, VimModel::check_head_width.)
void check_layer_names(const torch::jit::Module& arch, const std::vector<vq::QuantizedWeight>& layers) {
  std::set<std::string> quantizable;
  std::map<std::string, at::Tensor> params;
  for (const auto& p : arch.named_parameters(true)) params.emplace(p.name, p.value);
  try {
    torch::jit::Module copy = arch;
    const auto parsed = parse_json_within_depth(copy.get_method("metadata")({}).toStringRef());
    if (!parsed)
      throw Error("packed architecture: metadata nests deeper than " + std::to_string(kMaxJsonDepth) +
                  " levels");
    const auto& meta = *parsed;
    const int blocks = meta.at("num_blocks").get<int>();
    for (const auto& local : meta.at("quantizable_layers"))
      for (int b = 0; b < blocks; ++b)
        quantizable.insert("layers." + std::to_string(b) + "." + local.get<std::string>());
  } catch (const std::exception& e) {
    throw Error(std::string("packed architecture has no readable metadata: ") + e.what());
  }
  auto check_finite = [](const std::string& name, const at::Tensor& t) {
    if (t.is_floating_point() && t.numel() > 0 && !at::isfinite(t).all().item<bool>())
      throw Error("architecture parameter " + name + " holds a NaN or infinite value");
  };
  for (const auto& [name, value] : params) check_finite(name, value);
  for (const auto& b : arch.named_buffers(true)) check_finite(b.name, b.value);
  std::set<std::string> seen;
  for (const auto& l : layers) {
    if (!quantizable.count(l.name))
      throw Error("layer " + l.name + " is not a quantizable weight of the architecture");
    if (!seen.insert(l.name).second) throw Error("layer " + l.name + " is stored twice");
    const auto it = params.find(l.name);
    if (it == params.end() || it->second.numel() != 0)
      throw Error("layer " + l.name + " has no empty placeholder in the architecture");
  }
}

}  // namespace

namespace {

// The archive read where it lies (an istringstream would copy it).
class StringReader : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit StringReader(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<size_t>(n, bytes_.size() - pos);
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::string& bytes_;
};

torch::jit::Module load_architecture(const PackedCheckpoint& c, const c10::Device& device) {
  torch::jit::Module model;
  try {
    // Without the debug files (source ranges for error messages): a packed model's code is ours.
    model =
        torch::jit::load(std::make_shared<StringReader>(c.architecture), device, /*load_debug_files=*/false);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    throw Error("packed architecture does not load: " + what.substr(0, what.find('\n')));
  }
  check_layer_names(model, c.layers);
  cast_floating(model, at::kFloat);  // stored fp16 or bf16, computed in fp32
  return model;
}

// The layer's codes as the kernels read them: one byte each (the reader checked them below k).
at::Tensor code_tensor(const vq::QuantizedWeight& l) {
  at::Tensor codes = at::empty({static_cast<int64_t>(l.codes.size())}, at::kByte);
  std::memcpy(codes.data_ptr<uint8_t>(), l.codes.data(), l.codes.size());
  return codes;
}

}  // namespace

torch::jit::Module dequantize(const PackedCheckpoint& c, const c10::Device& device) {
  torch::jit::Module model = load_architecture(c, device);
  for (const auto& l : c.layers) model::ParameterSlot(model, l.name).set(l.dequantize().to(device));
  model.eval();
  return model;
}

torch::jit::Module compressed(PackedCheckpoint c, const c10::Device& device, int* compressed) {
  torch::jit::Module model = load_architecture(c, device);
  std::string().swap(c.architecture);
  int count = 0;
  for (auto& l : c.layers) {
    model::ParameterSlot slot(model, l.name);
    torch::jit::Module linear = slot.owner();
    if (!linear.hasattr("vq_d") || l.shape.size() != 2) {
      slot.set(l.dequantize().to(device));
      continue;
    }
    linear.setattr("vq_codes", code_tensor(l).to(device));
    linear.setattr("vq_codebook", l.codebook.to(at::kFloat).contiguous().to(device));
    linear.setattr("vq_groups", l.groups);
    linear.setattr("vq_d", static_cast<int64_t>(l.d));
    std::vector<uint8_t>().swap(l.codes);  // held once: as the tensor now
    ++count;
  }
  model.eval();
  if (compressed) *compressed = count;
  return model;
}

}  // namespace vimvq::format
