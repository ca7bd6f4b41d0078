// The convex-combination quantizer of one layer (docs/METHOD.md sections 4 and 5).
//
// Every sub-vector j is a convex combination of the n codewords of its hull H_j:
// w^_j = sum_i softmax(z_j)_i C[H_ji]. Trainable: the logits z and the codebook C. The hull
// moves towards the codewords the loss prefers (update_hull); sub-vectors are confirmed
// (hard-assigned) a part at a time, and a confirmed sub-vector uses C[code_j] exactly.
// State lives in tensors on the weight's device; memory is O(n_sub * n), never O(n_sub * k).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace vimvq::vq {

struct ConvexParams {
  int hull_size = 4;          // n: candidate codewords per sub-vector
  double logit_eps = 1e-8;    // z = -log(dist + eps) at initialisation
  int64_t chunk_rows = 8192;  // rows per distance block in hull searches
  bool fused_cpu = true;      // CPU: fused kernels for the soft sub-vectors and the first hull
};

enum class ConfirmOrder {
  kLargestRatio,   // docs/METHOD.md default: most decided sub-vectors first
  kSmallestError,  // smallest truncation error first
};

struct HullUpdateStats {
  int64_t replaced = 0;
  double max_move = 0;  // largest move of a soft point caused by a replacement
};

struct ConfirmStats {
  int64_t confirmed_now = 0;
  double truncation_error = 0;  // sum of weighted ||w^_j - C[code_j]||^2 over the newly confirmed
};

class ConvexQuantizer {
 public:
  // subvectors, importance: (n_sub, d) (importance undefined: unweighted); codebook (k, d).
  ConvexQuantizer(const at::Tensor& subvectors, const at::Tensor& importance, const at::Tensor& codebook,
                  const ConvexParams& params);

  // Trainable leaves (requires_grad set); hand them to the optimizer.
  at::Tensor& logits() { return logits_; }
  at::Tensor& codebook() { return codebook_; }

  at::Tensor ratios() const;             // (n_sub, n) softmax of the logits
  at::Tensor soft_subvectors() const;    // (n_sub, d), differentiable in logits and codebook
  at::Tensor hard_subvectors() const;    // C[codes()]
  at::Tensor ratio_regularizer() const;  // mean over unconfirmed j of sum_i r_ji (1 - r_ji)

  HullUpdateStats update_hull();
  ConfirmStats confirm_to_fraction(double fraction, ConfirmOrder order = ConfirmOrder::kLargestRatio);
  ConfirmStats confirm_above(double max_ratio_threshold);
  ConfirmStats confirm_all() { return confirm_to_fraction(1.0); }

  at::Tensor codes() const;  // confirmed codes; argmax of the ratios for the others
  const at::Tensor& hull() const { return hull_; }
  const at::Tensor& confirmed() const { return confirmed_; }
  int64_t num_subvectors() const { return hull_.size(0); }
  int64_t num_confirmed() const;

 private:
  at::Tensor point_errors(const at::Tensor& a, const at::Tensor& b) const;  // weighted, per row
  ConfirmStats confirm(const at::Tensor& rows);

  ConvexParams params_;
  at::Tensor importance_;  // (n_sub, d) or undefined
  at::Tensor codebook_;    // (k, d) leaf
  at::Tensor logits_;      // (n_sub, n) leaf
  at::Tensor hull_;        // (n_sub, n) int64
  at::Tensor confirmed_;   // (n_sub) bool
  at::Tensor codes_;       // (n_sub) int64, valid where confirmed
};

}  // namespace vimvq::vq
