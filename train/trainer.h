// segtrain's engine: trains a builtin architecture, optionally distilled
// from a frozen teacher, and evaluates networks the way the server runs
// them. Torch-free header; LibTorch stays inside train/*.cc.
#ifndef SEGSERVE_TRAIN_TRAINER_H_
#define SEGSERVE_TRAIN_TRAINER_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "datasets/confusion.h"
#include "datasets/dataset.h"
#include "model/preprocess.h"
#include "train/augment.h"

namespace segserve {

// A builtin network and its weights: what a model directory describes.
struct NetworkSpec {
  std::string architecture;  // A name of BuiltinArchitectureNames().
  int num_classes = 0;
  std::string weights;  // A state dict; empty: seeded initialisation.
  PreprocessOptions preprocess;
};

struct TrainerOptions {
  NetworkSpec student;
  int64_t steps = 1000;  // Optimizer steps.
  int batch_size = 8;
  int accumulation = 1;         // Batches per optimizer step.
  double learning_rate = 2e-3;  // Peak, after the warm-up.
  double weight_decay = 0.01;   // AdamW; not on biases and norms.
  int64_t warmup_steps = 100;   // Linear from 1% of the peak.
  double poly_power = 0.9;      // lr = peak * (1 - step / steps)^power.
  AugmentOptions augment;
  uint64_t seed = 0;  // Initialisation, sample order and augmentation.
  int threads = 2;    // LibTorch intra-op threads.
  // Channels-last weights and activations for the architectures that
  // prefer them (SGCPNet); the saved weights are the same either way.
  bool channels_last = true;
  // Keep the backbone's BatchNorm statistics frozen (EfficientFormerV2):
  // the official recipe when fine-tuning ImageNet-initialised weights.
  // From scratch they must update, so off by default.
  bool freeze_backbone_norm = false;
  // A student with the SSA classifier trains with its paper's losses (the
  // online multi-domain distillation, train/ssa_loss.h); false: only the
  // cross-entropy of its output (and any teacher's terms).
  bool ssa_losses = true;
  // A state dict whose backbone part (BuiltinNetwork::backbone_prefixes)
  // starts the student's backbone; the rest stays as initialised. Empty:
  // none. Applied after student.weights.
  std::string init_backbone;

  // Where the final weights go (a flat state dict the server loads).
  std::string output;
  // Every checkpoint_every steps (0: never), the weights and the trainer
  // state (optimizer, distiller, step) go to checkpoint_dir.
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0;
  // A checkpoint_dir of an earlier run with the same options: training
  // continues from its step and gives the same result.
  std::string resume;
  // Stop after this step (0: run to `steps`), as a time-boxed session
  // would; the schedule still spans `steps`. Writes the checkpoint (when
  // checkpoint_dir is set), not the output.
  int64_t stop_after_step = 0;

  // Distillation: teacher.architecture empty = none. The teacher's input
  // may differ in size from the student's: it sees the student's batch
  // resized by the ratio of the two, and its features and logits are
  // resized to the student's grid.
  NetworkSpec teacher;
  double pixel_relation_weight = 0;
  double class_relation_weight = 0;
  double logits_kl_weight = 0;
  double temperature = 1;

  int64_t log_every = 10;  // Steps between progress lines (non-TTY).
  // With each progress line, the gradient norm of every loss term on the
  // student and its cosine with the cross-entropy's (train/gradient_report.h;
  // one extra backward pass per term on those steps).
  bool report_gradients = false;
  bool progress_tty = false;  // Redraw one line with '\r'.
};

// Trains and writes options.output. Progress lines go to `log`.
absl::Status Train(const TrainerOptions& options,
                   const LabeledImageSource& data, std::ostream& log);

// Scores `spec` on images first..first+count-1 of `source`: each image is
// preprocessed as the server does, the logits resized to the input, the
// argmax mapped back to the image size and compared with its labels.
absl::StatusOr<ConfusionMatrix> Evaluate(const NetworkSpec& spec,
                                         const LabeledImageSource& source,
                                         int64_t first, int64_t count,
                                         int threads);

}  // namespace segserve

#endif  // SEGSERVE_TRAIN_TRAINER_H_
