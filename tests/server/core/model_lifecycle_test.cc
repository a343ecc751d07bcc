// The repository while models change: version policies, the three model
// control modes, and version switches under load. Fake models behind the
// ModelLoader seam; a real repository, pool and batcher, and real files.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "server/core/inference_core.h"
#include "server/core/model_repository.h"
#include "server/core/repository_poller.h"
#include "tests/server/fake_model.h"
#include "tests/server/test_files.h"

namespace segserve {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"pb(
  platform: BUILTIN
  architecture: "sgcpnet"
  num_classes: 4
  input {
    height: 32
    width: 32
    mean: [ 0, 0, 0 ]
    std: [ 1, 1, 1 ]
  }
  max_batch_size: 4
)pb";

// "2:READY 3:LOADING": each version's state, for assertions.
std::string States(const ModelStatus& status) {
  std::string out;
  for (const VersionStatus& version : status.versions) {
    if (!out.empty()) out += " ";
    out += absl::StrCat(version.version, ":", ModelStateName(version.state));
  }
  return out;
}

class ModelLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = FreshTestDir("model_lifecycle");
    WriteFile(root_ / "m" / "config.pbtxt", kConfig);
    WriteVersion("m", 1);
  }

  void TearDown() override {
    if (core_) {
      EXPECT_TRUE(core_->WaitForIdle(absl::Now() + absl::Seconds(10)));
    }
    core_.reset();
    repository_.reset();
  }

  void WriteVersion(const std::string& model, int version,
                    const std::string& weights = "weights") {
    WriteFile(root_ / model / std::to_string(version) / "model.pt", weights);
  }

  void Create(ModelControlMode mode, std::vector<std::string> startup = {},
              std::string default_model = "") {
    ModelRepository::Options options;
    options.root = root_.string();
    options.default_model = default_model;
    options.clock = RealClock::Get();
    options.metrics = &metrics_;
    options.control_mode = mode;
    options.startup_models = std::move(startup);
    options.loader = [this](const v1::ModelConfig& config,
                            const std::string& weights_path, const std::string&)
        -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
      std::ifstream file(weights_path);
      std::string content;
      file >> content;
      if (content == "corrupt") {
        return absl::InvalidArgumentError(weights_path + ": not a state dict");
      }
      loads_.fetch_add(1);
      return std::make_unique<FakeModel>(state_, int(config.input().height()),
                                         int(config.input().width()));
    };
    auto repository = ModelRepository::Create(options);
    ASSERT_TRUE(repository.ok()) << repository.status();
    repository_ = *std::move(repository);
    repository_->LoadAll();
    core_ = std::make_unique<InferenceCore>(repository_.get(), &pool_,
                                            &metrics_, RealClock::Get());
  }

  ModelStatus Status(const std::string& name = "m") {
    absl::StatusOr<ModelStatus> status = repository_->Describe(name);
    EXPECT_TRUE(status.ok()) << status.status();
    return status.ok() ? *status : ModelStatus();
  }

  std::string LatestVersion(const std::string& name = "m") {
    auto served = repository_->Find(name, 0);
    return served.ok() ? absl::StrCat((*served)->version())
                       : served.status().ToString();
  }

  // Runs one image through an admitted ticket; returns its status.
  static absl::Status RunOne(RequestTicket& ticket) {
    std::vector<std::unique_ptr<InferenceRequest>> items;
    items.push_back(std::make_unique<InferenceRequest>());
    items.back()->input.assign(3 * 32 * 32, 1);
    absl::Notification done;
    absl::Status status;
    absl::Status queued =
        ticket.Submit(std::move(items), [&](std::vector<BatchResult> results) {
          status = results.front().status;
          done.Notify();
        });
    if (!queued.ok()) return queued;
    done.WaitForNotification();
    return status;
  }

  fs::path root_;
  prometheus::Registry registry_;
  Metrics metrics_{&registry_};
  std::shared_ptr<FakeModelState> state_ = std::make_shared<FakeModelState>();
  std::atomic<int> loads_{0};
  ThreadPool pool_{2};
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<InferenceCore> core_;
};

