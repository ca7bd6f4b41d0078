// The renderers read typed records: values, not key presence.
#include <gtest/gtest.h>

#include "vimvq/calib/records_json.h"
#include "vimvq/report/quantize_report.h"

using namespace vimvq;

namespace {

// The counts both records share: `agreeing` of `images` images of `data` agree, at mean KL `kl`.
void set_counts(report::AgreementCounts& c, const std::string& data, int64_t images, int64_t agreeing,
                double kl) {
  c.data = data;
  c.images = images;
  c.agreeing = agreeing;
  c.mean_kl = kl;
}

report::QuantizeReport sample() {
  report::QuantizeReport r;
  r.model = "m.pt";
  r.output = "m.vqpk";
  r.calibration_folder = "calib";
  r.calibration_images = 16;
  r.list_hash = "00ff";
  r.params.method = vq::Method::kVq4dit;
  r.params.bits = 2;
  r.params.seed = 7;
  calib::LayerRecord l;
  l.name = "layers.0.mixer.in_proj.weight";
  l.block = 0;
  l.shape = {32, 16};
  l.plan = vq::plan_layer(vq::Method::kVq4dit, 2, l.shape);  // 128 sub-vectors, k clamped to 32
  l.calibrated = true;
  l.weight_error = 0.0123;
  l.truncation_error = 0.5;
  r.layers = {l};
  calib::BlockRecord b;
  b.index = 0;
  b.loss_init = 2.0;
  b.loss_final = 0.25;
  b.seconds = 3.0;
  b.confirmed_fraction = 1;
  b.confirmations = {{5, 0.5, 1.0, 1.5, 0.25}};
  b.steps = 0;  // unset: the console row leaves the step count out
  b.epoch_losses = {1.5, 0.5};
  r.blocks = {b};
  r.size.parameters = 1000;
  r.size.quantized.add(l.plan);
  r.size.packed_bytes = 2000;
  report::AccuracyRecord a;
  set_counts(a, "test", 10, 9, 0.01);
  a.top1_correct = 8;
  a.fp_top1 = 90;
  a.fp_top5 = 99;
  a.top5 = 98;
  r.accuracy = a;
  r.calibration_seconds = 1.5;
  r.wall_seconds = 4;
  r.peak_memory_mb = 100;
  return r;
}

}  // namespace

TEST(QuantizeReport, JsonHasTheRecordsValues) {
  const auto j = report::to_json(sample());
  const auto& l = j["layers"][0];
  EXPECT_EQ(l["shape_text"], "32x16");
  EXPECT_EQ(l["k"], 32);
  EXPECT_EQ(l["d"], 4);
  EXPECT_EQ(l["code_bits"], 5);
  EXPECT_EQ(l["index_bits"], 128 * 5);
  EXPECT_EQ(l["codebook_bits"], 16 * 32 * 4);
  EXPECT_DOUBLE_EQ(l["weight_error"].get<double>(), 0.0123);
  EXPECT_DOUBLE_EQ(j["size"]["index_bpw"].get<double>(), 640.0 / 512);
  EXPECT_DOUBLE_EQ(j["size"]["effective_bpw"].get<double>(), (640.0 + 2048) / 512);
  EXPECT_DOUBLE_EQ(j["size"]["file_bits_per_parameter"].get<double>(), 16.0);
  EXPECT_EQ(j["size"]["fp32_bytes"], 4000);
  EXPECT_EQ(j["blocks"][0]["confirmations"][0]["step"], 5);
  EXPECT_EQ(j["blocks"][0]["epoch_losses"], nlohmann::json({1.5, 0.5}));
  // The resume file reads the block records back from this JSON.
  const calib::BlockRecord back = calib::block_record_from_json(j["blocks"][0]);
  EXPECT_EQ(back.epoch_losses, sample().blocks[0].epoch_losses);
  EXPECT_EQ(back.confirmations.size(), 1u);
  EXPECT_DOUBLE_EQ(j["blocks"][0]["confirmations"][0]["loss_after"].get<double>(), 1.5);
  EXPECT_EQ(j["params"]["method"], "vq4dit");
  EXPECT_DOUBLE_EQ(j["accuracy"]["quantized"]["top1"].get<double>(), 80);
  // 8 of 10 right: Wilson's 95 % interval is [49.02, 94.33] %.
  EXPECT_NEAR(j["accuracy"]["quantized"]["top1_interval95"][0].get<double>(), 49.016, 1e-3);
  EXPECT_NEAR(j["accuracy"]["quantized"]["top1_interval95"][1].get<double>(), 94.332, 1e-3);
  EXPECT_NEAR(j["accuracy"]["top1_agreement_interval95"][0].get<double>(), 59.585, 1e-3);  // 9 of 10
  EXPECT_FALSE(j.contains("agreement"));
  EXPECT_EQ(j["calibration"]["list_hash_fnv1a64"], "00ff");
}

