#include "vimvq/vq/packing.h"

#include <string>

#include "vimvq/util/error.h"

namespace vimvq::vq {
namespace {

void check_bits(int bits) {
  if (bits < 1 || bits > 16) throw Error("code width " + std::to_string(bits) + " bits is outside 1..16");
}

}  // namespace

size_t packed_size(size_t count, int bits) {
  check_bits(bits);
  return (count * static_cast<size_t>(bits) + 7) / 8;
}

std::vector<uint8_t> pack_codes(const std::vector<int64_t>& codes, int bits) {
  std::vector<uint8_t> out(packed_size(codes.size(), bits), 0);
  const int64_t limit = int64_t{1} << bits;
  uint64_t bit = 0;
  for (size_t i = 0; i < codes.size(); ++i, bit += bits) {
    const int64_t c = codes[i];
    if (c < 0 || c >= limit) {
      throw Error("code " + std::to_string(c) + " at " + std::to_string(i) + " does not fit in " +
                  std::to_string(bits) + " bits");
    }
    // A code spans at most 3 bytes (16 bits starting at any bit offset).
    const uint32_t shifted = static_cast<uint32_t>(c) << (bit % 8);
    for (size_t b = bit / 8, s = 0; s < 24 && b < out.size(); ++b, s += 8)
      out[b] |= static_cast<uint8_t>(shifted >> s);
  }
  return out;
}

std::vector<int64_t> unpack_codes(const uint8_t* data, size_t size, size_t count, int bits) {
  if (size < packed_size(count, bits)) {
    throw Error("packed codes: " + std::to_string(size) + " bytes for " + std::to_string(count) +
                " codes of " + std::to_string(bits) + " bits");
  }
  std::vector<int64_t> codes(count);
  const uint32_t mask = (uint32_t{1} << bits) - 1;
  uint64_t bit = 0;
  for (size_t i = 0; i < count; ++i, bit += bits) {
    uint32_t word = 0;
    for (size_t b = bit / 8, s = 0; s < 24 && b < size; ++b, s += 8)
      word |= static_cast<uint32_t>(data[b]) << s;
    codes[i] = (word >> (bit % 8)) & mask;
  }
  return codes;
}

}  // namespace vimvq::vq