TEST_F(ModelLifecycleTest, LatestVersionIsServedByDefault) {
  WriteVersion("m", 2);
  WriteVersion("m", 10);
  Create(ModelControlMode::kNone);
  EXPECT_EQ(States(Status()), "10:READY");
  EXPECT_EQ(LatestVersion(), "10");
  auto old = repository_->Find("m", 2);
  EXPECT_EQ(old.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(old.status().message()), HasSubstr("versions: 10"));
}

TEST_F(ModelLifecycleTest, PoliciesSelectVersions) {
  WriteVersion("m", 2);
  WriteVersion("m", 3);
  WriteFile(root_ / "all" / "config.pbtxt",
            std::string(kConfig) + "version_policy { all {} }");
  WriteVersion("all", 1);
  WriteVersion("all", 2);
  WriteFile(
      root_ / "two" / "config.pbtxt",
      std::string(kConfig) + "version_policy { latest { num_versions: 2 } }");
  for (int v : {1, 2, 3}) WriteVersion("two", v);
  WriteFile(root_ / "pick" / "config.pbtxt",
            std::string(kConfig) +
                "version_policy { specific { versions: [ 1, 4 ] } }");
  for (int v : {1, 2, 3}) WriteVersion("pick", v);
  Create(ModelControlMode::kNone);
  EXPECT_EQ(States(Status("m")), "3:READY");
  EXPECT_EQ(States(Status("all")), "1:READY 2:READY");
  EXPECT_EQ(States(Status("two")), "2:READY 3:READY");
  ModelStatus pick = Status("pick");
  EXPECT_EQ(States(pick), "1:READY 4:UNAVAILABLE");
  EXPECT_THAT(pick.versions[1].reason, HasSubstr("has no directory 4"));
  EXPECT_EQ(LatestVersion("pick"), "1");
}

TEST_F(ModelLifecycleTest, NoneModeRefusesLoadAndUnload) {
  Create(ModelControlMode::kNone);
  const absl::Status load = repository_->Load("m", std::nullopt);
  EXPECT_EQ(load.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(load.message()), HasSubstr("control mode is none"));
  EXPECT_THAT(std::string(load.message()),
              HasSubstr("the explicit mode allows it"));
  EXPECT_EQ(repository_->Unload("m").code(),
            absl::StatusCode::kFailedPrecondition);
  WriteVersion("m", 2);
  repository_->Poll();
  EXPECT_EQ(LatestVersion(), "1") << "none never changes what it serves";
}

// A new version loads while the old one serves; unversioned requests move
// to it once it is ready; a request admitted to the old one is still
// answered by it, which stays UNLOADING until then.
TEST_F(ModelLifecycleTest, PollSwitchesToANewVersionWithoutDroppingRequests) {
  Create(ModelControlMode::kPoll);
  auto held = core_->Admit({"m", 0, absl::InfiniteFuture()});
  ASSERT_TRUE(held.ok());
  EXPECT_EQ((*held)->model().version(), 1);

  WriteVersion("m", 2);
  repository_->Poll();
  EXPECT_EQ(LatestVersion(), "2");
  EXPECT_EQ(States(Status()), "1:UNLOADING 2:READY");
  EXPECT_EQ(repository_->Find("m", 1).status().code(),
            absl::StatusCode::kUnavailable)
      << "an unloading version takes no new requests";

  EXPECT_TRUE(RunOne(**held).ok()) << "the old version answers its own";
  (*held)->Finish(absl::StatusCode::kOk);
  held->reset();
  EXPECT_EQ(States(Status()), "1:UNAVAILABLE 2:READY");
  EXPECT_EQ(Status().versions[0].reason, "unloaded");
}