TEST(QuantizeReport, MarkdownRowsCarryTheValues) {
  const std::string md = report::to_markdown(sample());
  EXPECT_NE(md.find("- method: vq4dit, 2 bits, seed 7\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| layers.0.mixer.in_proj.weight | 32x16 | 32 | 4 | 1.250 | 4.000 | 0.0123 | 0.5 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| 0 | 2 | 0.25 | 0 | 3.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| quantized | 80.00 (95 % interval 49.02-94.33) | 98.00 |"), std::string::npos) << md;
  EXPECT_NE(
      md.find("top-1 agreement 90.00 % (95 % interval 59.58-98.21), mean KL 0.01000, on 10 images of test"),
      std::string::npos)
      << md;
  EXPECT_NE(md.find("0.004 MB fp32 -> 0.002 MB packed (2.00x)"), std::string::npos) << md;
}

TEST(QuantizeReport, AgreementWithoutEvalData) {
  report::QuantizeReport r = sample();
  r.accuracy.reset();
  report::AgreementRecord a;
  set_counts(a, "calib", 200, 196, 0.00125);
  a.held_out = true;
  a.skipped = 2;
  r.agreement = a;
  const auto j = report::to_json(r);
  EXPECT_FALSE(j.contains("accuracy"));
  EXPECT_EQ(j["agreement"]["top1_agreeing"], 196);
  EXPECT_EQ(j["agreement"]["skipped"], 2);
  EXPECT_TRUE(j["agreement"]["held_out"].get<bool>());
  EXPECT_NEAR(j["agreement"]["top1_agreement_interval95"][0].get<double>(), 94.971, 1e-3);
  std::string md = report::to_markdown(r);
  EXPECT_NE(md.find("- against the original: top-1 agreement 98.00 % (95 % interval 94.97-99.22), mean KL "
                    "0.00125, on 200 images of calib that the calibration left out, 2 unreadable skipped\n"),
            std::string::npos)
      << md;
  r.agreement->held_out = false;
  r.agreement->skipped = 0;
  md = report::to_markdown(r);
  EXPECT_NE(md.find("on the 200 calibration images themselves (in-sample, so optimistic"), std::string::npos)
      << md;
}

TEST(QuantizeReport, ConsoleRowsOfADryRunArePrefixesOfTheRealOnes) {
  auto l = sample().layers[0];
  const std::string real = report::layer_row(l, 24);
  l.calibrated = false;
  const std::string dry = report::layer_row(l, 24);
  EXPECT_EQ(dry.rfind("[block  1/24] layers.0.mixer.in_proj.weight", 0), 0u) << dry;
  EXPECT_NE(dry.find("k=32   d=4 1.250+4.000 bpw"), std::string::npos) << dry;
  EXPECT_EQ(real, dry + "  w.err 0.0123  trunc 0.5");
  EXPECT_EQ(report::block_row(sample().blocks[0], 24, vq::Method::kVq4dit),
            "[block  1/24] block loss 2 -> 0.25 (vq4dit), 3.0 s");
  auto b = sample().blocks[0];
  b.steps = 212;  // early stopping makes the count vary by block
  EXPECT_EQ(report::block_row(b, 24, vq::Method::kVimvq),
            "[block  1/24] block loss 2 -> 0.25 (vimvq), 212 steps, 3.0 s");
}

TEST(QuantizeReport, SizeFooterSumsThePlans) {
  vq::SizeTotals t;
  t.add(vq::plan_layer(vq::Method::kRtn, 2, {4, 8}));  // 32 weights: 64 index bits, 4 rows x 4 levels fp16
  EXPECT_EQ(t.index_bits, 64);
  EXPECT_EQ(t.codebook_bits, 16 * 4 * 4);
  // The 8 other parameters at 4 bytes: (64 + 256 + 256) bits over 40; at 2 bytes: (64 + 256 + 128).
  EXPECT_EQ(report::size_footer(t, 1, 40, 4),
            "1 layers, 32 weights: 2.000 index + 8.000 codebook = 10.000 bits per weight; model 0.000 MB "
            "with the rest at 32 bits (fp32 0.000 MB), 14.400 bits per parameter");
  EXPECT_EQ(report::size_footer(t, 1, 40, 2),
            "1 layers, 32 weights: 2.000 index + 8.000 codebook = 10.000 bits per weight; model 0.000 MB "
            "with the rest at 16 bits (fp32 0.000 MB), 11.200 bits per parameter");
}
