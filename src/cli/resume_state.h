// The resume state of `vimvq quantize` (docs/RELIABILITY.md, "Resume"): after each calibrated block,
// `<output>.resume` holds the finished layers (as a packed file with no architecture), their
// records, the batch generator's state and a fingerprint of everything that decides the output.
// A run with --resume continues from it and writes the same bytes as an uninterrupted run.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "vimvq/calib/calibrate.h"

namespace vimvq::cli {

std::string resume_state_path(const std::string& output);

// FNV-1a over the model file's bytes, the calibration tensors (the end-to-end stage's extra images
// when defined), the parameters, the device, the thread count (reduction order) and this vimvq's
// version.
std::string run_fingerprint(const std::string& model_path, const at::Tensor& images, const at::Tensor& extra,
                            const calib::CalibrationParams& params, const std::string& device, int threads);

// `message_after`: what an interruption says once the state is in place (which blocks it keeps).
void write_resume_state(const std::string& path, const std::string& fingerprint, int next_block,
                        const calib::CalibrationResult& done, const at::Tensor& generator_state,
                        const std::string& message_after);
// Throws vimvq::Error naming the file when it is damaged or was made with other inputs.
calib::ResumePoint read_resume_state(const std::string& path, const std::string& fingerprint);

}  // namespace vimvq::cli