TEST_F(ModelLifecycleTest, PollReloadsWhatChangedOnly) {
  Create(ModelControlMode::kPoll);
  EXPECT_EQ(loads_.load(), 1);
  repository_->Poll();
  EXPECT_EQ(loads_.load(), 1) << "nothing changed, nothing reloads";

  WriteFile(root_ / "m" / "config.pbtxt",
            std::string(kConfig) + "dynamic_batching { max_queue_size: 7 }");
  repository_->Poll();
  EXPECT_EQ(loads_.load(), 2);
  EXPECT_EQ((*repository_->Find("m", 0))
                ->config()
                .dynamic_batching()
                .max_queue_size(),
            7u);
  EXPECT_EQ(Status().config.dynamic_batching().max_queue_size(), 7u);

  WriteVersion("m", 1, "new-weights");
  repository_->Poll();
  EXPECT_EQ(loads_.load(), 3) << "a changed weights file reloads its version";
}

TEST_F(ModelLifecycleTest, FailedReloadKeepsTheLoadedCopyServing) {
  Create(ModelControlMode::kPoll);
  const std::shared_ptr<ServedModel> before = *repository_->Find("m", 0);
  WriteVersion("m", 1, "corrupt");
  repository_->Poll();
  EXPECT_EQ(*repository_->Find("m", 0), before);
  ModelStatus status = Status();
  EXPECT_EQ(States(status), "1:READY");
  EXPECT_THAT(status.versions[0].reason, HasSubstr("keeps serving"));
  EXPECT_THAT(status.versions[0].reason, HasSubstr("not a state dict"));

  WriteFile(root_ / "m" / "config.pbtxt", "platform: NOPE");
  repository_->Poll();
  EXPECT_EQ(*repository_->Find("m", 0), before)
      << "a broken config keeps the loaded versions serving";
}

