// The packed checkpoint (docs/FORMAT.md): one self-contained file with the
// TorchScript architecture and unquantized parameters (fp16 by default, compressed), each quantized
// layer's fp16 codebook and bit-packed codes bound to it by checksums in the layer table, and the
// run's provenance. Versioned, a CRC-32 per section, every size checked against the file before
// anything is allocated; written atomically. Reads versions 1.x and 2.x, writes 2.0.
#pragma once

#include <torch/script.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vimvq/vq/quantized_weight.h"

namespace vimvq::format {

inline constexpr char kMagic[8] = {'V', 'I', 'M', 'V', 'Q', 'P', 'K', '\n'};
inline constexpr uint16_t kMajorVersion = 2;  // what this build writes
inline constexpr uint16_t kMinorVersion = 0;
inline constexpr uint16_t kOldestMajorVersion = 1;  // the oldest it reads

// How the unquantized floating parameters are stored. Loaded models compute in fp32 whatever the
// storage (docs/FORMAT.md, "The unquantized rest").
enum class RestDtype { kFloat16, kBFloat16, kFloat32 };
// "fp16"/"float16", "bf16"/"bfloat16", "fp32"/"float32"; throws vimvq::Error otherwise.
RestDtype parse_rest_dtype(const std::string& name);
const char* rest_dtype_name(RestDtype dtype);  // "float16", "bfloat16", "float32"
int rest_dtype_bytes(RestDtype dtype);

struct SizeBreakdown {
  int64_t file_bytes = 0, code_bytes = 0, codebook_bytes = 0, architecture_bytes = 0, metadata_bytes = 0;
};

struct PackedCheckpoint {
  nlohmann::json provenance;             // tool, bits, method, hyper-parameters, seed, timings...
  std::string architecture;              // TorchScript archive bytes, quantized weights emptied
  RestDtype rest = RestDtype::kFloat16;  // the dtype of the architecture's floating parameters
  std::vector<vq::QuantizedWeight> layers;
  // Set by read_packed: the file's version and what each part takes in it.
  uint16_t major = kMajorVersion, minor = kMinorVersion;
  SizeBreakdown stored;
};

// Empties the quantized weights of a copy of `model`, stores its other floating parameters and
// buffers as `rest`, and serialises it as the architecture. Throws vimvq::Error naming a parameter
// that `rest` cannot hold (a finite value beyond fp16's range).
std::string architecture_without(const torch::jit::Module& model,
                                 const std::vector<vq::QuantizedWeight>& layers,
                                 RestDtype rest = RestDtype::kFloat16);

// Atomic (temporary file, then rename). Returns what each part takes on disk. Each layer's
// codebook and code bytes must equal its size plan (vq::LayerPlan), or nothing is written.
SizeBreakdown write_packed(const std::string& path, const PackedCheckpoint& checkpoint);
// The bytes write_packed writes (`path` only names the file in messages).
std::string packed_bytes(const std::string& path, const PackedCheckpoint& checkpoint, SizeBreakdown* sizes);

// Throws vimvq::Error("<path>: <problem>") for anything malformed: bad magic, unknown major
// version, truncation, checksum mismatch, a layer's section that is not its own, inconsistent
// sizes or codes out of range.
PackedCheckpoint read_packed(const std::string& path);

bool is_packed_file(const std::string& path);

// Both loaders give fp32 floating parameters whatever the stored rest dtype.
// The architecture with every quantized weight rebuilt as codebook[codes] (fp16 values, fp32).
torch::jit::Module dequantize(const PackedCheckpoint& checkpoint, const c10::Device& device);

// The architecture as it runs compressed (docs/MODEL_CONTRACT.md, "Compressed linears"): each
// quantized layer whose linear module has the compressed members keeps its codes (bytes) and
// codebooks, and its weight stays the empty placeholder; a layer without them (an export before
// them) is dequantized. `compressed`: how many layers run compressed. Takes the checkpoint by value
// and frees each part as it moves into the model (move one in to hold the codes once).
torch::jit::Module compressed(PackedCheckpoint checkpoint, const c10::Device& device, int* compressed);

}  // namespace vimvq::format
