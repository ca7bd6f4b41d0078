// The packed checkpoint (README.md, "Packed checkpoint format"): one self-contained file with the
// TorchScript architecture and unquantized parameters, each quantized layer's fp16 codebook and
// bit-packed codes, and the run's provenance. Versioned, a CRC-32 per section, every size checked
// against the file before anything is allocated; written atomically.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace vimvq::format {

inline constexpr char kMagic[8] = {'V', 'I', 'M', 'V', 'Q', 'P', 'K', '\n'};
inline constexpr uint16_t kMajorVersion = 1;
inline constexpr uint16_t kMinorVersion = 0;

struct QuantizedLayer {
  std::string name;            // full parameter name, e.g. "layers.0.mixer.in_proj.weight"
  std::vector<int64_t> shape;  // of the weight
  int64_t k = 0;               // codewords
  int d = 0;                   // sub-vector length
  int code_bits = 0;           // bits per packed code: ceil(log2 k)
  std::string method;
  // Codebooks: one shared by the layer (groups = 1, VQ), or one per equal run of consecutive
  // sub-vectors (rtn: groups = rows, d = 1, k = 2^bits levels per row).
  int64_t groups = 1;
  at::Tensor codebook;         // (groups * k, d); stored as fp16
  std::vector<int64_t> codes;  // n_sub = ceil(numel / d) codes in [0, k), of group j / (n_sub / groups)
};

// codebook[group * k + code], flattened, cut to numel and reshaped: the layer's weight.
at::Tensor dequantize_layer(const QuantizedLayer& layer);

struct PackedCheckpoint {
  nlohmann::json provenance;  // tool, bits, method, hyper-parameters, seed, timings...
  std::string architecture;   // TorchScript archive bytes, quantized weights emptied
  std::vector<QuantizedLayer> layers;
};

struct SizeBreakdown {
  int64_t file_bytes = 0, code_bytes = 0, codebook_bytes = 0, architecture_bytes = 0, metadata_bytes = 0;
};

// Empties the quantized weights of a copy of `model` and serialises it as the architecture.
std::string architecture_without(const torch::jit::Module& model, const std::vector<QuantizedLayer>& layers);

// Atomic (temporary file, then rename). Returns what each part takes on disk.
SizeBreakdown write_packed(const std::string& path, const PackedCheckpoint& checkpoint);

// Throws vimvq::Error("<path>: <problem>") for anything malformed: bad magic, unknown major
// version, truncation, checksum mismatch, inconsistent sizes or codes out of range.
PackedCheckpoint read_packed(const std::string& path);

bool is_packed_file(const std::string& path);

// The architecture with every quantized weight rebuilt as codebook[codes] (fp16 values, fp32).
torch::jit::Module dequantize(const PackedCheckpoint& checkpoint, const c10::Device& device);

}  // namespace vimvq::format
