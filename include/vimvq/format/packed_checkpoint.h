// The packed checkpoint (docs/FORMAT.md): one self-contained file with the
// TorchScript architecture and unquantized parameters, each quantized layer's fp16 codebook and
// bit-packed codes, and the run's provenance. Versioned, a CRC-32 per section, every size checked
// against the file before anything is allocated; written atomically.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vimvq/vq/quantized_weight.h"

namespace vimvq::format {

inline constexpr char kMagic[8] = {'V', 'I', 'M', 'V', 'Q', 'P', 'K', '\n'};
inline constexpr uint16_t kMajorVersion = 1;
inline constexpr uint16_t kMinorVersion = 0;

struct PackedCheckpoint {
  nlohmann::json provenance;  // tool, bits, method, hyper-parameters, seed, timings...
  std::string architecture;   // TorchScript archive bytes, quantized weights emptied
  std::vector<vq::QuantizedWeight> layers;
};

struct SizeBreakdown {
  int64_t file_bytes = 0, code_bytes = 0, codebook_bytes = 0, architecture_bytes = 0, metadata_bytes = 0;
};

// Empties the quantized weights of a copy of `model` and serialises it as the architecture.
std::string architecture_without(const torch::jit::Module& model,
                                 const std::vector<vq::QuantizedWeight>& layers);

// Atomic (temporary file, then rename). Returns what each part takes on disk. Each layer's
// codebook and code bytes must equal its size plan (vq::LayerPlan), or nothing is written.
SizeBreakdown write_packed(const std::string& path, const PackedCheckpoint& checkpoint);
// The bytes write_packed writes (`path` only names the file in messages).
std::string packed_bytes(const std::string& path, const PackedCheckpoint& checkpoint, SizeBreakdown* sizes);

// Throws vimvq::Error("<path>: <problem>") for anything malformed: bad magic, unknown major
// version, truncation, checksum mismatch, inconsistent sizes or codes out of range.
PackedCheckpoint read_packed(const std::string& path);

bool is_packed_file(const std::string& path);

// The architecture with every quantized weight rebuilt as codebook[codes] (fp16 values, fp32).
torch::jit::Module dequantize(const PackedCheckpoint& checkpoint, const c10::Device& device);

// The architecture as it runs compressed (docs/MODEL_CONTRACT.md, "Compressed linears"): each
// quantized layer whose linear module has the compressed members keeps its codes (bytes) and
// codebooks, and its weight stays the empty placeholder; a layer without them (an export before
// them) is dequantized. `compressed`: how many layers run compressed.
torch::jit::Module compressed(const PackedCheckpoint& checkpoint, const c10::Device& device, int* compressed);

}  // namespace vimvq::format
