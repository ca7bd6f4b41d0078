// Dense bit packing of codes: each code takes exactly `bits` bits (1..16), least significant bit
// first, in one continuous little-endian bit stream; the last byte is zero-padded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vimvq::vq {

size_t packed_size(size_t count, int bits);

// Throws vimvq::Error when bits is outside 1..16 or a code does not fit.
std::vector<uint8_t> pack_codes(const std::vector<int64_t>& codes, int bits);
std::vector<int64_t> unpack_codes(const uint8_t* data, size_t size, size_t count, int bits);

}  // namespace vimvq::vq