TEST_F(ModelLifecycleTest, PollAddsAndRemovesModelsAndVersions) {
  WriteVersion("m", 2);
  WriteFile(root_ / "m" / "config.pbtxt",
            std::string(kConfig) + "version_policy { all {} }");
  Create(ModelControlMode::kPoll);
  EXPECT_EQ(States(Status()), "1:READY 2:READY");

  fs::remove_all(root_ / "m" / "1");
  WriteFile(root_ / "n" / "config.pbtxt", kConfig);
  WriteVersion("n", 4);
  repository_->Poll();
  EXPECT_EQ(States(Status()), "1:UNAVAILABLE 2:READY");
  EXPECT_EQ(LatestVersion("n"), "4");

  fs::remove_all(root_ / "n");
  repository_->Poll();
  EXPECT_EQ(repository_->Describe("n").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ModelLifecycleTest, ExplicitModeLoadsAndUnloadsOnRequest) {
  WriteFile(root_ / "other" / "config.pbtxt", kConfig);
  WriteVersion("other", 1);
  Create(ModelControlMode::kExplicit, {"other"});
  EXPECT_TRUE(repository_->IsReady()) << "every startup model is ready";
  ModelStatus idle = Status();
  EXPECT_EQ(idle.state, ModelState::kUnavailable);
  EXPECT_THAT(idle.reason, HasSubstr("a load request asks"));
  EXPECT_EQ(LatestVersion("other"), "1");

  ASSERT_TRUE(repository_->Load("m", std::nullopt).ok());
  EXPECT_EQ(LatestVersion(), "1");
  WriteVersion("m", 2);
  repository_->Poll();
  EXPECT_EQ(LatestVersion(), "1") << "explicit mode does not poll";
  ASSERT_TRUE(repository_->Load("m", std::nullopt).ok());
  EXPECT_EQ(LatestVersion(), "2");

  ASSERT_TRUE(repository_->Unload("m").ok());
  ModelStatus gone = Status();
  EXPECT_EQ(gone.state, ModelState::kUnavailable);
  EXPECT_THAT(gone.reason, HasSubstr("unloaded on request"));
  EXPECT_EQ(repository_->Find("m", 0).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(ModelLifecycleTest, ExplicitLoadChecksNamesAndConfigOverrides) {
  Create(ModelControlMode::kExplicit);
  for (const std::string& name :
       {std::string("../m"), std::string("m/1"), std::string(".."),
        std::string(""), std::string("m\0x", 3)}) {
    const absl::Status status = repository_->Load(name, std::nullopt);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(std::string(status.message()), HasSubstr("one path component"));
  }
  EXPECT_EQ(repository_->Load("nope", std::nullopt).code(),
            absl::StatusCode::kNotFound);
  const fs::path outside = FreshTestDir("model_lifecycle_outside");
  WriteFile(outside / "config.pbtxt", kConfig);
  WriteFile(outside / "1" / "model.pt", "weights");
  fs::create_directory_symlink(outside, root_ / "escaped");
  EXPECT_EQ(repository_->Load("escaped", std::nullopt).code(),
            absl::StatusCode::kFailedPrecondition);

  std::string override(kConfig);
  override.replace(override.find("max_batch_size: 4"), 17, "max_batch_size: 2");
  ASSERT_TRUE(repository_->Load("m", override).ok());
  EXPECT_EQ((*repository_->Find("m", 0))->config().max_batch_size(), 2u);
  override.replace(override.find("max_batch_size: 2"), 17,
                   "max_batch_size: 5000");
  const absl::Status bad = repository_->Load("m", override);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()),
              HasSubstr("the config of the load request"));
  EXPECT_THAT(std::string(bad.message()), HasSubstr("max_batch_size"));
  EXPECT_EQ((*repository_->Find("m", 0))->config().max_batch_size(), 2u)
      << "a refused override changes nothing";
}

// Clients send without pause while versions are added, changed and removed:
// no request fails, and every answer comes from a version that was ready.
TEST_F(ModelLifecycleTest, NoRequestFailsWhileVersionsChange) {
  Create(ModelControlMode::kPoll);
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&] {
      while (!stop.load()) {
        auto ticket = core_->Admit({"m", 0, absl::InfiniteFuture()});
        absl::Status status = ticket.ok() ? RunOne(**ticket) : ticket.status();
        if (ticket.ok()) (*ticket)->Finish(status.code());
        if (status.ok()) {
          answered.fetch_add(1);
        } else {
          failed.fetch_add(1);
          ADD_FAILURE() << status;
        }
      }
    });
  }
  for (int step = 2; step <= 12; ++step) {
    WriteVersion("m", step);  // A new version.
    if (step % 3 == 0) {      // A changed config.
      WriteFile(root_ / "m" / "config.pbtxt",
                std::string(kConfig) + "dynamic_batching { max_queue_size: " +
                    std::to_string(100 + step) + " }");
    }
    if (step % 4 == 0) fs::remove_all(root_ / "m" / std::to_string(step));
    repository_->Poll();
    EXPECT_EQ(Status().state, ModelState::kReady);
    absl::SleepFor(absl::Milliseconds(20));
  }
  stop = true;
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(answered.load(), 50);
  EXPECT_EQ(LatestVersion(), "11");
}

// The poller rescans on its own until it goes, and a poll under way ends
// before it does.
TEST_F(ModelLifecycleTest, ThePollerFollowsTheFilesUntilItStops) {
  Create(ModelControlMode::kPoll);
  auto poller = std::make_unique<RepositoryPoller>(repository_.get(),
                                                   absl::Milliseconds(5));
  WriteVersion("m", 2);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (LatestVersion() != "2" && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(LatestVersion(), "2");
  poller.reset();
  const int loads = loads_.load();
  WriteVersion("m", 3);
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(loads_.load(), loads) << "a stopped poller loads nothing";
  EXPECT_EQ(LatestVersion(), "2");
}

}  // namespace
}  // namespace segserve
