#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include "test_util.h"
#include "vimvq/format/load_model.h"
#include "vimvq/format/packed_checkpoint.h"
#include "vimvq/model/vim_model.h"
#include "vimvq/util/error.h"
#include "vimvq/vq/baselines.h"
#include "vimvq/vq/layout.h"

using namespace vimvq;

namespace {

// vim_micro quantized with plain k-means at 2 bits: every quantizable layer packed.
format::PackedCheckpoint micro_checkpoint() {
  auto model = model::VimModel::load((vimvq::test::data_dir() / "vim_micro.pt").string());
  std::map<std::string, at::Tensor> params;
  for (const auto& p : model.module().named_parameters(true)) params.emplace(p.name, p.value);
  format::PackedCheckpoint c;
  for (const auto& info : model.quantizable_layers()) {
    const auto shape = vq::vq_shape(2, info.numel);
    vq::KMeansParams kp;
    kp.k = shape.k;
    kp.iterations = 5;
    const auto r = vq::kmeans_quantize(params.at(info.name), at::Tensor(), shape.d, kp);
    vq::QuantizedWeight l;
    l.name = info.name;
    l.shape = info.shape;
    l.k = shape.k;
    l.d = shape.d;
    l.code_bits = shape.code_bits;
    l.method = vq::Method::kKmeans;
    l.codebook = r.codebook;
    l.codes = vq::code_bytes(r.codes);
    c.layers.push_back(std::move(l));
  }
  c.provenance = {{"tool", "vimvq"}, {"bits", 2}, {"method", "kmeans"}, {"seed", 1234}};
  c.architecture = format::architecture_without(model.module(), c.layers);
  return c;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string refusal(const std::string& path) {
  try {
    format::read_packed(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(PackedFormat, RoundTripIsBitExactAndSizesAreHonest) {
  vimvq::test::TempDir t;
  const auto c = micro_checkpoint();
  const auto path = (t.path() / "micro.vqpk").string();
  const auto sizes = format::write_packed(path, c);
  EXPECT_EQ(static_cast<int64_t>(std::filesystem::file_size(path)), sizes.file_bytes);
  int64_t code_bytes = 0;
  for (const auto& l : c.layers) code_bytes += (static_cast<int64_t>(l.codes.size()) * l.code_bits + 7) / 8;
  EXPECT_EQ(sizes.code_bytes, code_bytes);  // ceil(log2 k) bits per code, nothing more
  const auto back = format::read_packed(path);
  ASSERT_EQ(back.layers.size(), c.layers.size());
  for (size_t i = 0; i < c.layers.size(); ++i) {
    EXPECT_EQ(back.layers[i].codes, c.layers[i].codes);
    EXPECT_TRUE(at::equal(back.layers[i].codebook, c.layers[i].codebook.to(at::kHalf).to(at::kFloat)));
    EXPECT_EQ(back.layers[i].shape, c.layers[i].shape);
  }
  EXPECT_EQ(back.architecture, c.architecture);
  EXPECT_EQ(back.provenance, c.provenance);
  // Writing what was read gives the same bytes.
  const auto again = (t.path() / "again.vqpk").string();
  format::write_packed(again, back);
  EXPECT_EQ(slurp(path), slurp(again));
}

TEST(PackedFormat, LoadsAsAModelWithDequantizedWeights) {
  vimvq::test::TempDir t;
  const auto c = micro_checkpoint();
  const auto path = (t.path() / "micro.vqpk").string();
  format::write_packed(path, c);
  auto model = format::load_model(path);  // vimvq eval runs packed files directly
  std::map<std::string, at::Tensor> params;
  for (const auto& p : model.module().named_parameters(true)) params.emplace(p.name, p.value);
  for (const auto& l : c.layers) {
    const at::Tensor codes = at::tensor(l.codes, at::kByte).to(at::kLong);
    const at::Tensor want = l.codebook.to(at::kHalf)
                                .to(at::kFloat)
                                .index_select(0, codes)
                                .reshape({-1})
                                .slice(0, 0, params.at(l.name).numel())
                                .view(l.shape);
    EXPECT_TRUE(at::equal(params.at(l.name), want)) << l.name;
  }
  c10::InferenceMode guard;
  EXPECT_EQ(model.forward(at::zeros({1, 3, 32, 32})).size(1), 7);
}

TEST(PackedFormat, RefusesTruncatedCorruptAndFutureFiles) {
  vimvq::test::TempDir t;
  const auto path = (t.path() / "micro.vqpk").string();
  format::write_packed(path, micro_checkpoint());
  const std::string bytes = slurp(path);
  // Section boundaries: walk the section headers.
  std::vector<size_t> cuts = {0, 4, 8, 19, 20};
  for (size_t off = 20; off + 16 <= bytes.size();) {
    uint64_t len = 0;
    for (int i = 0; i < 8; ++i)
      len |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[off + 8 + i])) << (8 * i);
    cuts.insert(cuts.end(), {off + 1, off + 16, off + 16 + len / 2});
    off += 16 + len;
    cuts.push_back(off - 1);
  }
  std::mt19937_64 rng(5);
  for (int i = 0; i < 40; ++i) cuts.push_back(rng() % bytes.size());
  const auto cut_path = (t.path() / "cut.vqpk").string();
  for (size_t cut : cuts) {
    if (cut >= bytes.size()) continue;
    vimvq::test::write_file(cut_path, bytes.substr(0, cut));
    EXPECT_NE(refusal(cut_path).find("cut.vqpk: "), std::string::npos) << "cut at " << cut;
  }
  // Flipped bytes anywhere are caught by the checksums (or the header checks).
  const auto flip_path = (t.path() / "flip.vqpk").string();
  for (int i = 0; i < 40; ++i) {
    std::string corrupt = bytes;
    corrupt[rng() % corrupt.size()] ^= static_cast<char>(1 + rng() % 255);
    vimvq::test::write_file(flip_path, corrupt);
    EXPECT_NE(refusal(flip_path), "") << i;
  }
  // A huge declared length is refused before any allocation.
  std::string huge = bytes;
  for (int i = 0; i < 8; ++i) huge[20 + 8 + i] = static_cast<char>(0xFF);
  vimvq::test::write_file(flip_path, huge);
  EXPECT_NE(refusal(flip_path).find("truncated"), std::string::npos);
  // A newer major version is refused by name.
  std::string future = bytes;
  future[8] = 3;
  vimvq::test::write_file(flip_path, future);
  EXPECT_NE(refusal(flip_path).find("version 3"), std::string::npos);
}

// Writes the cross-language fixture for tests/python/test_packed_reader.py (CTest fixture).
TEST(PackedFormat, WriteCrossLanguageFixture) {
  const char* out = std::getenv("VIMVQ_PACKED_FIXTURE");
  if (out == nullptr) GTEST_SKIP() << "VIMVQ_PACKED_FIXTURE not set";
  std::filesystem::create_directories(std::filesystem::path(out).parent_path());
  const auto c = micro_checkpoint();
  format::write_packed(out, c);
  format::dequantize(format::read_packed(out), c10::Device("cpu")).save(std::string(out) + ".dequantized.pt");
}
