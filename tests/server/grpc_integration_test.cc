// The real gRPC server on an ephemeral loopback port, called through the
// client library. Models are fakes behind the ModelLoader seam so every
// answer is known: the fake labels each pixel with the image's gray value.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "client/client.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "server/server.h"
#include "server/service/token_authorizer.h"
#include "tests/server/fake_model.h"
#include "tests/server/http_get.h"
#include "tests/server/test_files.h"

namespace segserve {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kConfig[] = R"pb(
  platform: BUILTIN
  architecture: "sgcpnet"
  num_classes: 256
  input {
    height: 32
    width: 32
    mean: [ 0, 0, 0 ]
    std: [ 1, 1, 1 ]
  }
  max_batch_size: 8
  dynamic_batching {
    max_queue_delay_us: 2000
    max_queue_size: 512
    priority_levels: 2
  }
)pb";

constexpr char kSmallQueueConfig[] = R"pb(
  platform: BUILTIN
  architecture: "sgcpnet"
  num_classes: 4
  input {
    height: 32
    width: 32
    mean: [ 0, 0, 0 ]
    std: [ 1, 1, 1 ]
  }
  max_batch_size: 1
  dynamic_batching { max_queue_size: 2 }
)pb";

// A gray RGB8 image of the given size, sent RAW; the fake answers `value`.
v1::SegmentRequest GrayRequest(int width, int height, uint8_t value,
                               const std::string& id,
                               const std::string& model = "") {
  v1::SegmentRequest request;
  request.set_model(model);
  request.set_request_id(id);
  request.set_mask_encoding(v1::RAW);
  v1::RawImage* raw = request.mutable_image()->mutable_raw();
  raw->set_width(uint32_t(width));
  raw->set_height(uint32_t(height));
  raw->set_format(v1::RGB8);
  raw->set_data(std::string(size_t(width) * height * 3, char(value)));
  return request;
}

