#include "vimvq/vq/convex_quantizer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <tuple>

#include "vimvq/util/error.h"
#include "vimvq/vq/convex_combination.h"
#include "vimvq/vq/kmeans.h"

namespace vimvq::vq {

ConvexQuantizer::ConvexQuantizer(const at::Tensor& subvectors, const at::Tensor& importance,
                                 const at::Tensor& codebook, const ConvexParams& params)
    : params_(params), importance_(importance) {
  const int64_t n_sub = subvectors.size(0), k = codebook.size(0);
  const int n = static_cast<int>(std::min<int64_t>(params.hull_size, k));
  if (n < 1) throw Error("convex quantizer: hull size must be at least 1");
  const at::Tensor x = subvectors.detach().to(at::kFloat);
  const at::Tensor c = codebook.detach().to(at::kFloat);
  // The n nearest codewords under the weighted distance.
  at::Tensor dist;
  std::tie(dist, hull_) = nearest_n_centroids(x, importance_, c, n, params.chunk_rows, params.fused_cpu);
  logits_ = (-(dist + params.logit_eps).log()).detach().requires_grad_(true);
  codebook_ = c.clone().requires_grad_(true);
  confirmed_ = at::zeros({n_sub}, x.options().dtype(at::kBool));
  codes_ = at::zeros({n_sub}, x.options().dtype(at::kLong));
}

at::Tensor ConvexQuantizer::ratios() const { return at::softmax(logits_, 1); }

at::Tensor ConvexQuantizer::soft_subvectors() const {
  return convex_combination(logits_, codebook_, hull_, confirmed_, codes_, params_.fused_cpu);
}

at::Tensor ConvexQuantizer::hard_subvectors() const { return codebook_.index_select(0, codes()); }

at::Tensor ConvexQuantizer::ratio_regularizer() const {
  const at::Tensor r = ratios();
  const at::Tensor per_row = (r * (1 - r)).sum(1);
  const at::Tensor free = (~confirmed_).to(per_row.dtype());
  return (per_row * free).sum() / free.sum().clamp_min(1);
}

at::Tensor ConvexQuantizer::point_errors(const at::Tensor& a, const at::Tensor& b) const {
  const at::Tensor diff2 = (a - b).square();
  return (importance_.defined() ? diff2 * importance_ : diff2).sum(1);
}

HullUpdateStats ConvexQuantizer::update_hull() {
  c10::NoGradGuard no_grad;
  HullUpdateStats stats;
  const int64_t n_sub = hull_.size(0);
  const at::Tensor c = codebook_.detach();
  const at::Tensor soft = soft_subvectors().detach();
  const at::Tensor r = ratios().detach();
  for (int64_t s = 0; s < n_sub; s += params_.chunk_rows) {
    const int64_t e = std::min(n_sub, s + params_.chunk_rows);
    const at::Tensor w = importance_.defined() ? importance_.slice(0, s, e) : importance_;
    const at::Tensor points = soft.slice(0, s, e);
    at::Tensor d = weighted_sq_distances(points, w, c);
    const at::Tensor members = hull_.slice(0, s, e);
    const at::Tensor member_dist = d.gather(1, members);
    d.scatter_(1, members, std::numeric_limits<float>::infinity());  // candidates must be new
    auto [cand_dist, cand] = d.min(1);
    const at::Tensor weakest = r.slice(0, s, e).argmin(1, true);
    const at::Tensor weakest_dist = member_dist.gather(1, weakest).squeeze(1);
    const at::Tensor replace = (cand_dist < weakest_dist) & ~confirmed_.slice(0, s, e);
    if (!replace.any().item<bool>()) continue;
    const at::Tensor rows = replace.nonzero().squeeze(1);
    const at::Tensor cols = weakest.squeeze(1).index_select(0, rows);
    const at::Tensor old_code = members.index({rows, cols});
    const at::Tensor new_code = cand.index_select(0, rows);
    // A soft point moves by r_weakest * (C[new] - C[old]): the weakest member's share only.
    const at::Tensor move = (c.index_select(0, new_code) - c.index_select(0, old_code)).norm(2, 1) *
                            r.slice(0, s, e).index({rows, cols});
    stats.max_move = std::max(stats.max_move, move.max().item<double>());
    hull_.slice(0, s, e).index_put_({rows, cols}, new_code);  // the logit stays: inherited
    stats.replaced += rows.numel();
  }
  return stats;
}

ConfirmStats ConvexQuantizer::confirm(const at::Tensor& rows) {
  c10::NoGradGuard no_grad;
  ConfirmStats stats;
  if (rows.numel() == 0) return stats;
  const at::Tensor soft = soft_subvectors().detach().index_select(0, rows);
  const at::Tensor best = ratios().detach().index_select(0, rows).argmax(1, true);
  const at::Tensor code = hull_.index_select(0, rows).gather(1, best).squeeze(1);
  codes_.index_put_({rows}, code);
  confirmed_.index_put_({rows}, at::ones({rows.numel()}, confirmed_.options()));
  const at::Tensor hard = codebook_.detach().index_select(0, code);
  const at::Tensor diff2 = (soft - hard).square();
  const at::Tensor w = importance_.defined() ? importance_.index_select(0, rows) : importance_;
  stats.truncation_error = (w.defined() ? diff2 * w : diff2).sum().to(at::kDouble).item<double>();
  stats.confirmed_now = rows.numel();
  return stats;
}

ConfirmStats ConvexQuantizer::confirm_to_fraction(double fraction, ConfirmOrder order) {
  c10::NoGradGuard no_grad;
  const int64_t n_sub = hull_.size(0);
  const int64_t target = std::min<int64_t>(n_sub, static_cast<int64_t>(std::ceil(fraction * n_sub - 1e-9)));
  const int64_t need = target - num_confirmed();
  if (need <= 0) return {};
  // Score: higher = confirm first. Confirmed rows get -inf so they are never picked again.
  at::Tensor score;
  if (order == ConfirmOrder::kLargestRatio) {
    score = std::get<0>(ratios().detach().max(1));
  } else {
    const at::Tensor soft = soft_subvectors().detach();
    const at::Tensor best = ratios().detach().argmax(1, true);
    const at::Tensor hard = codebook_.detach().index_select(0, hull_.gather(1, best).squeeze(1));
    score = -point_errors(soft, hard);
  }
  score = score.masked_fill(confirmed_, -std::numeric_limits<float>::infinity());
  // Stable order (ties by index) keeps runs deterministic.
  const at::Tensor order_idx = std::get<1>(score.sort(/*stable=*/true, 0, /*descending=*/true));
  return confirm(order_idx.slice(0, 0, need));
}

ConfirmStats ConvexQuantizer::confirm_above(double threshold) {
  c10::NoGradGuard no_grad;
  const at::Tensor top = std::get<0>(ratios().detach().max(1));
  return confirm(((top > threshold) & ~confirmed_).nonzero().squeeze(1));
}

at::Tensor ConvexQuantizer::codes() const {
  c10::NoGradGuard no_grad;
  const at::Tensor best = ratios().detach().argmax(1, true);
  const at::Tensor argmax_codes = hull_.gather(1, best).squeeze(1);
  return at::where(confirmed_, codes_, argmax_codes);
}

int64_t ConvexQuantizer::num_confirmed() const { return confirmed_.sum().item<int64_t>(); }

}  // namespace vimvq::vq
