// Tests of segserve::Client against an in-process fake Segmentation service
// (no segserve server involved).

#include "client/client.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "client/request_util.h"
#include "gmock/gmock.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/support/validate_service_config.h"
#include "gtest/gtest.h"

namespace segserve {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Answers Segment with a 2x1 RAW mask and echoes the request id; the model
// name selects special behaviour:
//   "missing"           NOT_FOUND
//   "flaky:<n>"         UNAVAILABLE for the first n attempts, then OK
//   "block"             waits until the call is cancelled or 5 s pass
//   "fail-third"        (streams) INVALID_ARGUMENT on the third request
class FakeService final : public v1::Segmentation::Service {
 public:
  grpc::Status Segment(grpc::ServerContext* context,
                       const v1::SegmentRequest* request,
                       v1::SegmentResponse* response) override {
    ++segment_calls_;
    return Answer(context, *request, response);
  }

  grpc::Status SegmentStream(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<v1::SegmentResponse, v1::SegmentRequest>* stream)
      override {
    v1::SegmentRequest request;
    int index = 0;
    while (stream->Read(&request)) {
      ++index;
      if (request.model() == "fail-third" && index == 3) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "frame 3 is bad");
      }
      v1::SegmentResponse response;
      grpc::Status status = Answer(context, request, &response);
      if (!status.ok()) return status;
      if (!stream->Write(response)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status ListModels(grpc::ServerContext*, const v1::ListModelsRequest*,
                          v1::ListModelsResponse* response) override {
    response->add_models()->set_name("alpha");
    response->add_models()->set_name("beta");
    return grpc::Status::OK;
  }

  grpc::Status GetModel(grpc::ServerContext*,
                        const v1::GetModelRequest* request,
                        v1::ModelInfo* response) override {
    if (request->name() == "missing") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "model 'missing' not found; models: alpha, beta");
    }
    response->set_name(request->name().empty() ? "alpha" : request->name());
    response->set_version(request->version().empty() ? "7"
                                                     : request->version());
    response->set_state(v1::READY);
    return grpc::Status::OK;
  }

  int segment_calls() const { return segment_calls_; }
  int cancelled_calls() const { return cancelled_calls_; }

 private:
  grpc::Status Answer(grpc::ServerContext* context,
                      const v1::SegmentRequest& request,
                      v1::SegmentResponse* response) {
    const std::string& model = request.model();
    if (model == "missing") {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          "model 'missing' not found; models: alpha, beta");
    }
    if (absl::StartsWith(model, "flaky:")) {
      const int failures = std::stoi(model.substr(6));
      if (flaky_attempts_.fetch_add(1) < failures) {
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "warming up");
      }
    }
    if (model == "block") {
      const absl::Time give_up = absl::Now() + absl::Seconds(5);
      while (!context->IsCancelled() && absl::Now() < give_up) {
        absl::SleepFor(absl::Milliseconds(5));
      }
      if (context->IsCancelled()) ++cancelled_calls_;
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    response->set_request_id(request.request_id());
    response->set_model(model.empty() ? "alpha" : model);
    response->set_model_version("7");
    v1::Mask* mask = response->mutable_mask();
    mask->set_width(2);
    mask->set_height(1);
    mask->set_encoding(v1::RAW);
    mask->set_data(std::string("\x01\x02", 2));
    response->mutable_timing()->set_batch_size(1);
    return grpc::Status::OK;
  }

  std::atomic<int> segment_calls_{0};
  std::atomic<int> flaky_attempts_{0};
  std::atomic<int> cancelled_calls_{0};
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(&service_);
    builder.SetMaxReceiveMessageSize(64 << 20);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  void TearDown() override { server_->Shutdown(); }

  ClientOptions Options() const {
    ClientOptions options;
    options.target = absl::StrCat("127.0.0.1:", port_);
    options.retry_initial_backoff_ms = 5;
    options.retry_max_backoff_ms = 20;
    return options;
  }

  std::unique_ptr<Client> NewClient(const ClientOptions& options) {
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? std::move(*client) : nullptr;
  }

  static v1::SegmentRequest Request(const std::string& model,
                                    const std::string& id = "") {
    v1::SegmentRequest request = MakeEncodedRequest("not decoded by the fake");
    request.set_model(model);
    request.set_request_id(id);
    return request;
  }

  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(ClientTest, SegmentReturnsTheResponse) {
  std::unique_ptr<Client> client = NewClient(Options());
  ASSERT_TRUE(client->WaitForConnected(absl::Seconds(5)).ok());
  absl::StatusOr<v1::SegmentResponse> response =
      client->Segment(Request("", "req-1"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->request_id(), "req-1");
  EXPECT_EQ(response->model(), "alpha");
  absl::StatusOr<cv::Mat> labels = DecodeMaskToMat(response->mask());
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_EQ(labels->at<uint8_t>(0, 1), 2);
}

TEST_F(ClientTest, ErrorsKeepCodeAndMessage) {
  std::unique_ptr<Client> client = NewClient(Options());
  absl::StatusOr<v1::SegmentResponse> response =
      client->Segment(Request("missing"));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(response.status().message(),
            "model 'missing' not found; models: alpha, beta");
  absl::StatusOr<v1::ModelInfo> info = client->GetModel("missing");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientTest, ListAndGetModels) {
  std::unique_ptr<Client> client = NewClient(Options());
  absl::StatusOr<v1::ListModelsResponse> models = client->ListModels();
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->models_size(), 2);
  EXPECT_EQ(models->models(1).name(), "beta");
  absl::StatusOr<v1::ModelInfo> info = client->GetModel("beta", "3");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name(), "beta");
  EXPECT_EQ(info->version(), "3");
  info = client->GetModel("");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->name(), "alpha");
}

