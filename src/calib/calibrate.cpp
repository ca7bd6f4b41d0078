#include "vimvq/calib/calibrate.h"

#include <c10/core/GradMode.h>
#include <fnmatch.h>
#include <torch/optim/adam.h>
#include <torch/script.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>

#include "vimvq/util/error.h"
#include "vimvq/vq/baselines.h"
#include "vimvq/vq/convex_quantizer.h"
#include "vimvq/vq/kmeans.h"
#include "vimvq/vq/layout.h"
#include "vimvq/vq/subvectors.h"

namespace vimvq::calib {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kForwardBatch = 64;  // rows per no-grad forward when advancing the chains

struct Chain {
  at::Tensor hidden, residual;
};

// A parameter slot inside a TorchScript block, addressed by its dotted local name.
struct Slot {
  torch::jit::Module owner;
  std::string leaf;
  void set(const at::Tensor& value) { owner.register_parameter(leaf, value, /*is_buffer=*/false); }
};

Slot find_slot(torch::jit::Module block, const std::string& local) {
  size_t start = 0, dot;
  while ((dot = local.find('.', start)) != std::string::npos) {
    block = block.attr(local.substr(start, dot - start)).toModule();
    start = dot + 1;
  }
  return {block, local.substr(start)};
}

bool matches(const std::string& name, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) {
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0 || name.find(p) != std::string::npos) return true;
  }
  return false;
}

Chain run_block(model::VimModel& m, int b, const Chain& in) {
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> hs, rs;
  for (int64_t s = 0; s < in.hidden.size(0); s += kForwardBatch) {
    const int64_t e = std::min(in.hidden.size(0), s + kForwardBatch);
    auto [h, r] = m.block(b, in.hidden.slice(0, s, e), in.residual.slice(0, s, e));
    hs.push_back(h);
    rs.push_back(r);
  }
  return {at::cat(hs), at::cat(rs)};
}

double block_loss(model::VimModel& m, int b, const Chain& in, const at::Tensor& target, int64_t rows) {
  c10::NoGradGuard no_grad;
  double sum = 0;
  int64_t count = 0;
  for (int64_t s = 0; s < rows; s += kForwardBatch) {
    const int64_t e = std::min(rows, s + kForwardBatch);
    const at::Tensor h = m.block(b, in.hidden.slice(0, s, e), in.residual.slice(0, s, e)).first;
    sum += (h - target.slice(0, s, e)).square().sum().item<double>();
    count += h.numel();
  }
  return sum / count;
}

// One selected layer of the block being calibrated.
struct Job {
  model::LayerInfo info;
  Slot slot;
  at::Tensor weight;      // original, fp32
  at::Tensor importance;  // (n_sub, d) or undefined
  vq::VqShape shape;
  std::unique_ptr<vq::ConvexQuantizer> quantizer;  // vimvq / vq4dit
  format::QuantizedLayer packed;
  double truncation = 0;
  bool hardened = false;  // vq4dit: the layer crossed its hardening fraction
};

at::Tensor fp16_round(const at::Tensor& t) { return t.detach().to(at::kHalf).to(at::kFloat); }

// Packs the current state of a job and sets its hard weight (what the packed file will hold).
void finalize_job(Job& job, const CalibrationParams& p) {
  auto& l = job.packed;
  l.name = job.info.name;
  l.shape = job.info.shape;
  l.method = p.method;
  if (p.method == "rtn") {
    const auto r = vq::rtn_codes(job.weight, p.bits);
    l.groups = job.weight.size(0);
    l.k = int64_t{1} << p.bits;
    l.d = 1;
    l.code_bits = p.bits;
    l.codebook = fp16_round(r.levels.reshape({-1, 1}));
    l.codes.assign(r.codes.data_ptr<int64_t>(), r.codes.data_ptr<int64_t>() + r.codes.numel());
  } else {
    l.groups = 1;
    l.k = job.shape.k;
    l.d = job.shape.d;
    l.code_bits = job.shape.code_bits;
    l.codebook = fp16_round(job.quantizer->codebook());
    const at::Tensor codes = job.quantizer->codes().to(at::kCPU).contiguous();
    l.codes.assign(codes.data_ptr<int64_t>(), codes.data_ptr<int64_t>() + codes.numel());
  }
  l.codebook = l.codebook.to(at::kCPU);
  job.slot.set(format::dequantize_layer(l).to(job.weight.device()));
}

