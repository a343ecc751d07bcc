#include "train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <sstream>

#include "datasets/dataset.h"
#include "datasets/seeds.h"
#include "model/architectures.h"
#include "model/checkpoint.h"
#include "tests/server/test_files.h"

namespace segserve {
namespace {

namespace fs = std::filesystem;

// SGCPNet on 64x64 inputs: a few steps take well under a second.
TrainerOptions SmallOptions(const fs::path& dir) {
  TrainerOptions options;
  options.student.architecture = "sgcpnet";
  options.student.num_classes = 6;
  options.student.preprocess.width = 64;
  options.student.preprocess.height = 64;
  options.steps = 4;
  options.batch_size = 2;
  options.warmup_steps = 2;
  options.threads = 1;
  options.output = (dir / "final.pt").string();
  options.log_every = 1;
  return options;
}

StateDict ReadWeights(const fs::path& path) {
  absl::StatusOr<StateDict> state = ReadStateDict(path.string());
  EXPECT_TRUE(state.ok()) << state.status();
  return state.ok() ? *state : StateDict{};
}

void ExpectSameWeights(const StateDict& a, const StateDict& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_TRUE(torch::equal(a[i].second, b[i].second)) << a[i].first;
  }
}

TEST(TrainerTest, TrainsWritesLoadableWeightsAndReportsProgress) {
  const fs::path dir = FreshTestDir("trainer");
  const auto scenes = MakeSceneSource(kTrainingSeedBase);
  std::ostringstream log;
  ASSERT_TRUE(Train(SmallOptions(dir), *scenes, log).ok()) << log.str();
  EXPECT_NE(log.str().find("step 4/4"), std::string::npos) << log.str();
  EXPECT_NE(log.str().find("img/s"), std::string::npos);
  EXPECT_NE(log.str().find("ETA"), std::string::npos);

  // The weights load strictly into a fresh network and differ from its
  // initialisation: training changed them.
  absl::StatusOr<BuiltinNetwork> fresh = CreateBuiltinNetwork("sgcpnet", 6);
  ASSERT_TRUE(fresh.ok());
  const StateDict trained = ReadWeights(dir / "final.pt");
  ASSERT_TRUE(LoadStateDict(trained, "final.pt", fresh->module.get()).ok());
  torch::manual_seed(0);
  absl::StatusOr<BuiltinNetwork> initial = CreateBuiltinNetwork("sgcpnet", 6);
  ASSERT_TRUE(initial.ok());
  const StateDict start = ModuleState(*initial->module);
  bool changed = false;
  for (size_t i = 0; i < start.size(); ++i) {
    if (start[i].second.is_floating_point() &&
        !torch::equal(start[i].second, trained[i].second)) {
      changed = true;
    }
  }
  EXPECT_TRUE(changed);
}

TEST(TrainerTest, TrainsTheCgrSegArchitecturesToo) {
  for (const char* architecture : {"cgrseg_t", "cgrseg_t_ssa"}) {
    const fs::path dir = FreshTestDir("trainer") / architecture;
    TrainerOptions options = SmallOptions(dir);
    options.student.architecture = architecture;
    options.steps = 1;
    const auto scenes = MakeSceneSource(kTrainingSeedBase);
    std::ostringstream log;
    ASSERT_TRUE(Train(options, *scenes, log).ok()) << architecture << log.str();
    EXPECT_TRUE(fs::exists(dir / "final.pt")) << architecture;
  }
}

// From scratch the backbone's BatchNorm statistics must learn: frozen at
// their initial values (mean 0, variance 1) nothing normalizes.
TEST(TrainerTest, BackboneNormStatisticsUpdateUnlessFrozen) {
  for (const bool frozen : {false, true}) {
    const fs::path dir = FreshTestDir("trainer") / (frozen ? "frozen" : "free");
    TrainerOptions options = SmallOptions(dir);
    options.student.architecture = "cgrseg_t";
    options.steps = 1;
    options.freeze_backbone_norm = frozen;
    const auto scenes = MakeSceneSource(kTrainingSeedBase);
    std::ostringstream log;
    ASSERT_TRUE(Train(options, *scenes, log).ok()) << log.str();
    int statistics = 0;
    int at_initial_values = 0;
    for (const auto& [name, tensor] : ReadWeights(dir / "final.pt")) {
      if (name.rfind("backbone.", 0) != 0 ||
          name.find("running_var") == std::string::npos) {
        continue;
      }
      ++statistics;
      at_initial_values += torch::equal(tensor, torch::ones_like(tensor));
    }
    ASSERT_GT(statistics, 0);
    EXPECT_EQ(at_initial_values, frozen ? statistics : 0)
        << "frozen " << frozen;
  }
}

TEST(TrainerTest, ResumingGivesTheSameWeightsAsAnUninterruptedRun) {
  const fs::path dir = FreshTestDir("trainer");
  const auto scenes = MakeSceneSource(kTrainingSeedBase);
  std::ostringstream log;
  ASSERT_TRUE(Train(SmallOptions(dir / "whole"), *scenes, log).ok())
      << log.str();

  TrainerOptions interrupted = SmallOptions(dir / "interrupted");
  interrupted.checkpoint_dir = (dir / "checkpoint").string();
  interrupted.checkpoint_every = 2;
  interrupted.stop_after_step = 2;
  ASSERT_TRUE(Train(interrupted, *scenes, log).ok()) << log.str();
  EXPECT_FALSE(fs::exists(dir / "interrupted" / "final.pt"))
      << "a stopped run writes only its checkpoint";

  TrainerOptions resumed = SmallOptions(dir / "resumed");
  resumed.resume = interrupted.checkpoint_dir;
  ASSERT_TRUE(Train(resumed, *scenes, log).ok()) << log.str();
  EXPECT_NE(log.str().find("resumed at step 2"), std::string::npos)
      << log.str();
  ExpectSameWeights(ReadWeights(dir / "whole" / "final.pt"),
                    ReadWeights(dir / "resumed" / "final.pt"));
}

// SmallOptions distilled from a CGRSeg-T teacher with seeded weights
// (enough to exercise every loss term), every term on.
TrainerOptions DistillOptions(const fs::path& dir) {
  fs::create_directories(dir);
  torch::manual_seed(3);
  absl::StatusOr<BuiltinNetwork> teacher = CreateBuiltinNetwork("cgrseg_t", 6);
  if (!teacher.ok()) {
    ADD_FAILURE() << teacher.status();
    return SmallOptions(dir);
  }
  EXPECT_TRUE(SaveStateDict(ModuleState(*teacher->module),
                            (dir / "teacher.pt").string())
                  .ok());
  TrainerOptions options = SmallOptions(dir);
  options.teacher = options.student;
  options.teacher.architecture = "cgrseg_t";
  options.teacher.weights = (dir / "teacher.pt").string();
  options.pixel_relation_weight = 1;
  options.class_relation_weight = 1;
  options.logits_kl_weight = 1;
  options.steps = 2;
  return options;
}

TEST(TrainerTest, DistilsFromATeacherWithEveryTermAndReportsGradients) {
  TrainerOptions options = DistillOptions(FreshTestDir("trainer"));
  options.report_gradients = true;
  const auto scenes = MakeSceneSource(kTrainingSeedBase);
  std::ostringstream log;
  ASSERT_TRUE(Train(options, *scenes, log).ok()) << log.str();
  for (const char* term : {"pixel ", "class ", "kl ", "gradients: ce ",
                           ", pixel ", ", class ", ", kl "}) {
    EXPECT_NE(log.str().find(term), std::string::npos) << term << log.str();
  }
}

// A teacher at half the student's input sees the batch at its own scale;
// its features and logits are brought to the student's grid.
TEST(TrainerTest, DistilsFromATeacherOfAnotherInputSize) {
  const fs::path dir = FreshTestDir("trainer");
  const auto scenes = MakeSceneSource(kTrainingSeedBase);
  std::ostringstream log;
  const TrainerOptions same = DistillOptions(dir / "same");
  ASSERT_TRUE(Train(same, *scenes, log).ok()) << log.str();
  TrainerOptions half = DistillOptions(dir / "half");
  half.teacher.preprocess.width = 32;
  half.teacher.preprocess.height = 32;
  ASSERT_TRUE(Train(half, *scenes, log).ok()) << log.str();
  for (const char* term : {"pixel ", "class ", "kl "}) {
    EXPECT_NE(log.str().find(term), std::string::npos) << term << log.str();
  }
  // The same student, samples and teacher weights: only what the teacher
  // saw differs, and so do the weights it taught.
  const StateDict a = ReadWeights(dir / "same" / "final.pt");
  const StateDict b = ReadWeights(dir / "half" / "final.pt");
  ASSERT_EQ(a.size(), b.size());
  bool differ = false;
  for (size_t i = 0; i < a.size(); ++i) {
    differ = differ || !torch::equal(a[i].second, b[i].second);
  }
  EXPECT_TRUE(differ);
}

// With the SSA classifier, the paper's losses train the ground-truth
// branch too (gt_center_*); without them that branch never runs and keeps
// its initialisation.
TEST(TrainerTest, SsaLossesTrainTheGroundTruthBranch) {
  for (const bool ssa_losses : {true, false}) {
    const fs::path dir = FreshTestDir("trainer") / (ssa_losses ? "ssa" : "ce");
    TrainerOptions options = SmallOptions(dir);
    options.student.architecture = "cgrseg_t_ssa";
    options.steps = 2;
    options.ssa_losses = ssa_losses;
    const auto scenes = MakeSceneSource(kTrainingSeedBase);
    std::ostringstream log;
    ASSERT_TRUE(Train(options, *scenes, log).ok()) << log.str();
    EXPECT_EQ(log.str().find("ssa: coarse") != std::string::npos, ssa_losses)
        << log.str();
    torch::manual_seed(0);
    absl::StatusOr<BuiltinNetwork> initial =
        CreateBuiltinNetwork("cgrseg_t_ssa", 6);
    ASSERT_TRUE(initial.ok());
    const StateDict start = ModuleState(*initial->module);
    const StateDict trained = ReadWeights(dir / "final.pt");
    ASSERT_EQ(start.size(), trained.size());
    int gt_changed = 0;
    for (size_t i = 0; i < start.size(); ++i) {
      if (start[i].first.find(".gt_center_") != std::string::npos &&
          !torch::equal(start[i].second, trained[i].second)) {
        ++gt_changed;
      }
    }
    // gt_center_content_proj and gt_center_pos_proj (3 tensors each) and
    // gt_center_proj.
    EXPECT_EQ(gt_changed, ssa_losses ? 7 : 0) << "ssa_losses " << ssa_losses;
  }
}

// --init_backbone: the backbone from another network's weights (here a
// DPG CGRSeg-T under an SSA head), the head as seeded. One step at a tiny
// learning rate moves no weight by more than 1e-6.
TEST(TrainerTest, InitBackboneLoadsTheBackboneAndKeepsTheHeadAsSeeded) {
  const fs::path dir = FreshTestDir("trainer");
  fs::create_directories(dir);
  torch::manual_seed(5);
  absl::StatusOr<BuiltinNetwork> source = CreateBuiltinNetwork("cgrseg_t", 6);
  ASSERT_TRUE(source.ok());
  const StateDict source_state = ModuleState(*source->module);
  ASSERT_TRUE(SaveStateDict(source_state, (dir / "source.pt").string()).ok());
  TrainerOptions options = SmallOptions(dir);
  options.student.architecture = "cgrseg_t_ssa";
  options.init_backbone = (dir / "source.pt").string();
  options.steps = 1;
  options.learning_rate = 1e-9;
  options.ssa_losses = false;
  const auto scenes = MakeSceneSource(kTrainingSeedBase);
  std::ostringstream log;
  ASSERT_TRUE(Train(options, *scenes, log).ok()) << log.str();

  std::map<std::string, torch::Tensor> from_source(source_state.begin(),
                                                   source_state.end());
  torch::manual_seed(0);
  absl::StatusOr<BuiltinNetwork> seeded =
      CreateBuiltinNetwork("cgrseg_t_ssa", 6);
  ASSERT_TRUE(seeded.ok());
  std::map<std::string, torch::Tensor> from_seed;
  for (const auto& [name, tensor] : ModuleState(*seeded->module)) {
    from_seed[name] = tensor;
  }
  int backbone = 0, head = 0;
  for (const auto& [name, tensor] : ReadWeights(dir / "final.pt")) {
    if (tensor.dim() != 4) continue;  // Conv weights: no running statistics.
    const bool in_backbone = name.rfind("backbone.", 0) == 0;
    const torch::Tensor& expected =
        in_backbone ? from_source.at(name) : from_seed.at(name);
    EXPECT_TRUE(torch::allclose(tensor, expected, 0, 1e-6)) << name;
    ++(in_backbone ? backbone : head);
  }
  EXPECT_GT(backbone, 10);
  EXPECT_GT(head, 10);

  // Weights without the backbone's names are refused, saying which.
  absl::StatusOr<BuiltinNetwork> other = CreateBuiltinNetwork("sgcpnet", 6);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(
      SaveStateDict(ModuleState(*other->module), (dir / "other.pt").string())
          .ok());
  options.init_backbone = (dir / "other.pt").string();
  const absl::Status refused = Train(options, *scenes, log);
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(refused.message().find("--init_backbone"), std::string::npos)
      << refused;
}

TEST(TrainerTest, EvaluateScoresEveryImageAgainstItsLabels) {
  const fs::path dir = FreshTestDir("trainer");
  const auto scenes = MakeSceneSource(kTrainingSeedBase);
  std::ostringstream log;
  ASSERT_TRUE(Train(SmallOptions(dir), *scenes, log).ok());
  NetworkSpec spec = SmallOptions(dir).student;
  spec.weights = (dir / "final.pt").string();
  const auto held_out = MakeSceneSource(0);
  absl::StatusOr<ConfusionMatrix> scores =
      Evaluate(spec, *held_out, /*first=*/0, /*count=*/3, /*threads=*/1);
  ASSERT_TRUE(scores.ok()) << scores.status();
  int64_t pixels = 0;
  for (int t = 0; t < 6; ++t) {
    for (int p = 0; p < 6; ++p) pixels += scores->Count(t, p);
  }
  int64_t expected = 0;
  for (int i = 0; i < 3; ++i) {
    expected += static_cast<int64_t>(held_out->Get(i)->labels.total());
  }
  EXPECT_EQ(pixels, expected) << "every pixel of every image is scored";
}

}  // namespace
}  // namespace segserve