TEST_F(ClientTest, SegmentAsyncRunsEachCallbackOnce) {
  std::unique_ptr<Client> client = NewClient(Options());
  constexpr int kCalls = 20;
  absl::Mutex mu;
  std::vector<std::string> ids;
  int errors = 0;
  absl::Notification all_done;
  for (int i = 0; i < kCalls; ++i) {
    client->SegmentAsync(
        Request(i % 5 == 4 ? "missing" : "", absl::StrCat("id-", i)),
        [&](absl::StatusOr<v1::SegmentResponse> response) {
          absl::MutexLock lock(&mu);
          if (response.ok()) {
            ids.push_back(response->request_id());
          } else {
            EXPECT_EQ(response.status().code(), absl::StatusCode::kNotFound);
            ++errors;
          }
          if (static_cast<int>(ids.size()) + errors == kCalls) {
            all_done.Notify();
          }
        });
  }
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(errors, 4);
  EXPECT_EQ(ids.size(), 16u);
}

TEST_F(ClientTest, SegmentStreamKeepsOrder) {
  std::unique_ptr<Client> client = NewClient(Options());
  std::vector<v1::SegmentRequest> requests;
  for (int i = 0; i < 50; ++i) {
    requests.push_back(Request("", absl::StrCat("frame-", i)));
  }
  absl::StatusOr<std::vector<v1::SegmentResponse>> responses =
      client->SegmentStream(requests);
  ASSERT_TRUE(responses.ok()) << responses.status();
  ASSERT_EQ(responses->size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ((*responses)[i].request_id(), requests[i].request_id());
  }
  // An empty stream is fine too.
  responses = client->SegmentStream({});
  ASSERT_TRUE(responses.ok()) << responses.status();
  EXPECT_TRUE(responses->empty());
}

TEST_F(ClientTest, SegmentStreamReportsTheServersError) {
  std::unique_ptr<Client> client = NewClient(Options());
  std::vector<v1::SegmentRequest> requests(200, Request("fail-third"));
  absl::StatusOr<std::vector<v1::SegmentResponse>> responses =
      client->SegmentStream(requests);
  EXPECT_EQ(responses.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(responses.status().message(), HasSubstr("frame 3"));
}

TEST_F(ClientTest, StreamSession) {
  std::unique_ptr<Client> client = NewClient(Options());
  std::unique_ptr<SegmentStreamSession> session = client->OpenStream();
  v1::SegmentResponse response;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(session->Write(Request("", absl::StrCat("f", i))));
    ASSERT_TRUE(session->Read(&response));
    EXPECT_EQ(response.request_id(), absl::StrCat("f", i));
  }
  ASSERT_TRUE(session->WritesDone());
  EXPECT_FALSE(session->Read(&response));
  EXPECT_TRUE(session->Finish().ok());
  EXPECT_EQ(session->Finish().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ClientTest, AbandonedStreamSessionIsCancelled) {
  std::unique_ptr<Client> client = NewClient(Options());
  std::unique_ptr<SegmentStreamSession> session = client->OpenStream();
  ASSERT_TRUE(session->Write(Request("", "x")));
  session.reset();  // Without WritesDone or Finish: must not hang.
  EXPECT_TRUE(client->Segment(Request("")).ok());
}

TEST_F(ClientTest, RetriesUnavailable) {
  ClientOptions options = Options();
  options.retry_max_attempts = 3;
  std::unique_ptr<Client> client = NewClient(options);
  // Larger than gRPC's default 256 KiB retry buffer.
  v1::SegmentRequest request = Request("flaky:2");
  request.mutable_image()->set_encoded(std::string(1 << 20, 'x'));
  absl::StatusOr<v1::SegmentResponse> response = client->Segment(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(service_.segment_calls(), 3);
}

TEST_F(ClientTest, NoRetriesWhenDisabled) {
  ClientOptions options = Options();
  options.retry_max_attempts = 1;
  std::unique_ptr<Client> client = NewClient(options);
  absl::StatusOr<v1::SegmentResponse> response =
      client->Segment(Request("flaky:1"));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(response.status().message(), "warming up");
  EXPECT_EQ(service_.segment_calls(), 1);
}

TEST_F(ClientTest, DeadlineExceeded) {
  ClientOptions options = Options();
  options.default_deadline_ms = 100;
  std::unique_ptr<Client> client = NewClient(options);
  absl::StatusOr<v1::SegmentResponse> response =
      client->Segment(Request("block"));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
  // A per-call deadline overrides the default.
  CallOptions call;
  call.deadline_ms = 50;
  options.default_deadline_ms = 0;
  client = NewClient(options);
  response = client->Segment(Request("block"), call);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ClientTest, DestructorCancelsAsyncCalls) {
  ClientOptions options = Options();
  options.default_deadline_ms = 0;
  std::unique_ptr<Client> client = NewClient(options);
  ASSERT_TRUE(client->WaitForConnected(absl::Seconds(5)).ok());
  std::atomic<int> cancelled{0};
  for (int i = 0; i < 3; ++i) {
    client->SegmentAsync(Request("block"),
                         [&](absl::StatusOr<v1::SegmentResponse> response) {
                           if (absl::IsCancelled(response.status())) {
                             ++cancelled;
                           }
                         });
  }
  // Let the calls reach the server before cancelling them.
  const absl::Time give_up = absl::Now() + absl::Seconds(5);
  while (service_.segment_calls() < 3 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  const absl::Time start = absl::Now();
  client.reset();
  EXPECT_EQ(cancelled.load(), 3);  // Every callback ran before the return.
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));
}

TEST_F(ClientTest, MessageLimitIsEnforced) {
  ClientOptions options = Options();
  options.max_message_bytes = 1000;
  std::unique_ptr<Client> client = NewClient(options);
  v1::SegmentRequest request = Request("");
  request.mutable_image()->set_encoded(std::string(5000, 'x'));
  absl::StatusOr<v1::SegmentResponse> response = client->Segment(request);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(ClientTest, CreateWithChannel) {
  std::unique_ptr<Client> client = Client::CreateWithChannel(
      server_->InProcessChannel(grpc::ChannelArguments()), ClientOptions());
  absl::StatusOr<v1::SegmentResponse> response =
      client->Segment(Request("", "in-process"));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->request_id(), "in-process");
}

TEST(ClientOptionsTest, WaitForConnectedTimesOut) {
  // Port 1 on loopback: nothing listens there.
  ClientOptions options;
  options.target = "127.0.0.1:1";
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::Status status = (*client)->WaitForConnected(absl::Milliseconds(300));
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("127.0.0.1:1"));
}

