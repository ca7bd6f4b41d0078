#include "src/cli/resume_state.h"

#include <ATen/ATen.h>

#include <fstream>
#include <vector>

#include "vimvq/calib/records_json.h"
#include "vimvq/format/packed_checkpoint.h"
#include "vimvq/util/atomic_file.h"
#include "vimvq/util/error.h"
#include "vimvq/util/fnv1a.h"

namespace vimvq::cli {
namespace {

constexpr int kStateVersion = 1;

std::string to_hex(const at::Tensor& bytes) {
  static const char* digits = "0123456789abcdef";
  const at::Tensor b = bytes.contiguous();
  const auto* p = b.data_ptr<uint8_t>();
  std::string s;
  s.reserve(2 * b.numel());
  for (int64_t i = 0; i < b.numel(); ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

at::Tensor from_hex(const std::string& s, const std::string& path) {
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    throw Error(path + ": resume state: damaged generator state");
  };
  if (s.size() % 2) throw Error(path + ": resume state: damaged generator state");
  at::Tensor t = at::empty({static_cast<int64_t>(s.size() / 2)}, at::kByte);
  auto* p = t.data_ptr<uint8_t>();
  for (size_t i = 0; i < s.size(); i += 2)
    p[i / 2] = static_cast<uint8_t>(nibble(s[i]) * 16 + nibble(s[i + 1]));
  return t;
}

uint64_t hash_file(uint64_t h, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = fnv1a(h, buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h;
}

}  // namespace

std::string resume_state_path(const std::string& output) { return output + ".resume"; }

std::string run_fingerprint(const std::string& model_path, const at::Tensor& images, const at::Tensor& extra,
                            const calib::CalibrationParams& params, const std::string& device, int threads) {
  uint64_t h = hash_file(kFnv1aOffset, model_path);
  for (const at::Tensor& t : {images, extra}) {
    if (!t.defined()) continue;
    const at::Tensor pixels = t.to(at::kCPU).contiguous();
    h = fnv1a(h, pixels.data_ptr(), static_cast<size_t>(pixels.numel()) * pixels.element_size());
    for (int64_t s : pixels.sizes()) h = fnv1a(h, std::to_string(s) + "x");
  }
  h = fnv1a(h, calib::to_json(params).dump());
  h = fnv1a(h, device + "/" + std::to_string(threads) + "/" + VIMVQ_VERSION);
  return hex64(h);
}

void write_resume_state(const std::string& path, const std::string& fingerprint, int next_block,
                        const calib::CalibrationResult& done, const at::Tensor& generator_state,
                        const std::string& message_after) {
  format::PackedCheckpoint state;
  state.layers = done.layers;
  nlohmann::json layers = nlohmann::json::array(), blocks = nlohmann::json::array();
  for (const auto& l : done.layer_records) layers.push_back(calib::record_json(l));
  for (const auto& b : done.blocks) blocks.push_back(calib::record_json(b));
  state.provenance = {{"resume",
                       {{"version", kStateVersion},
                        {"fingerprint", fingerprint},
                        {"next_block", next_block},
                        {"generator_state", to_hex(generator_state)},
                        {"layer_records", layers},
                        {"block_records", blocks}}}};
  write_file_atomically(path, format::packed_bytes(path, state, nullptr), message_after);
}

calib::ResumePoint read_resume_state(const std::string& path, const std::string& fingerprint) {
  const format::PackedCheckpoint state = format::read_packed(path);
  calib::ResumePoint point;
  try {
    const auto& r = state.provenance.at("resume");
    if (r.at("version").get<int>() != kStateVersion) throw Error(path + ": resume state of another version");
    const std::string made_with = r.at("fingerprint").get<std::string>();
    if (made_with != fingerprint) {
      throw Error(path + ": resume state made with other inputs or parameters (fingerprint " + made_with +
                  ", this run " + fingerprint + "); run without --resume to start again");
    }
    point.next_block = r.at("next_block").get<int>();
    point.generator_state = from_hex(r.at("generator_state").get<std::string>(), path);
    for (const auto& l : r.at("layer_records"))
      point.done.layer_records.push_back(calib::layer_record_from_json(l));
    for (const auto& b : r.at("block_records")) point.done.blocks.push_back(calib::block_record_from_json(b));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not a vimvq resume state (" + e.what() + ")");
  }
  point.done.layers = state.layers;
  if (point.done.layers.size() != point.done.layer_records.size())
    throw Error(path + ": resume state: layers and records disagree");
  return point;
}

}  // namespace vimvq::cli