vq::ConfirmOrder order_of(const CalibrationParams& p) {
  return p.confirm_order == "error" ? vq::ConfirmOrder::kSmallestError : vq::ConfirmOrder::kLargestRatio;
}

}  // namespace

std::vector<model::LayerInfo> select_layers(const model::VimModel& model, const CalibrationParams& p) {
  std::vector<model::LayerInfo> selected;
  for (auto& l : model.quantizable_layers()) {
    if (!p.include.empty() && !matches(l.name, p.include)) continue;
    if (matches(l.name, p.exclude)) continue;
    selected.push_back(l);
  }
  return selected;
}

int64_t planned_steps(const CalibrationParams& p, int blocks_with_layers) {
  const bool trains = p.method == "vimvq" || p.method == "vq4dit";
  return trains ? static_cast<int64_t>(p.iterations) * blocks_with_layers : 0;
}

CalibrationResult quantize_model(model::VimModel& m, const at::Tensor& images, const CalibrationParams& p,
                                 const Callbacks& cb) {
  validate(p);
  const auto t_run = Clock::now();
  const auto selected = select_layers(m, p);
  if (selected.empty()) throw Error("no quantizable layer matches the --include / --exclude patterns");
  for (at::Tensor param : m.module().parameters(true)) param.requires_grad_(false);
  const int64_t n_images = images.size(0);
  const int64_t loss_rows = std::min<int64_t>(n_images, 64);  // fixed subset for confirmation-time losses
  Chain fp, q;
  {
    c10::NoGradGuard no_grad;
    std::vector<at::Tensor> hs, rs;
    for (int64_t s = 0; s < n_images; s += kForwardBatch) {
      auto [h, r] = m.embed(images.slice(0, s, std::min(n_images, s + kForwardBatch)));
      hs.push_back(h);
      rs.push_back(r);
    }
    fp = {at::cat(hs), at::cat(rs)};
    q = fp;
  }
  CalibrationResult result;
  at::Generator gen = at::detail::createCPUGenerator(p.seed);
  const bool trains = p.method == "vimvq" || p.method == "vq4dit";
  const int n_blocks = m.metadata().num_blocks;
  for (int b = 0; b < n_blocks; ++b) {
    std::vector<model::LayerInfo> infos;
    for (const auto& l : selected) {
      if (l.block == b) infos.push_back(l);
    }
    const Chain target = run_block(m, b, fp);  // the full-precision block on the full-precision chain
    if (infos.empty()) {
      fp = target;
      q = run_block(m, b, q);
      continue;
    }
    const auto t_block = Clock::now();
    BlockReport br;
    br.index = b;
    // Per-channel importances h_c = mean x_c^2 of each layer's inputs on the quantized chain.
    std::map<std::string, at::Tensor> sum_sq;
    int64_t rows_seen = 0;
    if (p.importance == "diag" && p.method != "rtn") {
      c10::NoGradGuard no_grad;
      for (int64_t s = 0; s < n_images; s += kForwardBatch) {
        const int64_t e = std::min(n_images, s + kForwardBatch);
        for (auto& [name, x] : m.layer_inputs(b, q.hidden.slice(0, s, e), q.residual.slice(0, s, e))) {
          const at::Tensor part = x.reshape({-1, x.size(-1)}).to(at::kDouble).square().sum(0);
          sum_sq[name] = sum_sq.count(name) ? sum_sq[name] + part : part;
          if (name == infos.front().local_name) rows_seen += x.numel() / x.size(-1);
        }
      }
    }
    std::map<std::string, at::Tensor> params;
    for (const auto& pr : m.block_module(b).named_parameters(true)) params.emplace(pr.name, pr.value);
    std::vector<Job> jobs;
    for (const auto& info : infos) {
      Job job;
      job.info = info;
      job.slot = find_slot(m.block_module(b), info.local_name);
      job.weight = params.at(info.local_name).detach().clone().to(at::kFloat);
      if (p.method != "rtn") {
        job.shape = vq::vq_shape(p.bits, info.numel);
        if (!sum_sq.empty()) {
          const at::Tensor h = (sum_sq.at(info.local_name) / std::max<int64_t>(rows_seen, 1)).to(at::kFloat);
          job.importance = vq::subvector_importance(h, info.shape, job.shape.d).to(job.weight.device());
        }
        vq::KMeansParams kp;
        kp.k = job.shape.k;
        kp.iterations = p.kmeans_iterations;
        kp.seed = p.seed + static_cast<uint64_t>(jobs.size()) * 7919 + static_cast<uint64_t>(b) * 104729;
        const at::Tensor sub = vq::to_subvectors(job.weight, job.shape.d);
        const auto km = vq::weighted_kmeans(sub, job.importance, kp);
        vq::ConvexParams cp;
        cp.hull_size = p.method == "vq4dit" ? 2 : p.hull_size;
        job.quantizer = std::make_unique<vq::ConvexQuantizer>(sub, job.importance, km.centroids, cp);
        if (!trains) job.quantizer->confirm_all();  // kmeans: nearest codeword (hull member 0 at init)
      }
      jobs.push_back(std::move(job));
    }
    // Initial hard weights: k-means nearest codewords (or rtn) -> the "before" block loss.
    auto set_hard = [&] {
      for (auto& job : jobs) {
        if (job.quantizer) {
          job.slot.set(vq::from_subvectors(job.quantizer->hard_subvectors().detach(), job.info.shape));
        } else {
          job.slot.set(vq::rtn_quantize(job.weight, p.bits));
        }
      }
    };
    set_hard();
    br.loss_init = block_loss(m, b, q, target.hidden, n_images);

    if (trains) {
      const bool vq4dit = p.method == "vq4dit";
      std::vector<at::Tensor> logits, books;
      for (auto& job : jobs) {
        logits.push_back(job.quantizer->logits());
        books.push_back(job.quantizer->codebook());
        if (vq4dit) job.quantizer->codebook().requires_grad_(false);  // frozen until the layer hardens
      }
      torch::optim::Adam opt_logits(logits, torch::optim::AdamOptions(p.lr_logits));
      torch::optim::Adam opt_books(books, torch::optim::AdamOptions(p.lr_codebook));
      const int finetune = static_cast<int>(std::lround(p.iterations * p.finetune_fraction));
      const int main_steps = p.iterations - finetune;
      const int stages = static_cast<int>(p.stage_fractions.size());
      const int stage_len = std::max(1, main_steps / stages);
      auto set_soft = [&] {
        for (auto& job : jobs)
          job.slot.set(vq::from_subvectors(job.quantizer->soft_subvectors(), job.info.shape));
      };
      auto confirmed_share = [&] {
        int64_t c = 0, n = 0;
        for (auto& job : jobs) c += job.quantizer->num_confirmed(), n += job.quantizer->num_subvectors();
        return static_cast<double>(c) / n;
      };
      auto confirm_with_report = [&](int step, const std::function<double(Job&)>& how) {
        Confirmation c;
        c.step = step;
        {
          c10::NoGradGuard g;
          set_soft();
          c.loss_before = block_loss(m, b, q, target.hidden, loss_rows);
        }
        for (auto& job : jobs) {
          const double t = how(job);
          job.truncation += t;
          c.truncation_error += t;
        }
        c10::NoGradGuard g;
        set_soft();
        c.loss_after = block_loss(m, b, q, target.hidden, loss_rows);
        c.fraction = confirmed_share();
        br.confirmations.push_back(c);
      };
      at::Tensor perm = at::randperm(n_images, gen).to(images.device());
      int64_t cursor = 0;
      for (int step = 0; step < p.iterations; ++step) {
        if (cursor + p.batch_size > n_images) {
          perm = at::randperm(n_images, gen).to(images.device());
          cursor = 0;
        }
        const at::Tensor idx = perm.slice(0, cursor, std::min(n_images, cursor + p.batch_size));
        cursor += p.batch_size;
        const bool in_main = step < main_steps;
        const int stage_step = step % stage_len;
        set_soft();
        const at::Tensor out =
            m.block(b, q.hidden.index_select(0, idx), q.residual.index_select(0, idx)).first;
        at::Tensor loss = (out - target.hidden.index_select(0, idx)).square().mean();
        if (in_main && p.regularizer > 0) {
          const double lambda = p.regularizer * br.loss_init * (stage_step + 1) / stage_len;
          for (auto& job : jobs) loss = loss + lambda * job.quantizer->ratio_regularizer();
        }
        opt_logits.zero_grad();
        opt_books.zero_grad();
        loss.backward();
        if (in_main) opt_logits.step();
        opt_books.step();
        if (cb.advance) cb.advance(1);
        const bool check = (step + 1) % p.hull_update_every == 0 && in_main;
        if (check && p.hull_update && !vq4dit) {
          for (auto& job : jobs) job.quantizer->update_hull();
        }
        if (vq4dit && check) {
          for (auto& job : jobs) {
            job.truncation += job.quantizer->confirm_above(p.confirm_threshold).truncation_error;
            const double share =
                static_cast<double>(job.quantizer->num_confirmed()) / job.quantizer->num_subvectors();
            if (!job.hardened && share >= p.vq4dit_harden_fraction) {
              job.truncation += job.quantizer->confirm_all().truncation_error;
              job.quantizer->codebook().requires_grad_(true);
              job.hardened = true;
            }
          }
        } else if (p.incremental && check) {
          for (auto& job : jobs)
            job.truncation += job.quantizer->confirm_above(p.confirm_threshold).truncation_error;
        }
        const bool stage_end = in_main && (step + 1) % stage_len == 0;
        if (!vq4dit && p.incremental && stage_end) {
          const int s = std::min(stages - 1, (step + 1) / stage_len - 1);
          confirm_with_report(step + 1, [&](Job& job) {
            return job.quantizer->confirm_to_fraction(p.stage_fractions[s], order_of(p)).truncation_error;
          });
        }
        if (step + 1 == main_steps && confirmed_share() < 1.0) {  // whatever is still free is hardened now
          confirm_with_report(step + 1, [&](Job& job) {
            job.quantizer->codebook().requires_grad_(true);
            return job.quantizer->confirm_all().truncation_error;
          });
        }
      }
    }
    {
      int64_t confirmed = 0, total = 0;
      for (auto& job : jobs) {
        if (!job.quantizer) continue;
        confirmed += job.quantizer->num_confirmed();
        total += job.quantizer->num_subvectors();
      }
      br.confirmed_fraction = total ? static_cast<double>(confirmed) / total : 1.0;
    }
    for (auto& job : jobs) finalize_job(job, p);
    br.loss_final = block_loss(m, b, q, target.hidden, n_images);
    br.seconds = std::chrono::duration<double>(Clock::now() - t_block).count();
    for (auto& job : jobs) {
      LayerReport lr;
      lr.name = job.info.name;
      lr.shape = job.info.shape;
      lr.k = job.packed.k;
      lr.groups = job.packed.groups;
      lr.d = job.packed.d;
      lr.code_bits = job.packed.code_bits;
      lr.index_bits = static_cast<int64_t>(job.packed.codes.size()) * job.packed.code_bits;
      lr.codebook_bits = 16 * job.packed.groups * job.packed.k * job.packed.d;
      const at::Tensor hard = format::dequantize_layer(job.packed);
      const at::Tensor w = job.weight.to(at::kCPU);
      lr.weight_error =
          (hard - w).square().sum().item<double>() / std::max(1e-30, w.square().sum().item<double>());
      lr.truncation_error = job.truncation;
      if (cb.log) {
        char line[512];
        std::snprintf(line, sizeof line,
                      "[block %2d/%d] %-34s %10s k=%-4lld d=%d %5.3f+%5.3f bpw  w.err %.4f  trunc %.3g",
                      b + 1, n_blocks, job.info.name.c_str(),
                      (std::to_string(job.info.shape[0]) + "x" + std::to_string(job.info.shape[1])).c_str(),
                      static_cast<long long>(lr.k), lr.d, static_cast<double>(lr.index_bits) / job.info.numel,
                      static_cast<double>(lr.codebook_bits) / job.info.numel, lr.weight_error,
                      lr.truncation_error);
        cb.log(line);
      }
      result.layer_reports.push_back(lr);
      result.layers.push_back(std::move(job.packed));
    }
    if (cb.log) {
      char line[256];
      std::snprintf(line, sizeof line, "[block %2d/%d] block loss %.4g -> %.4g (%s), %.1f s", b + 1, n_blocks,
                    br.loss_init, br.loss_final, p.method.c_str(), br.seconds);
      cb.log(line);
    }
    result.blocks.push_back(br);
    fp = target;
    q = run_block(m, b, q);  // the quantized chain moves on through the hard block
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - t_run).count();
  return result;
}

}  // namespace vimvq::calib