TEST(ClientOptionsTest, InvalidOptionsAreRefused) {
  std::vector<ClientOptions> bad(7);
  bad[0].target = "";
  bad[1].default_deadline_ms = -1;
  bad[2].retry_max_attempts = 0;
  bad[3].retry_max_attempts = 6;
  bad[4].retry_initial_backoff_ms = 0;
  bad[5].max_message_bytes = 0;
  bad[6].load_balancing_policy = "grpclb";
  for (const ClientOptions& options : bad) {
    EXPECT_EQ(Client::Create(options).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(ClientOptionsTest, ServiceConfig) {
  ClientOptions options;
  std::string config = MakeServiceConfigJson(options);
  EXPECT_EQ(grpc::experimental::ValidateServiceConfigJSON(config), "");
  EXPECT_THAT(config, HasSubstr("\"maxAttempts\":3"));
  EXPECT_THAT(config, HasSubstr("\"initialBackoff\":\"0.100s\""));
  EXPECT_THAT(config, HasSubstr("\"maxBackoff\":\"2.000s\""));
  EXPECT_THAT(
      config,
      HasSubstr("\"retryableStatusCodes\":[\"UNAVAILABLE\",\"CANCELLED\"]"));
  EXPECT_THAT(config, Not(HasSubstr("round_robin")));

  options.target = "dns:///segserve.example:50051";
  config = MakeServiceConfigJson(options);
  EXPECT_EQ(grpc::experimental::ValidateServiceConfigJSON(config), "");
  EXPECT_THAT(config, HasSubstr("\"loadBalancingConfig\":[{\"round_robin\""));

  options.retry_max_attempts = 1;
  options.load_balancing_policy = "pick_first";
  config = MakeServiceConfigJson(options);
  EXPECT_EQ(grpc::experimental::ValidateServiceConfigJSON(config), "");
  EXPECT_THAT(config, Not(HasSubstr("retryPolicy")));
  EXPECT_THAT(config, HasSubstr("pick_first"));

  options.load_balancing_policy = "";
  options.target = "127.0.0.1:1";
  EXPECT_EQ(MakeServiceConfigJson(options), "{}");
}

TEST(ClientOptionsTest, StatusConversion) {
  EXPECT_TRUE(ToAbslStatus(grpc::Status::OK).ok());
  const absl::Status status = ToAbslStatus(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full"));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(status.message(), "queue full");
  for (int code = 1; code <= 16; ++code) {
    EXPECT_EQ(
        static_cast<int>(
            ToAbslStatus(grpc::Status(static_cast<grpc::StatusCode>(code), "x"))
                .code()),
        code);
  }
}

}  // namespace
}  // namespace segserve
