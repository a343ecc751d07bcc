#include "tools/segload/http_sender.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdint>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/status_macros.h"
#include "rapidjson/document.h"

namespace segserve {
namespace {

// One input as an HTTP request, made once.
struct HttpInput {
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int width = 0;
  int height = 0;
  v1::MaskEncoding encoding = v1::PNG;
};

// Fires an event_base_once callback at once.
constexpr timeval kNow = {0, 0};

const char* EncodingName(v1::MaskEncoding encoding) {
  return encoding == v1::RAW ? "raw" : encoding == v1::RLE ? "rle" : "png";
}

absl::StatusOr<HttpInput> ToHttp(const LoadInput& input,
                                 const HttpSenderOptions& options) {
  const v1::SegmentRequest& segment = *input.request;
  if (segment.model().empty()) {
    return absl::InvalidArgumentError(
        "HTTP requests name their model in the path; set --model");
  }
  HttpInput out;
  out.width = input.width;
  out.height = input.height;
  out.encoding = segment.mask_encoding();
  const std::string model = absl::StrCat("/v2/models/", segment.model());
  if (options.image_endpoint) {
    out.path = absl::StrCat(
        model, "/segment?mask_encoding=", EncodingName(out.encoding));
    if (segment.image().has_raw()) {
      const v1::RawImage& raw = segment.image().raw();
      absl::StrAppend(&out.path, "&width=", raw.width(),
                      "&height=", raw.height(), "&format=",
                      raw.format() == v1::GRAY8  ? "gray8"
                      : raw.format() == v1::BGR8 ? "bgr8"
                                                 : "rgb8");
      out.headers.emplace_back("Content-Type", "application/octet-stream");
      out.body = raw.data();
    } else {
      // The bytes tell the decoder the format; any image type will do.
      out.headers.emplace_back("Content-Type", "image/png");
      out.body = segment.image().encoded();
    }
    if (out.encoding == v1::PNG)
      out.headers.emplace_back("Accept", "image/png");
    return out;
  }
  out.path = absl::StrCat(model, "/infer");
  std::string tail;
  std::string input_json;
  if (segment.image().has_raw()) {
    const v1::RawImage& raw = segment.image().raw();
    tail = raw.data();
    input_json = absl::StrCat(R"({"name":"IMAGE","datatype":"UINT8","shape":[)",
                              raw.height(), ",", raw.width(), ",3]");
  } else {
    tail = PackBytesElement(segment.image().encoded());
    input_json = R"({"name":"IMAGE","datatype":"BYTES","shape":[1])";
  }
  const std::string json = absl::StrCat(
      R"({"parameters":{"mask_encoding":")", EncodingName(out.encoding),
      R"("},"inputs":[)", input_json, R"(,"parameters":{"binary_data_size":)",
      tail.size(),
      R"(}}],"outputs":[{"name":"MASK","parameters":{"binary_data":true}}]})");
  out.headers.emplace_back("Content-Type", "application/octet-stream");
  out.headers.emplace_back("Inference-Header-Content-Length",
                           absl::StrCat(json.size()));
  out.body = json + tail;
  return out;
}

absl::StatusCode CodeOf(int http) {
  switch (http) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 413:
    case 429:
      return absl::StatusCode::kResourceExhausted;
    case 499:
      return absl::StatusCode::kCancelled;
    case 0:
    case 503:
      return absl::StatusCode::kUnavailable;
    case 504:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return absl::StatusCode::kInternal;
  }
}

std::string Header(evhttp_request* request, const char* name) {
  const char* value =
      evhttp_find_header(evhttp_request_get_input_headers(request), name);
  return value ? value : "";
}

// The answer to `input`, as segload measures it.
absl::StatusOr<v1::SegmentResponse> ToResponse(const HttpInput& input,
                                               evhttp_request* request,
                                               const std::string& body) {
  const int code = request ? evhttp_request_get_response_code(request) : 0;
  if (code != 200) {
    rapidjson::Document error;
    error.Parse(body.data(), body.size());
    const std::string message =
        !error.HasParseError() && error.IsObject() &&
                error.HasMember("error") && error["error"].IsString()
            ? error["error"].GetString()
            : absl::StrCat("HTTP ", code, code == 0 ? " (no connection)" : "");
    return absl::Status(CodeOf(code), message);
  }
  v1::SegmentResponse response;
  v1::Mask* mask = response.mutable_mask();
  mask->set_width(uint32_t(input.width));
  mask->set_height(uint32_t(input.height));
  mask->set_encoding(input.encoding);
  if (Header(request, "Content-Type") == "image/png") {
    response.set_model(Header(request, "Segserve-Model"));
    response.set_model_version(Header(request, "Segserve-Model-Version"));
    mask->set_data(body);
    return response;
  }
  size_t json_length = body.size();
  if (const std::string length =
          Header(request, "Inference-Header-Content-Length");
      !length.empty() &&
      (!absl::SimpleAtoi(length, &json_length) || json_length > body.size())) {
    return absl::DataLossError("the answer's JSON length is wrong");
  }
  rapidjson::Document json;
  json.Parse(body.data(), json_length);
  if (json.HasParseError() || !json.IsObject()) {
    return absl::DataLossError("the answer is not JSON");
  }
  auto text = [&json](const char* key) {
    return json.HasMember(key) && json[key].IsString()
               ? std::string(json[key].GetString())
               : std::string();
  };
  if (json.HasMember("mask")) {  // The image endpoint's JSON.
    response.set_model(text("model"));
    response.set_model_version(text("model_version"));
    const auto& data = json["mask"]["data"];
    std::string decoded;
    if (!data.IsString() ||
        !absl::Base64Unescape(
            absl::string_view(data.GetString(), data.GetStringLength()),
            &decoded)) {
      return absl::DataLossError("the answer's mask is not base64");
    }
    mask->set_data(std::move(decoded));
    return response;
  }
  response.set_model(text("model_name"));
  response.set_model_version(text("model_version"));
  std::string data = body.substr(json_length);
  if (input.encoding != v1::RAW) {
    if (data.size() < 4) return absl::DataLossError("MASK element is cut");
    data.erase(0, 4);  // One BYTES element: its length, then the mask.
  }
  mask->set_data(std::move(data));
  return response;
}

