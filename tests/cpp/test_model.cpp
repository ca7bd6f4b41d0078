#include <gtest/gtest.h>
#include <torch/script.h>

#include "test_util.h"
#include "vimvq/model/vim_model.h"
#include "vimvq/util/error.h"

using namespace vimvq;

TEST(Model, ContractPiecesComposeToForward) {
  auto m = model::VimModel::load((vimvq::test::data_dir() / "vim_micro.pt").string());
  const auto& meta = m.metadata();
  EXPECT_EQ(meta.num_blocks, 3);
  EXPECT_EQ(meta.num_classes, 7);
  EXPECT_EQ(meta.preprocess.channels, 3);
  c10::InferenceMode guard;
  const at::Tensor x =
      at::randn({2, 3, meta.image_size, meta.image_size}, at::TensorOptions().dtype(at::kFloat));
  auto [hidden, residual] = m.embed(x);
  for (int b = 0; b < meta.num_blocks; ++b) std::tie(hidden, residual) = m.block(b, hidden, residual);
  EXPECT_TRUE(at::equal(m.head(hidden, residual), m.forward(x)));
}

TEST(Model, QuantizableLayersComeFromTheContract) {
  auto m = model::VimModel::load((vimvq::test::data_dir() / "vim_micro.pt").string());
  const auto layers = m.quantizable_layers();
  ASSERT_EQ(layers.size(), 3u * 6u);
  EXPECT_EQ(layers[0].name, "layers.0.mixer.in_proj.weight");
  EXPECT_EQ(layers[0].shape, (std::vector<int64_t>{128, 32}));
  EXPECT_EQ(layers.back().name, "layers.2.mixer.out_proj.weight");
}

TEST(Model, RefusesFilesThatAreNotContractModels) {
  vimvq::test::TempDir t;
  vimvq::test::write_file(t.path() / "junk.pt", "not a zip");
  try {
    model::VimModel::load((t.path() / "junk.pt").string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt: not a TorchScript model"), std::string::npos) << e.what();
  }
}
