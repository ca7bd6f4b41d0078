// A seeded mutation fuzzer for the readers of untrusted files: the packed checkpoint reader and
// the JPEG and PNG decoders. Each run mutates seed files (bit flips, interesting bytes, cuts,
// duplicated and deleted chunks, inserted bytes) and, for packed files, recomputes the header and
// section checksums (PNG: its chunk CRCs) half of the time, so that mutations reach the checks
// behind them. A reader may
// accept an input or throw vimvq::Error; anything else (another exception, a crash, a sanitizer
// report) is a failure, and the input is saved to fuzz-failure-<target>.bin.
//
//   vimvq_fuzz packed|jpeg|png (--runs N | --seconds S) [--seed N] SEED_FILE...
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "vimvq/data/image.h"
#include "vimvq/format/packed_checkpoint.h"
#include "vimvq/util/error.h"

namespace {

using Bytes = std::vector<uint8_t>;

std::string g_target;
Bytes g_current;  // the input being read, saved by the crash handler

void save_failure() {
  const std::string path = "fuzz-failure-" + g_target + ".bin";
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(g_current.data(), 1, g_current.size(), f);
    std::fclose(f);
  }
  std::fprintf(stderr, "vimvq_fuzz: failing input saved to %s\n", path.c_str());
}

void on_crash(int sig) {
  save_failure();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read seed " + path);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void put32(Bytes& b, size_t at, uint32_t v) { std::memcpy(&b[at], &v, 4); }

// Rewrites the header and section checksums wherever the structure still parses.
void fix_checksums(Bytes& b) {
  constexpr size_t kHeader = 20, kSection = 16;
  if (b.size() < kHeader) return;
  put32(b, 16, static_cast<uint32_t>(crc32(0, b.data(), 16)));
  size_t at = kHeader;
  while (b.size() - at >= kSection) {
    uint64_t length;
    std::memcpy(&length, &b[at + 8], 8);
    if (length > b.size() - at - kSection) return;
    put32(b, at + 4, static_cast<uint32_t>(crc32(0, &b[at + kSection], static_cast<uInt>(length))));
    at += kSection + length;
  }
}

// Rewrites each PNG chunk's CRC (big-endian, over type and data) wherever the chunks still parse,
// so that mutations get past libpng's checksums to its decoding.
void fix_png_crcs(Bytes& b) {
  size_t at = 8;  // the signature
  while (b.size() - at >= 12 && at < b.size()) {
    const uint32_t length =
        (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
    if (length > b.size() - at - 12) return;
    const uint32_t crc = static_cast<uint32_t>(crc32(0, &b[at + 4], length + 4));
    for (int i = 0; i < 4; ++i) b[at + 8 + length + i] = static_cast<uint8_t>(crc >> (24 - 8 * i));
    at += 12 + length;
  }
}

Bytes mutate(Bytes b, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n ? static_cast<size_t>(rng() % n) : 0; };
  const int count = 1 + static_cast<int>(rng() % 4);
  for (int m = 0; m < count; ++m) {
    switch (rng() % 6) {
      case 0:  // bit flip
        if (!b.empty()) b[pick(b.size())] ^= static_cast<uint8_t>(1u << (rng() % 8));
        break;
      case 1: {  // an interesting byte
        static const uint8_t interesting[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x10, 0x40};
        if (!b.empty()) b[pick(b.size())] = interesting[rng() % sizeof interesting];
        break;
      }
      case 2:  // cut
        b.resize(pick(b.size() + 1));
        break;
      case 3: {  // duplicate a chunk
        if (b.empty()) break;
        const size_t from = pick(b.size()), len = 1 + pick(std::min<size_t>(64, b.size() - from));
        const Bytes chunk(b.begin() + from, b.begin() + from + len);
        b.insert(b.begin() + pick(b.size() + 1), chunk.begin(), chunk.end());
        break;
      }
      case 4: {  // delete a chunk
        if (b.empty()) break;
        const size_t from = pick(b.size()), len = 1 + pick(std::min<size_t>(64, b.size() - from));
        b.erase(b.begin() + from, b.begin() + from + len);
        break;
      }
      default: {  // insert random bytes
        const size_t at = pick(b.size() + 1), len = 1 + rng() % 8;
        for (size_t i = 0; i < len; ++i) b.insert(b.begin() + at, static_cast<uint8_t>(rng()));
        break;
      }
    }
  }
  return b;
}

// One read; true when the reader accepted the input.
bool read_once(const std::string& target, const Bytes& input, const std::string& scratch) {
  if (target == "packed") {
    {
      std::ofstream out(scratch, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(input.data()), static_cast<std::streamsize>(input.size()));
    }
    vimvq::format::read_packed(scratch);
    return true;
  }
  const auto image = vimvq::data::decode_image(input, "fuzz-input");
  return image.width > 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr,
                 "usage: vimvq_fuzz packed|jpeg|png (--runs N | --seconds S) [--seed N] SEED_FILE...\n");
    return 2;
  }
  g_target = argv[1];
  if (g_target != "packed" && g_target != "jpeg" && g_target != "png") {
    std::fprintf(stderr, "vimvq_fuzz: unknown target '%s'\n", g_target.c_str());
    return 2;
  }
  long long runs = -1;
  double seconds = -1;
  uint64_t seed = 1;
  std::vector<Bytes> seeds;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::stoll(argv[++i]);
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::stod(argv[++i]);
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::stoull(argv[++i]);
    } else {
      seeds.push_back(read_file(a));
    }
  }
  if (seeds.empty() || (runs < 0 && seconds < 0)) {
    std::fprintf(stderr, "vimvq_fuzz: give seed files and --runs or --seconds\n");
    return 2;
  }
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, on_crash);
  const std::string scratch = "/tmp/vimvq_fuzz_" + std::to_string(::getpid()) + ".vqpk";
  std::mt19937_64 rng(seed);
  const auto start = std::chrono::steady_clock::now();
  long long done = 0, accepted = 0, refused = 0;
  for (;;) {
    if (runs >= 0 && done >= runs) break;
    if (seconds >= 0 && (done & 63) == 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= seconds)
      break;
    g_current = mutate(seeds[rng() % seeds.size()], rng);
    if (g_target == "packed" && rng() % 2) fix_checksums(g_current);
    if (g_target == "png" && rng() % 2) fix_png_crcs(g_current);
    try {
      accepted += read_once(g_target, g_current, scratch);
    } catch (const vimvq::Error&) {
      ++refused;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "vimvq_fuzz: %s reader threw something other than vimvq::Error: %s\n",
                   g_target.c_str(), e.what());
      save_failure();
      ::unlink(scratch.c_str());
      return 1;
    }
    ++done;
  }
  ::unlink(scratch.c_str());
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "vimvq_fuzz %s: %lld runs in %.1f s (%.0f/s), %lld accepted, %lld refused, seed %llu, no failure\n",
      g_target.c_str(), done, elapsed, done / elapsed, accepted, refused,
      static_cast<unsigned long long>(seed));
  return 0;
}
