// The parameter table: round trips, docs, and a refusal for every out-of-range value.
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "test_util.h"
#include "vimvq/calib/params.h"
#include "vimvq/util/error.h"

using namespace vimvq;
using calib::CalibrationParams;

TEST(Params, DefaultsRoundTripThroughJson) {
  const CalibrationParams defaults;
  CalibrationParams p;
  p.bits = 1;
  p.method = vq::Method::kRtn;
  p.seed = 18446744073709551615ull;
  p.stage_fractions = {0.25, 1.0};
  p.include = {"*in_proj*"};
  calib::apply_json(p, calib::to_json(defaults), "test");
  EXPECT_EQ(calib::to_json(p), calib::to_json(defaults));
  EXPECT_EQ(p.method, vq::Method::kVimvq);
  EXPECT_EQ(p.seed, 1234u);

  CalibrationParams other;
  other.method = vq::Method::kVq4dit;
  other.confirm_order = vq::ConfirmOrder::kSmallestError;
  other.importance = calib::Importance::kNone;
  other.step_matmuls = calib::MatmulPrecision::kBf16;
  other.seed = 18446744073709551615ull;
  CalibrationParams back;
  calib::apply_json(back, calib::to_json(other), "test");
  EXPECT_EQ(calib::to_json(back), calib::to_json(other));
  EXPECT_EQ(back.confirm_order, vq::ConfirmOrder::kSmallestError);
  EXPECT_EQ(calib::to_json(other)["method"], "vq4dit");
  EXPECT_EQ(calib::to_json(other)["step_matmuls"], "bf16");
  EXPECT_EQ(back.step_matmuls, calib::MatmulPrecision::kBf16);
}

TEST(Params, EveryKeyIsListedWithItsDefaultAndADoc) {
  const std::string help = calib::params_help();
  const auto defaults = calib::to_json(CalibrationParams());
  for (const auto& [key, value] : defaults.items()) {
    const std::string head = "  " + key + " = " + value.dump() + "\n      ";
    const auto at = help.find(head);
    ASSERT_NE(at, std::string::npos) << key;
    const auto doc_end = help.find('\n', at + head.size());
    EXPECT_GT(doc_end - (at + head.size()), 20u) << key << ": doc too short";
  }
}

TEST(Params, EveryOutOfRangeValueIsRefusedNamingTheKey) {
  const std::multimap<std::string, std::string> bad = {{"target_bpw", "-1"},
                                                       {"target_bpw", "17"},
                                                       {"allocation_images", "0"},
                                                       {"allocation_labels", "0"},
                                                       {"e2e_steps", "-2"},
                                                       {"e2e_lr", "-0.1"},
                                                       {"e2e_by_blocks", "0"},
                                                       {"e2e_extra_images", "-1"},
                                                       {"e2e_rest", "1"},
                                                       {"bits", "0"},
                                                       {"bits", "5"},
                                                       {"bits", "2.5"},
                                                       {"method", "gptq"},
                                                       {"hull_update", "1"},
                                                       {"incremental", "\"yes\""},
                                                       {"importance", "hessian"},
                                                       {"kmeans_iterations", "0"},
                                                       {"kmeans_max_points_per_centroid", "-1"},
                                                       {"iterations", "4294967298"},
                                                       {"iterations", "-1"},
                                                       {"batch_size", "0"},
                                                       {"step_matmuls", "fp16"},
                                                       {"warmup_images", "-1"},
                                                       {"lr_logits", "-0.1"},
                                                       {"lr_logits", "1e999"},
                                                       {"lr_codebook", "11"},
                                                       {"hull_size", "0"},
                                                       {"hull_update_every", "0"},
                                                       {"stage_fractions", "[-0.5,1.0]"},
                                                       {"stage_fractions", "[0.5]"},
                                                       {"stage_fractions", "[0.9,0.5,1.0]"},
                                                       {"stage_fractions", "[]"},
                                                       {"confirm_threshold", "1.5"},
                                                       {"confirm_order", "random"},
                                                       {"regularizer", "-1"},
                                                       {"finetune_fraction", "1"},
                                                       {"early_stop_tolerance", "1"},
                                                       {"early_stop_tolerance", "-0.01"},
                                                       {"early_stop_patience", "0"},
                                                       {"vq4dit_harden_fraction", "0"},
                                                       {"include", "3"},
                                                       {"exclude", "[1]"},
                                                       {"seed", "-1"},
                                                       {"seed", "1.5"}};
  const auto defaults = calib::to_json(CalibrationParams());
  for (const auto& [key, value] : defaults.items())
    EXPECT_GT(bad.count(key), 0u) << key << " has no out-of-range case here";
  for (const auto& [key, value] : bad) {
    CalibrationParams p;
    const std::string before = calib::to_json(p).dump();
    const std::string message = test::refusal([&, k = key, v = value] { calib::set_param(p, k, v); });
    EXPECT_NE(message.find(key), std::string::npos) << key << "=" << value << ": '" << message << "'";
    EXPECT_EQ(calib::to_json(p).dump(), before) << key << "=" << value << " changed the parameters";
  }
}

TEST(Params, ValidateChecksFieldsSetDirectly) {
  CalibrationParams p;
  p.iterations = 0;
  EXPECT_NE(test::refusal([&] { calib::validate(p); }).find("iterations"), std::string::npos);
  p = CalibrationParams();
  p.stage_fractions = {0.5, 0.9};
  EXPECT_NE(test::refusal([&] { calib::validate(p); }).find("stage_fractions"), std::string::npos);
  EXPECT_EQ(test::refusal([] { calib::validate(CalibrationParams()); }), "");
}

TEST(Params, SetParsesTypesAndUnknownKeysAreNamed) {
  CalibrationParams p;
  calib::set_param(p, "method", "kmeans");
  calib::set_param(p, "iterations", "4294967");
  calib::set_param(p, "seed", "18446744073709551615");
  calib::set_param(p, "stage_fractions", "[0.5,1]");
  EXPECT_EQ(p.method, vq::Method::kKmeans);
  EXPECT_EQ(p.iterations, 4294967);
  EXPECT_EQ(p.seed, 18446744073709551615ull);
  EXPECT_EQ(p.stage_fractions, (std::vector<double>{0.5, 1.0}));
  EXPECT_NE(test::refusal([&] {
              calib::set_param(p, "learning_rate", "3");
            }).find("unknown parameter 'learning_rate'"),
            std::string::npos);
}

// The end-to-end stage is vimvq's by default; the baselines run as published unless asked.
TEST(Params, TheStageIsVimvqsDefaultAndAnExplicitCountWins) {
  CalibrationParams p;
  EXPECT_EQ(p.e2e_steps, -1);
  EXPECT_EQ(calib::e2e_steps_of(p), calib::kVimvqE2eSteps);
  for (const char* baseline : {"vq4dit", "kmeans", "rtn"}) {
    calib::set_param_json(p, "method", baseline, "test");
    EXPECT_EQ(calib::e2e_steps_of(p), 0) << baseline;
  }
  calib::set_param(p, "e2e_steps", "7");
  EXPECT_EQ(calib::e2e_steps_of(p), 7);
  calib::set_param_json(p, "method", "vimvq", "test");
  calib::set_param(p, "e2e_steps", "0");
  EXPECT_EQ(calib::e2e_steps_of(p), 0);
}