// Polls `condition` every few milliseconds; false if it still does not
// hold after `timeout`, so that a broken server fails the test instead of
// hanging it.
bool WaitUntil(const std::function<bool()>& condition,
               absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// Checks a response is the answer to its own request.
void ExpectAnswer(const v1::SegmentResponse& response, int width, int height,
                  uint8_t value, const std::string& id) {
  EXPECT_EQ(response.request_id(), id);
  EXPECT_EQ(response.mask().width(), uint32_t(width));
  EXPECT_EQ(response.mask().height(), uint32_t(height));
  ASSERT_EQ(response.mask().data().size(), size_t(width) * height) << id;
  EXPECT_EQ(response.mask().data().find_first_not_of(char(value)),
            std::string::npos)
      << id;
}

class GrpcIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = FreshTestDir("grpc_integration");
    WriteFile(root_ / "fake" / "config.pbtxt", kConfig);
    WriteFile(root_ / "fake" / "1" / "model.pt", "");
    WriteFile(root_ / "small" / "config.pbtxt", kSmallQueueConfig);
    WriteFile(root_ / "small" / "1" / "model.pt", "");

    StartServer(Options());
  }

  // Replaces the server (and the client) with one made from `options`.
  void StartServer(Server::Options options) {
    client_.reset();
    server_.reset();
    auto server = Server::Create(std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_TRUE(server_->WaitForModels());

    ClientOptions client_options;
    client_options.target = absl::StrCat("127.0.0.1:", server_->grpc_port());
    client_options.retry_max_attempts = 1;
    auto client = Client::Create(client_options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  // The fixture's server: fake models in root_, ephemeral loopback ports.
  Server::Options Options() {
    Server::Options options;
    options.models.repository = root_.string();
    options.models.default_model = "fake";
    options.grpc.address = "127.0.0.1:0";
    options.metrics_address = "127.0.0.1:0";
    options.requests.max_image_pixels = 1 << 20;
    options.requests.drain_timeout = absl::Seconds(20);
    options.models.loader = [this](const v1::ModelConfig& config,
                                   const std::string&, const std::string&)
        -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
      return std::make_unique<FakeModel>(state_, 32, 32);
    };
    return options;
  }

  void TearDown() override {
    // A test that failed while the model was blocked must not hang here.
    if (release_ && !release_->HasBeenNotified()) Unblock();
    client_.reset();
    server_.reset();
  }

  // grpc.health.v1.Health/Check: 1 SERVING, 2 NOT_SERVING, 0 unknown, or
  // minus the call's error code.
  int HealthStatus(const std::string& service) {
    absl::StatusOr<Client::Health> health = client_->CheckHealth(service);
    if (!health.ok()) return -int(health.status().code());
    return *health == Client::Health::kServing      ? 1
           : *health == Client::Health::kNotServing ? 2
                                                    : 0;
  }

  // segserve_inflight_requests from the metrics endpoint (-1: absent).
  int Inflight() {
    const std::string text = HttpGet(server_->metrics_port(), "/metrics");
    const std::string line = "\nsegserve_inflight_requests ";
    const size_t at = text.find(line);
    return at == std::string::npos ? -1
                                   : std::atoi(text.c_str() + at + line.size());
  }

  void Block() {
    absl::MutexLock lock(&state_->mu);
    release_ = std::make_shared<absl::Notification>();
    state_->release = release_;
  }
  void Unblock() {
    {
      absl::MutexLock lock(&state_->mu);
      state_->release = nullptr;
    }
    release_->Notify();
  }

  fs::path root_;
  std::shared_ptr<FakeModelState> state_ = std::make_shared<FakeModelState>();
  std::shared_ptr<absl::Notification> release_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(GrpcIntegrationTest, SegmentReturnsMaskAtImageSize) {
  auto response = client_->Segment(GrayRequest(45, 17, 9, "a"));
  ASSERT_TRUE(response.ok()) << response.status();
  ExpectAnswer(*response, 45, 17, 9, "a");
  EXPECT_EQ(response->model(), "fake");
  EXPECT_EQ(response->model_version(), "1");
  ASSERT_EQ(response->class_stats_size(), 1);
  EXPECT_EQ(response->class_stats(0).class_id(), 9u);
  EXPECT_EQ(response->class_stats(0).pixels(), 45u * 17u);
  EXPECT_GE(response->timing().batch_size(), 1u);
}

TEST_F(GrpcIntegrationTest, AsyncAndStreamAnswerInOrder) {
  absl::Notification done;
  absl::StatusOr<v1::SegmentResponse> async_response;
  client_->SegmentAsync(GrayRequest(8, 8, 4, "async"),
                        [&](absl::StatusOr<v1::SegmentResponse> r) {
                          async_response = std::move(r);
                          done.Notify();
                        });
  done.WaitForNotification();
  ASSERT_TRUE(async_response.ok()) << async_response.status();
  ExpectAnswer(*async_response, 8, 8, 4, "async");

  std::vector<v1::SegmentRequest> frames;
  for (int i = 0; i < 20; ++i) {
    frames.push_back(GrayRequest(16 + i, 10, uint8_t(i), absl::StrCat(i)));
  }
  auto responses = client_->SegmentStream(frames);
  ASSERT_TRUE(responses.ok()) << responses.status();
  ASSERT_EQ(responses->size(), frames.size());
  for (int i = 0; i < 20; ++i) {
    ExpectAnswer((*responses)[i], 16 + i, 10, uint8_t(i), absl::StrCat(i));
  }
}

TEST_F(GrpcIntegrationTest, StreamEndsWithTheFirstFailedFrame) {
  std::vector<v1::SegmentRequest> frames = {GrayRequest(8, 8, 1, "ok"),
                                            GrayRequest(8, 8, 2, "bad")};
  frames[1].mutable_image()->mutable_raw()->set_data("short");
  auto responses = client_->SegmentStream(frames);
  EXPECT_EQ(responses.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(GrpcIntegrationTest, ListAndGetModels) {
  auto list = client_->ListModels();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->models_size(), 2);
  EXPECT_EQ(list->models(0).name(), "fake");
  EXPECT_TRUE(list->models(0).is_default());

  auto info = client_->GetModel("");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name(), "fake");
  EXPECT_EQ(info->state(), v1::READY);
  EXPECT_EQ(info->version(), "1");
  EXPECT_EQ(info->architecture(), "sgcpnet");
  EXPECT_EQ(info->input_height(), 32u);
  EXPECT_EQ(info->max_batch_size(), 8u);
  EXPECT_EQ(info->class_names_size(), 256);
  EXPECT_THAT(info->devices(), ::testing::ElementsAre("cpu"));
  EXPECT_EQ(info->parameter_count(), 42u);

  EXPECT_EQ(client_->GetModel("nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->GetModel("fake", "7").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(GrpcIntegrationTest, HealthIsServing) {
  EXPECT_EQ(HealthStatus(""), 1);
  EXPECT_EQ(HealthStatus("segserve.v1.Segmentation"), 1);
  EXPECT_EQ(HealthStatus(Server::kLivenessService), 1);
  EXPECT_EQ(HealthStatus(Server::kReadinessService), 1);
  absl::StatusOr<Client::Health> unknown = client_->CheckHealth("nonesuch");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("readiness"));
}

// The port is bound before the models load: liveness answers SERVING at
// once, readiness only once the default model is ready; meanwhile requests
// get UNAVAILABLE and GetModel says LOADING.
TEST_F(GrpcIntegrationTest, ReadinessWaitsForTheModelsLivenessDoesNot) {
  auto release = std::make_shared<absl::Notification>();
  Server::Options options = Options();
  options.models.loader = [this, release](const v1::ModelConfig&,
                                          const std::string&,
                                          const std::string&)
      -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
    release->WaitForNotification();
    return std::make_unique<FakeModel>(state_, 32, 32);
  };
  auto loading = Server::Create(std::move(options));
  ASSERT_TRUE(loading.ok()) << loading.status();
  ClientOptions client_options;
  client_options.target = absl::StrCat("127.0.0.1:", (*loading)->grpc_port());
  client_options.retry_max_attempts = 1;
  auto client = Client::Create(client_options);
  ASSERT_TRUE(client.ok());

  EXPECT_EQ(*(*client)->CheckHealth(Server::kLivenessService),
            Client::Health::kServing);
  EXPECT_EQ(*(*client)->CheckHealth(Server::kReadinessService),
            Client::Health::kNotServing);
  EXPECT_EQ(*(*client)->CheckHealth(""), Client::Health::kNotServing);
  auto info = (*client)->GetModel("fake");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->state(), v1::LOADING);
  auto early = (*client)->Segment(GrayRequest(4, 4, 1, "early"));
  EXPECT_EQ(early.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(early.status().message(), HasSubstr("loading"));

  release->Notify();
  EXPECT_TRUE((*loading)->WaitForModels());
  EXPECT_EQ(*(*client)->CheckHealth(Server::kReadinessService),
            Client::Health::kServing);
  EXPECT_TRUE((*client)->Segment(GrayRequest(4, 4, 1, "late")).ok());
}

// A drain that starts while models load cuts the loading short and exits.
TEST_F(GrpcIntegrationTest, ShutdownDuringLoadingStops) {
  auto release = std::make_shared<absl::Notification>();
  std::atomic<int> loads{0};
  Server::Options options = Options();
  options.models.loader = [&, release](const v1::ModelConfig&,
                                       const std::string&, const std::string&)
      -> absl::StatusOr<std::unique_ptr<SegmentationModel>> {
    ++loads;
    release->WaitForNotification();
    return std::make_unique<FakeModel>(state_, 32, 32);
  };
  auto loading = Server::Create(std::move(options));
  ASSERT_TRUE(loading.ok()) << loading.status();
  ASSERT_TRUE(WaitUntil([&] { return loads.load() > 0; }));
  ClientOptions client_options;
  client_options.target = absl::StrCat("127.0.0.1:", (*loading)->grpc_port());
  client_options.retry_max_attempts = 1;
  auto client = Client::Create(client_options);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->CheckHealth(Server::kLivenessService).ok());
  std::thread stopper([&] { (*loading)->Shutdown(); });
  // The listener closes after the loading was cancelled.
  ASSERT_TRUE(WaitUntil([&] {
    return !(*client)->CheckHealth(Server::kLivenessService).ok();
  })) << "the listener never closed";
  release->Notify();
  stopper.join();
  EXPECT_FALSE((*loading)->WaitForModels());
  EXPECT_EQ(loads.load(), 1) << "the second model loaded after the drain";
}

// --grpc_max_connection_age_s: the server sends a GOAWAY after the age, the
// client's channel drops to IDLE, and the next call reconnects.
TEST_F(GrpcIntegrationTest, ConnectionsAreClosedAfterTheirMaximumAge) {
  Server::Options options = Options();
  options.grpc.max_connection_age = absl::Milliseconds(500);
  options.grpc.max_connection_age_grace = absl::Milliseconds(500);
  auto aging = Server::Create(std::move(options));
  ASSERT_TRUE(aging.ok()) << aging.status();
  ASSERT_TRUE((*aging)->WaitForModels());
  ClientOptions client_options;
  client_options.target = absl::StrCat("127.0.0.1:", (*aging)->grpc_port());
  client_options.dedicated_connection = true;
  auto client = Client::Create(client_options);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->Segment(GrayRequest(4, 4, 1, "first")).ok());
  EXPECT_EQ((*client)->channel()->GetState(false), GRPC_CHANNEL_READY);
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while ((*client)->channel()->GetState(false) == GRPC_CHANNEL_READY &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_NE((*client)->channel()->GetState(false), GRPC_CHANNEL_READY);
  EXPECT_TRUE((*client)->Segment(GrayRequest(4, 4, 1, "again")).ok());
}

TEST_F(GrpcIntegrationTest, ReflectionListsTheService) {
  // grpc.reflection.v1alpha ServerReflectionInfo with {7: list_services ""}.
  grpc::GenericStub stub(client_->channel());
  grpc::ClientContext context;
  grpc::CompletionQueue queue;
  auto call = stub.PrepareCall(
      &context,
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &queue);
  void* tag;
  bool ok = false;
  auto step = [&](intptr_t id) {
    EXPECT_TRUE(queue.Next(&tag, &ok));
    EXPECT_EQ(tag, reinterpret_cast<void*>(id));
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  const std::string list_services("\x3a\x00", 2);
  grpc::Slice slice(list_services);
  grpc::ByteBuffer request(&slice, 1);
  call->Write(request, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  call->WritesDone(reinterpret_cast<void*>(4));
  step(4);
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  response.Dump(&slices);
  std::string bytes;
  for (const auto& s : slices) bytes += std::string(s.begin(), s.end());
  EXPECT_THAT(bytes, HasSubstr("segserve.v1.Segmentation"));
  EXPECT_THAT(bytes, HasSubstr("grpc.health.v1.Health"));
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
}

TEST_F(GrpcIntegrationTest, BadRequestsGetClearErrors) {
  v1::SegmentRequest empty;
  auto no_image = client_->Segment(empty);
  EXPECT_EQ(no_image.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(no_image.status().message()), HasSubstr("image"));

  auto bad_encoding = GrayRequest(4, 4, 1, "x");
  bad_encoding.set_mask_encoding(static_cast<v1::MaskEncoding>(9));
  auto encoding = client_->Segment(bad_encoding);
  EXPECT_EQ(encoding.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(encoding.status().message()),
              HasSubstr("PNG, RAW, RLE"));

  auto bad_format = GrayRequest(4, 4, 1, "x");
  bad_format.mutable_image()->mutable_raw()->set_format(
      v1::PIXEL_FORMAT_UNSPECIFIED);
  EXPECT_EQ(client_->Segment(bad_format).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto zero = GrayRequest(4, 4, 1, "x");
  zero.mutable_image()->mutable_raw()->set_width(0);
  EXPECT_EQ(client_->Segment(zero).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto too_big = GrayRequest(2048, 1024, 1, "x");  // Over 1 Mpx.
  auto big = client_->Segment(too_big);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(big.status().message()), HasSubstr("pixel"));

  auto high = GrayRequest(4, 4, 1, "x");
  high.set_priority(5);
  EXPECT_EQ(client_->Segment(high).status().code(),
            absl::StatusCode::kInvalidArgument);

  v1::SegmentRequest garbage;
  garbage.mutable_image()->set_encoded("\x89PNG\r\n\x1a\n garbage");
  EXPECT_EQ(client_->Segment(garbage).status().code(),
            absl::StatusCode::kInvalidArgument);

  auto unknown = GrayRequest(4, 4, 1, "x", "nope");
  EXPECT_EQ(client_->Segment(unknown).status().code(),
            absl::StatusCode::kNotFound);

  // The server still serves.
  auto after = client_->Segment(GrayRequest(4, 4, 3, "after"));
  ASSERT_TRUE(after.ok()) << after.status();
  ExpectAnswer(*after, 4, 4, 3, "after");
}

// A hostile name is quoted in part: a 10,000-byte model name gets NOT_FOUND,
// not RESOURCE_EXHAUSTED because the message outgrew gRPC's metadata limit.
TEST_F(GrpcIntegrationTest, ErrorsQuoteOnlyPartOfLongNames) {
  const std::string name(10000, 'm');
  auto unknown = client_->Segment(GrayRequest(4, 4, 1, "x", name));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_LT(unknown.status().message().size(), 400u)
      << unknown.status().message();
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("(10000 bytes)"));

  auto version = GrayRequest(4, 4, 1, "x");
  version.set_model_version(std::string(3000, '\x01'));
  auto bad_version = client_->Segment(version);
  EXPECT_EQ(bad_version.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(bad_version.status().message().size(), 500u);
  EXPECT_THAT(std::string(bad_version.status().message()),
              HasSubstr("\\x01\\x01"))
      << "control bytes are escaped";
}

TEST_F(GrpcIntegrationTest, FullQueueAndExpiredRequests) {
  Block();
  std::atomic<int> finished{0};
  std::atomic<int> succeeded{0};
  auto send = [&](v1::SegmentRequest request) {
    client_->SegmentAsync(std::move(request),
                          [&](absl::StatusOr<v1::SegmentResponse> r) {
                            if (r.ok()) ++succeeded;
                            ++finished;
                          });
  };
  // One request runs (blocked) and two fill the queue of "small".
  send(GrayRequest(4, 4, 1, "run", "small"));
  state_->AwaitBatchesStarted(1);
  send(GrayRequest(4, 4, 1, "q1", "small"));
  send(GrayRequest(4, 4, 1, "q2", "small"));
  const std::string depth =
      "segserve_queue_depth{model=\"small\",version=\"1\"} 2";
  ASSERT_TRUE(WaitUntil([&] {
    return HttpGet(server_->metrics_port(), "/metrics").find(depth) !=
           std::string::npos;
  })) << "never saw "
      << depth;
  auto refused = client_->Segment(GrayRequest(4, 4, 1, "full", "small"));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("the model's queue is full: the request's 1 batch "
                        "item(s) (images or tiles) do not fit in the 0 "
                        "place(s) left of 2 (max_queue_size)"));

  // With the default model's instance busy, a request whose deadline passes
  // while queued is dropped before inference: the model never sees it.
  send(GrayRequest(4, 4, 5, "busy"));
  state_->AwaitBatchesStarted(2);
  CallOptions short_deadline;
  short_deadline.deadline_ms = 200;
  auto expired =
      client_->Segment(GrayRequest(4, 4, 77, "late"), short_deadline);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kDeadlineExceeded);
  // The server's copy of the deadline starts when the request arrives, a
  // little after the client's, and it drops expired requests when it next
  // dispatches: let its deadline pass too before the instance frees up (it
  // ran the request in about 1 of 40 runs without this).
  absl::SleepFor(absl::Milliseconds(100));

  Unblock();
  // FIFO: once this answer is back, the expired request has been handled.
  auto after = client_->Segment(GrayRequest(4, 4, 6, "after"));
  ASSERT_TRUE(after.ok()) << after.status();
  ASSERT_TRUE(WaitUntil([&] { return finished.load() >= 4; }));
  EXPECT_EQ(succeeded.load(), 4);
  absl::MutexLock lock(&state_->mu);
  EXPECT_THAT(state_->first_values, ::testing::Not(::testing::Contains(77.0f)));
}

TEST_F(GrpcIntegrationTest, MetricsEndpointServesPrometheusText) {
  ASSERT_TRUE(client_->Segment(GrayRequest(4, 4, 1, "m")).ok());
  const std::string reply = HttpGet(server_->metrics_port(), "/metrics");
  EXPECT_THAT(reply, HasSubstr("200 OK"));
  EXPECT_THAT(reply, HasSubstr("segserve_requests_total{code=\"OK\",model="
                               "\"fake\",version=\"1\"} 1"));
  EXPECT_THAT(reply, HasSubstr("# TYPE segserve_inference_duration_seconds "
                               "histogram"));
}

TEST_F(GrpcIntegrationTest, SixtyFourConcurrentClientsGetTheirOwnAnswers) {
  constexpr int kClients = 64;
  constexpr int kRequestsEach = 4;
  std::atomic<int> wrong{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      ClientOptions options;
      options.target = absl::StrCat("127.0.0.1:", server_->grpc_port());
      options.dedicated_connection = c % 4 == 0;
      auto client = Client::Create(options);
      if (!client.ok()) {
        ++failed;
        return;
      }
      for (int r = 0; r < kRequestsEach; ++r) {
        const uint8_t value = uint8_t(c * kRequestsEach + r);
        const int width = 10 + c;
        const int height = 5 + r;
        const std::string id = absl::StrCat(c, "/", r);
        auto response =
            (*client)->Segment(GrayRequest(width, height, value, id));
        if (!response.ok()) {
          ++failed;
          continue;
        }
        const std::string& mask = response->mask().data();
        if (response->request_id() != id ||
            response->mask().width() != uint32_t(width) ||
            response->mask().height() != uint32_t(height) ||
            mask.size() != size_t(width) * height ||
            mask.find_first_not_of(char(value)) != std::string::npos) {
          ++wrong;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  int images = 0;
  int largest = 0;
  for (int size : state_->BatchSizes()) {
    images += size;
    largest = std::max(largest, size);
  }
  EXPECT_EQ(images, kClients * kRequestsEach);
  EXPECT_GT(largest, 1) << "concurrent requests were never batched";
}

TEST_F(GrpcIntegrationTest, DrainFinishesAcceptedRequests) {
  Block();
  constexpr int kInFlight = 6;
  std::atomic<int> ok{0};
  std::atomic<int> finished{0};
  absl::BlockingCounter answered(kInFlight);
  for (int i = 0; i < kInFlight; ++i) {
    client_->SegmentAsync(GrayRequest(6, 6, uint8_t(i), absl::StrCat(i)),
                          [&, i](absl::StatusOr<v1::SegmentResponse> r) {
                            if (r.ok() && r->request_id() == absl::StrCat(i)) {
                              ++ok;
                            }
                            ++finished;
                            answered.DecrementCount();
                          });
  }
  // All six accepted (one running on the blocked model, five queued).
  ASSERT_TRUE(WaitUntil([&] {
    return HttpGet(server_->metrics_port(), "/metrics")
               .find("segserve_inflight_requests 6") != std::string::npos;
  })) << "the six requests were not all accepted";
  bool drained = false;
  std::thread stopper([&] { drained = server_->Shutdown(); });
  // Readiness goes NOT_SERVING at once; the transport stays up (liveness
  // answers) and segserve itself refuses new calls UNAVAILABLE, which
  // clients retry, while the accepted ones wait on the blocked model.
  EXPECT_TRUE(
      WaitUntil([&] { return HealthStatus(Server::kReadinessService) != 1; }));
  EXPECT_EQ(HealthStatus(Server::kLivenessService), 1);
  auto late = client_->Segment(GrayRequest(4, 4, 1, "late"));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable)
      << late.status();
  EXPECT_THAT(std::string(late.status().message()),
              ::testing::HasSubstr("shutting down"));
  EXPECT_EQ(finished.load(), 0);

  Unblock();
  stopper.join();
  EXPECT_TRUE(drained);
  // The server has sent every answer; the client's callbacks may still be
  // on their way.
  answered.Wait();
  EXPECT_EQ(ok.load(), kInFlight);
}

// A client that sends frames without reading the answers holds at most
// max_stream_frames_in_flight of them in the server; none is lost.
TEST_F(GrpcIntegrationTest, StreamTakesAtMostItsFramesInFlight) {
  Server::Options options = Options();
  options.grpc.max_stream_frames_in_flight = 3;
  StartServer(std::move(options));
  Block();
  std::unique_ptr<SegmentStreamSession> stream = client_->OpenStream();
  constexpr int kFrames = 10;
  for (int i = 0; i < kFrames; ++i) {
    ASSERT_TRUE(stream->Write(GrayRequest(4, 4, uint8_t(i), absl::StrCat(i))));
  }
  ASSERT_TRUE(WaitUntil([&] { return Inflight() == 3; }));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Inflight(), 3) << "the stream read past its bound";
  Unblock();
  ASSERT_TRUE(stream->WritesDone());
  for (int i = 0; i < kFrames; ++i) {
    v1::SegmentResponse response;
    ASSERT_TRUE(stream->Read(&response)) << i;
    ExpectAnswer(response, 4, 4, uint8_t(i), absl::StrCat(i));
  }
  EXPECT_TRUE(stream->Finish().ok());
}

// One connection gets at most max_concurrent_streams calls at once; the
// rest wait in the client (HTTP/2 SETTINGS) and are served afterwards.
TEST_F(GrpcIntegrationTest, ConnectionHoldsAtMostItsStreams) {
  Server::Options options = Options();
  options.grpc.max_concurrent_streams = 2;
  StartServer(std::move(options));
  Block();
  constexpr int kCalls = 8;
  std::atomic<int> ok{0};
  absl::BlockingCounter answered(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    client_->SegmentAsync(GrayRequest(4, 4, uint8_t(i), absl::StrCat(i)),
                          [&](absl::StatusOr<v1::SegmentResponse> r) {
                            if (r.ok()) ++ok;
                            answered.DecrementCount();
                          });
  }
  ASSERT_TRUE(WaitUntil([&] { return Inflight() == 2; }));
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(Inflight(), 2) << "the connection opened more streams";
  Unblock();
  answered.Wait();
  EXPECT_EQ(ok.load(), kCalls);
}

// With tokens, each call needs a known token with the call's right; health
// stays open for probes.
TEST_F(GrpcIntegrationTest, BearerTokensGuardTheCalls) {
  Server::Options options = Options();
  auto authorizer = TokenAuthorizer::FromText(
      "infer-0123456789abcdef inference\nmeta-0123456789abcdef metadata\n",
      "tokens");
  ASSERT_TRUE(authorizer.ok()) << authorizer.status();
  options.requests.authorizer = *std::move(authorizer);
  StartServer(std::move(options));
  auto client_with = [&](const std::string& token) {
    ClientOptions client_options;
    client_options.target = absl::StrCat("127.0.0.1:", server_->grpc_port());
    client_options.retry_max_attempts = 1;
    client_options.bearer_token = token;
    return *Client::Create(client_options);
  };
  EXPECT_EQ(client_->Segment(GrayRequest(4, 4, 1, "x")).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(client_->ListModels().status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(HealthStatus(Server::kReadinessService), 1)
      << "health needs no token";

  auto wrong = client_with("infer-0123456789abcdeX");
  EXPECT_EQ(wrong->Segment(GrayRequest(4, 4, 1, "x")).status().code(),
            absl::StatusCode::kUnauthenticated);

  auto infer = client_with("infer-0123456789abcdef");
  auto segmented = infer->Segment(GrayRequest(4, 4, 3, "ok"));
  ASSERT_TRUE(segmented.ok()) << segmented.status();
  ExpectAnswer(*segmented, 4, 4, 3, "ok");
  auto streamed = infer->SegmentStream({GrayRequest(4, 4, 2, "s")});
  ASSERT_TRUE(streamed.ok()) << streamed.status();
  EXPECT_EQ(infer->ListModels().status().code(),
            absl::StatusCode::kPermissionDenied);

  auto meta = client_with("meta-0123456789abcdef");
  EXPECT_TRUE(meta->ListModels().ok());
  EXPECT_EQ(meta->SegmentStream({GrayRequest(4, 4, 2, "s")}).status().code(),
            absl::StatusCode::kPermissionDenied);
}

// A batch that hangs past batch_timeout fails its requests UNAVAILABLE, its
// instance goes out of service, and with none left the model refuses
// requests and readiness turns NOT_SERVING; liveness stays.
TEST_F(GrpcIntegrationTest, HungBatchIsExpiredAndReadinessFollows) {
  Server::Options options = Options();
  options.models.batch_timeout = absl::Milliseconds(300);
  StartServer(std::move(options));
  ASSERT_EQ(HealthStatus(Server::kReadinessService), 1);
  Block();
  const absl::Time start = absl::Now();
  auto hung = client_->Segment(GrayRequest(4, 4, 1, "hung"));
  EXPECT_EQ(hung.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(hung.status().message()),
              HasSubstr("did not finish a batch within"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_TRUE(WaitUntil([&] {
    return HealthStatus(Server::kReadinessService) == 2;
  })) << "readiness did not follow the instance";
  EXPECT_EQ(HealthStatus(Server::kLivenessService), 1);
  auto after = client_->Segment(GrayRequest(4, 4, 1, "after"));
  EXPECT_EQ(after.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(after.status().message()),
              HasSubstr("no instance left"));
  Unblock();  // The stuck call returns; the instance stays out of service.
}

// An open stream with nothing in flight does not hold the drain until its
// timeout: its frames so far are answered, then it ends with UNAVAILABLE.
TEST_F(GrpcIntegrationTest, DrainEndsIdleStreamsAtOnce) {
  std::unique_ptr<SegmentStreamSession> stream = client_->OpenStream();
  ASSERT_TRUE(stream->Write(GrayRequest(5, 5, 2, "frame")));
  v1::SegmentResponse response;
  ASSERT_TRUE(stream->Read(&response));
  ExpectAnswer(response, 5, 5, 2, "frame");

  const absl::Time start = absl::Now();
  EXPECT_TRUE(server_->Shutdown());
  EXPECT_LT(absl::Now() - start, absl::Seconds(10))
      << "the idle stream held the drain (drain_timeout is 20 s)";
  EXPECT_FALSE(stream->Read(&response));
  absl::Status status = stream->Finish();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("shutting down"));
}

}  // namespace
}  // namespace segserve
