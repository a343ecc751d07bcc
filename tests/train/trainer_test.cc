#include "train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
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

TEST(TrainerTest, DistilsFromATeacherWithEveryTerm) {
  const fs::path dir = FreshTestDir("trainer");
  fs::create_directories(dir);
  // A teacher with seeded weights: enough to exercise every loss term.
  torch::manual_seed(3);
  absl::StatusOr<BuiltinNetwork> teacher = CreateBuiltinNetwork("cgrseg_t", 6);
  ASSERT_TRUE(teacher.ok());
  ASSERT_TRUE(SaveStateDict(ModuleState(*teacher->module),
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
  const auto scenes = MakeSceneSource(kTrainingSeedBase);
  std::ostringstream log;
  ASSERT_TRUE(Train(options, *scenes, log).ok()) << log.str();
  for (const char* term : {"pixel ", "class ", "kl "}) {
    EXPECT_NE(log.str().find(term), std::string::npos) << term << log.str();
  }
}

TEST(TrainerTest, DistillationRefusesAMismatchedTeacherInput) {
  const fs::path dir = FreshTestDir("trainer");
  TrainerOptions options = SmallOptions(dir);
  options.teacher = options.student;
  options.teacher.architecture = "cgrseg_t";
  options.teacher.weights = "unused.pt";
  options.teacher.preprocess.width = 128;
  const auto scenes = MakeSceneSource(kTrainingSeedBase);
  std::ostringstream log;
  const absl::Status status = Train(options, *scenes, log);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("same input size"), std::string::npos)
      << status;
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
