// vimvq::vq_linear: every decode path against the scalar reference (random and odd shapes, ragged
// ranges, edge values), the reference against the packed format's dequantization, and the
// operator against a dense product of the decoded weight.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "vimvq/ops/vq_linear.h"
#include "vimvq/vq/quantized_weight.h"

namespace vimvq::ops {
namespace {

struct Case {
  int64_t rows, cols, k;
  int d;
  int64_t groups;
};

struct Operands {
  at::Tensor codes, codebook;
  VqLayout layout;
};

Operands make(const Case& c, uint64_t seed) {
  Operands o;
  o.layout.rows = c.rows;
  o.layout.cols = c.cols;
  o.layout.k = c.k;
  o.layout.d = c.d;
  o.layout.groups = c.groups;
  at::manual_seed(seed);
  o.codes = at::randint(0, c.k, {o.layout.n_sub()}, at::kLong).to(at::kByte);
  o.codebook = at::randn({c.groups * c.k, c.d});
  float* book = o.codebook.data_ptr<float>();  // edge values the copies must keep bit for bit
  book[0] = -0.0f;
  if (o.codebook.numel() > 3) {
    book[1] = std::numeric_limits<float>::infinity();
    book[2] = std::numeric_limits<float>::denorm_min();
    book[3] = -std::numeric_limits<float>::max();
  }
  return o;
}

std::vector<DecodeIsa> paths() {
  std::vector<DecodeIsa> out;
  for (DecodeIsa isa : {DecodeIsa::kScalar, DecodeIsa::kAvx2, DecodeIsa::kAvx512})
    if (cpu_runs(isa)) out.push_back(isa);
  return out;
}

const std::vector<Case> kCases = {
    {64, 32, 256, 4, 1}, {13, 11, 256, 4, 1}, {34, 64, 128, 4, 1}, {7, 12, 32, 8, 1},   {96, 192, 256, 8, 1},
    {5, 9, 64, 2, 1},    {40, 33, 64, 2, 1},  {8, 24, 4, 1, 8},    {17, 31, 16, 1, 17}, {6, 50, 8, 1, 6},
    {9, 20, 200, 1, 1},  {3, 7, 5, 3, 1},     {1, 1, 1, 4, 1},     {2, 3, 2, 8, 1},
};

TEST(VqDecode, EveryPathGivesTheReferenceBitsOnEveryRange) {
  std::mt19937_64 rng(7);
  for (const Case& c : kCases) {
    const Operands o = make(c, rng());
    const int64_t numel = c.rows * c.cols;
    std::vector<float> want(numel), got(numel);
    decode_range(o.codes.data_ptr<uint8_t>(), o.codebook.data_ptr<float>(), o.layout, 0, numel, want.data(),
                 DecodeIsa::kScalar);
    for (DecodeIsa isa : paths()) {
      for (int trial = 0; trial < 20; ++trial) {
        int64_t b = trial == 0 ? 0 : static_cast<int64_t>(rng() % numel);
        int64_t e = trial == 0 ? numel : b + static_cast<int64_t>(rng() % (numel - b + 1));
        std::fill(got.begin(), got.end(), 12345.f);
        decode_range(o.codes.data_ptr<uint8_t>(), o.codebook.data_ptr<float>(), o.layout, b, e, got.data(),
                     isa);
        ASSERT_EQ(std::memcmp(got.data(), want.data() + b, sizeof(float) * (e - b)), 0)
            << isa_name(isa) << " rows " << c.rows << " cols " << c.cols << " k " << c.k << " d " << c.d
            << " groups " << c.groups << " range " << b << ".." << e;
        if (e < numel) {
          EXPECT_EQ(got[e - b], 12345.f) << "wrote past the range";
        }
      }
    }
  }
}

TEST(VqDecode, TheReferenceIsThePackedFormatsDequantization) {
  for (const Case& c : {Case{13, 11, 256, 4, 1}, Case{8, 24, 4, 1, 8}, Case{7, 12, 32, 8, 1}}) {
    Operands o = make(c, 3);
    o.codebook = o.codebook.to(at::kHalf).to(at::kFloat);  // what a packed file holds
    vq::QuantizedWeight q;
    q.shape = {c.rows, c.cols};
    q.k = c.k;
    q.d = c.d;
    q.groups = c.groups;
    q.codebook = o.codebook;
    q.codes = vq::code_bytes(o.codes);
    at::Tensor decoded = at::empty({c.rows, c.cols});
    decode_range(o.codes.data_ptr<uint8_t>(), o.codebook.data_ptr<float>(), o.layout, 0, c.rows * c.cols,
                 decoded.data_ptr<float>(), DecodeIsa::kScalar);
    EXPECT_TRUE(at::equal(decoded.nan_to_num(0, 0, 0), q.dequantize().nan_to_num(0, 0, 0)));
  }
}

double max_relative_error(const at::Tensor& got, const at::Tensor& want) {
  return ((got - want).abs().max() / want.abs().max().clamp_min(1e-30)).item<double>();
}

TEST(VqLinear, EqualsTheDenseProductOfTheDecodedWeightOnEveryPath) {
  // 600 rows of 1024: two panels (2 MiB: 512 rows, then 88) for a small input, one for an input of
  // 640 rows (2.5 MiB); 64 x 32 and 13 x 11: one, odd.
  for (const Case& c :
       {Case{600, 1024, 256, 4, 1}, Case{64, 32, 256, 4, 1}, Case{13, 11, 64, 2, 1}, Case{24, 8, 4, 1, 24}}) {
    Operands o = make(c, 11);
    o.codebook = at::randn_like(o.codebook);  // finite values: the product is compared, not the copy
    at::Tensor dense = at::empty({c.rows, c.cols});
    decode_range(o.codes.data_ptr<uint8_t>(), o.codebook.data_ptr<float>(), o.layout, 0, c.rows * c.cols,
                 dense.data_ptr<float>(), DecodeIsa::kScalar);
    const at::Tensor bias = at::randn({c.rows});
    // The last two inputs are views: the second half of wider rows (as x_proj takes half of the
    // conv's channels, read in place) and a transposed matrix (copied first).
    for (const at::Tensor& x : {at::randn({3, 5, c.cols}), at::randn({1, c.cols}), at::randn({640, c.cols}),
                                at::randn({2, 7, 2 * c.cols}).chunk(2, -1)[1], at::randn({c.cols, 6}).t()}) {
      const at::Tensor want = at::linear(x, dense, bias);
      for (DecodeIsa isa : paths()) {
        const at::Tensor got = vq_linear_cpu_with(x, o.codes, o.codebook, o.layout, bias, isa);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_LT(max_relative_error(got, want), 1e-5)
            << isa_name(isa) << " rows " << c.rows << " x " << x.sizes();
      }
    }
    // Through the registered operator, as a TorchScript model calls it.
    static const auto op =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("vimvq::vq_linear", "")
            .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                              int64_t, int64_t, const c10::optional<at::Tensor>&)>();
    const at::Tensor x = at::randn({2, c.cols});
    const at::Tensor got = op.call(x, o.codes, o.codebook, c.rows, c.cols, c.d, c.groups, c10::nullopt);
    EXPECT_LT(max_relative_error(got, at::linear(x, dense)), 1e-5);
  }
}

TEST(VqLinear, OperandsThatDoNotFitAreRefused) {
  Operands o = make({8, 8, 16, 4, 1}, 5);
  EXPECT_NO_THROW(check_vq_operands(o.codes, o.codebook, o.layout));
  o.codes[3] = 16;  // k = 16: code 16 does not exist
  EXPECT_THROW(check_vq_operands(o.codes, o.codebook, o.layout), c10::Error);
  EXPECT_THROW(check_vq_operands(o.codes.narrow(0, 0, 5).clone(), o.codebook, o.layout), c10::Error);
  EXPECT_THROW(check_vq_operands(o.codes.to(at::kLong), o.codebook, o.layout), c10::Error);
  VqLayout uneven = o.layout;
  uneven.groups = 3;  // 16 codes do not split into 3 groups
  EXPECT_THROW(check_vq_operands(o.codes, at::randn({48, 4}), uneven), c10::Error);
}

}  // namespace
}  // namespace vimvq::ops