class HttpSender final : public RequestSender {
 public:
  HttpSender(HttpSenderOptions options, std::vector<HttpInput> prepared,
             const std::vector<LoadInput>& inputs)
      : options_(std::move(options)) {
    for (size_t i = 0; i < inputs.size(); ++i) {
      inputs_.emplace(inputs[i].request.get(), std::move(prepared[i]));
    }
    static std::once_flag threads_once;
    std::call_once(threads_once, [] { evthread_use_pthreads(); });
    base_ = event_base_new();
    loop_ = std::thread(
        [base = base_] { event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY); });
  }

  ~HttpSender() override {
    // Broken from inside the loop: a break asked before the loop thread
    // has entered event_base_loop would be cleared by it.
    event_base_once(
        base_, -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* base) {
          event_base_loopbreak(static_cast<event_base*>(base));
        },
        base_, &kNow);
    loop_.join();
    for (evhttp_connection* connection : idle_) {
      evhttp_connection_free(connection);
    }
    event_base_free(base_);
  }

  absl::StatusOr<v1::SegmentResponse> Send(
      const std::shared_ptr<const v1::SegmentRequest>& request) override {
    absl::Notification done;
    absl::StatusOr<v1::SegmentResponse> out;
    SendAsync(request, [&](absl::StatusOr<v1::SegmentResponse> result) {
      out = std::move(result);
      done.Notify();
    });
    done.WaitForNotification();
    return out;
  }

  void SendAsync(std::shared_ptr<const v1::SegmentRequest> request,
                 Done done) override {
    auto* call =
        new Call{this, &inputs_.at(request.get()), std::move(done), nullptr};
    event_base_once(
        base_, -1, EV_TIMEOUT,
        [](evutil_socket_t, short, void* arg) {
          auto* call = static_cast<Call*>(arg);
          call->sender->Start(call);
        },
        call, &kNow);
  }

 private:
  struct Call {
    HttpSender* sender;
    const HttpInput* input;
    Done done;
    evhttp_connection* connection;
  };

  // On the loop thread: a free keep-alive connection, or a new one.
  void Start(Call* call) {
    if (idle_.empty()) {
      evhttp_connection* connection = evhttp_connection_base_new(
          base_, nullptr, options_.host.c_str(), uint16_t(options_.port));
      evhttp_connection_set_timeout(
          connection,
          int(std::max<int64_t>(1, options_.deadline_ms / 1000) + 5));
      idle_.push_back(connection);
    }
    call->connection = idle_.back();
    idle_.pop_back();
    evhttp_request* request = evhttp_request_new(&HttpSender::OnAnswer, call);
    evkeyvalq* headers = evhttp_request_get_output_headers(request);
    evhttp_add_header(headers, "Host", options_.host.c_str());
    for (const auto& [name, value] : call->input->headers) {
      evhttp_add_header(headers, name.c_str(), value.c_str());
    }
    evhttp_add_header(headers, "Request-Timeout-Ms",
                      absl::StrCat(options_.deadline_ms).c_str());
    if (!options_.bearer_token.empty()) {
      evhttp_add_header(headers, "Authorization",
                        absl::StrCat("Bearer ", options_.bearer_token).c_str());
    }
    const std::string& body = call->input->body;
    evbuffer_add_reference(evhttp_request_get_output_buffer(request),
                           body.data(), body.size(), nullptr, nullptr);
    evhttp_make_request(call->connection, request, EVHTTP_REQ_POST,
                        call->input->path.c_str());
    // Requests go out at once, not held for Nagle's algorithm.
    const evutil_socket_t fd =
        bufferevent_getfd(evhttp_connection_get_bufferevent(call->connection));
    if (fd >= 0) {
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
  }

  static void OnAnswer(evhttp_request* request, void* arg) {
    auto* call = static_cast<Call*>(arg);
    std::string body;
    if (request != nullptr) {
      evbuffer* input = evhttp_request_get_input_buffer(request);
      body.resize(evbuffer_get_length(input));
      evbuffer_remove(input, body.data(), body.size());
    }
    absl::StatusOr<v1::SegmentResponse> result =
        ToResponse(*call->input, request, body);
    // A connection keeps going after an answer, reconnecting if the
    // server closed it.
    call->sender->idle_.push_back(call->connection);
    Done done = std::move(call->done);
    delete call;
    std::move(done)(std::move(result));
  }

  const HttpSenderOptions options_;
  absl::flat_hash_map<const v1::SegmentRequest*, HttpInput> inputs_;
  event_base* base_ = nullptr;
  std::vector<evhttp_connection*> idle_;  // Loop thread only.
  std::thread loop_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RequestSender>> MakeHttpSender(
    const HttpSenderOptions& options, const std::vector<LoadInput>& inputs) {
  std::vector<HttpInput> prepared;
  for (const LoadInput& input : inputs) {
    SEGSERVE_ASSIGN_OR_RETURN(HttpInput http, ToHttp(input, options));
    prepared.push_back(std::move(http));
  }
  return std::unique_ptr<RequestSender>(
      new HttpSender(options, std::move(prepared), inputs));
}

}  // namespace segserve
