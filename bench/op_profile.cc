// at::RecordFunction's layout depends on NDEBUG; Debian's LibTorch is built
// with it (see model/mac_counter.cc).
#ifndef NDEBUG
#define NDEBUG
#endif

#include "bench/op_profile.h"

#include <ATen/core/ivalue.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <sstream>

namespace segserve {
namespace {

using Clock = std::chrono::steady_clock;

thread_local OpProfile* active_profile = nullptr;
thread_local int depth = 0;

struct OpContext : at::ObserverContext {
  bool timed = false;
  std::string key;
  OpRow call;
  int64_t macs_per_output = 0;
  Clock::time_point start;
};

void Describe(std::ostringstream& out, const at::Tensor& tensor) {
  out << "[";
  for (int64_t i = 0; i < tensor.dim(); ++i) {
    out << (i ? "," : "") << tensor.size(i);
  }
  out << "]";
  if (tensor.dim() == 4 &&
      tensor.is_contiguous(at::MemoryFormat::ChannelsLast) &&
      !tensor.is_contiguous()) {
    out << "cl";
  }
}

bool IsConvolution(const std::string& op) {
  return op == "aten::conv2d" || op == "aten::convolution" ||
         op == "aten::_convolution" || op == "aten::mkldnn_convolution";
}

// The op's name, arguments and multiply-accumulates per output element.
void Describe(const at::RecordFunction& fn, OpContext& context) {
  context.call.op = fn.name();
  std::ostringstream details;
  const auto inputs = fn.inputs();
  for (const c10::IValue& input : inputs) {
    if (input.isTensor() && input.toTensor().defined()) {
      Describe(details, input.toTensor());
      details << " ";
    }
  }
  if (IsConvolution(context.call.op) && inputs.size() > 1 &&
      inputs[1].isTensor()) {
    // conv2d(input, weight, bias, stride, padding, dilation, groups): one
    // output element takes weight[0].numel() products, as MacCounter counts.
    const at::Tensor& weight = inputs[1].toTensor();
    context.macs_per_output =
        weight.numel() / std::max<int64_t>(1, weight.size(0));
    if (inputs.size() > 6 && inputs[6].isInt() && inputs[6].toInt() > 1) {
      details << (weight.size(1) == 1 ? "depthwise " : "grouped ");
    }
    if (inputs.size() > 3 && inputs[3].isIntList()) {
      const auto stride = inputs[3].toIntList();
      if (!stride.empty() && stride.get(0) > 1) {
        details << "stride " << stride.get(0);
      }
    }
  }
  context.call.details = details.str();
  context.key = context.call.op + " " + context.call.details;
}

std::unique_ptr<at::ObserverContext> OnStart(const at::RecordFunction& fn) {
  if (active_profile == nullptr) return nullptr;
  auto context = std::make_unique<OpContext>();
  if (++depth > 1) return context;
  try {
    Describe(fn, *context);
  } catch (...) {
    // Left out of the profile; OnEnd still brings the depth back.
    return context;
  }
  context->timed = true;
  context->start = Clock::now();
  return context;
}

void OnEnd(const at::RecordFunction& fn, at::ObserverContext* base) {
  if (base == nullptr) return;
  --depth;
  auto* context = static_cast<OpContext*>(base);
  if (!context->timed || active_profile == nullptr) return;
  context->call.seconds =
      std::chrono::duration<double>(Clock::now() - context->start).count();
  context->call.calls = 1;
  const auto& outputs = fn.outputs();
  if (context->macs_per_output > 0 && !outputs.empty() &&
      outputs[0].isTensor()) {
    context->call.macs =
        outputs[0].toTensor().numel() * context->macs_per_output;
  }
  active_profile->Add(context->key, context->call);
}

}  // namespace

OpProfile::OpProfile() {
  active_profile = this;
  depth = 0;
  handle_ =
      at::addThreadLocalCallback(at::RecordFunctionCallback(&OnStart, &OnEnd)
                                     .needsInputs(true)
                                     .needsOutputs(true)
                                     .scopes({at::RecordScope::FUNCTION}));
}

OpProfile::~OpProfile() {
  at::removeCallback(handle_);
  active_profile = nullptr;
}

void OpProfile::Add(const std::string& key, const OpRow& call) {
  OpRow& row = rows_[key];
  if (row.calls == 0) {
    row.op = call.op;
    row.details = call.details;
  }
  row.calls += call.calls;
  row.seconds += call.seconds;
  row.macs += call.macs;
}

std::vector<OpRow> OpProfile::Rows() const {
  std::vector<OpRow> rows;
  for (const auto& [key, row] : rows_) rows.push_back(row);
  std::sort(rows.begin(), rows.end(), [](const OpRow& a, const OpRow& b) {
    return a.seconds > b.seconds;
  });
  return rows;
}

}  // namespace segserve
