// at::RecordFunction's layout depends on NDEBUG (a debug-only member), and
// Debian's LibTorch is built with NDEBUG: this file must see the same layout
// whatever the project's build type, or reading its inputs crashes.
#ifndef NDEBUG
#define NDEBUG
#endif

#include "model/mac_counter.h"

#include <ATen/core/ivalue.h>
#include <ATen/record_function.h>

#include <cstring>
#include <memory>

namespace segserve {
namespace {

// The count of the innermost live counter on this thread, and how deep the
// thread is inside counted ops (so that nested calls are not counted twice).
thread_local MacCount* active_count = nullptr;
thread_local int counted_depth = 0;

enum class OpKind { kNone, kConv, kTransposedConv, kLinear };

struct OpContext : at::ObserverContext {
  OpKind kind = OpKind::kNone;
  int64_t macs_per_element = 0;  // Per output (or, transposed, input) element.
  int64_t input_elements = 0;
};

bool NameIs(const char* name, const char* expected) {
  return std::strcmp(name, expected) == 0;
}

OpKind KindOf(const at::RecordFunction& fn) {
  const char* name = fn.name();
  if (NameIs(name, "aten::linear")) return OpKind::kLinear;
  if (NameIs(name, "aten::conv1d") || NameIs(name, "aten::conv2d") ||
      NameIs(name, "aten::conv3d")) {
    return OpKind::kConv;
  }
  if (NameIs(name, "aten::convolution") || NameIs(name, "aten::_convolution")) {
    // (input, weight, bias, stride, padding, dilation, transposed, ...).
    const auto inputs = fn.inputs();
    if (inputs.size() > 6 && inputs[6].isBool() && inputs[6].toBool()) {
      return OpKind::kTransposedConv;
    }
    return OpKind::kConv;
  }
  return OpKind::kNone;
}

std::unique_ptr<at::ObserverContext> OnStart(const at::RecordFunction& fn) {
  if (active_count == nullptr) return nullptr;
  const OpKind kind = KindOf(fn);
  if (kind == OpKind::kNone) return nullptr;
  auto context = std::make_unique<OpContext>();
  ++counted_depth;
  if (counted_depth > 1) return context;  // Nested: kind stays kNone.
  const auto inputs = fn.inputs();
  if (inputs.size() < 2 || !inputs[0].isTensor() || !inputs[1].isTensor()) {
    return context;
  }
  const at::Tensor& input = inputs[0].toTensor();
  const at::Tensor& weight = inputs[1].toTensor();
  if (weight.dim() < 1 || weight.size(0) == 0) return context;
  context->kind = kind;
  context->input_elements = input.numel();
  // Linear weights are out x in; conv weights are out x in/groups x kernel
  // (transposed: in x out/groups x kernel), so one output element takes
  // weight[0].numel() products.
  context->macs_per_element = kind == OpKind::kLinear
                                  ? weight.size(-1)
                                  : weight.numel() / weight.size(0);
  return context;
}

void OnEnd(const at::RecordFunction& fn, at::ObserverContext* base) {
  if (base == nullptr) return;
  --counted_depth;
  auto* context = static_cast<OpContext*>(base);
  if (context->kind == OpKind::kNone || active_count == nullptr) return;
  if (context->kind == OpKind::kTransposedConv) {
    active_count->conv += context->input_elements * context->macs_per_element;
    return;
  }
  const auto& outputs = fn.outputs();
  if (outputs.empty() || !outputs[0].isTensor()) return;
  const int64_t macs =
      outputs[0].toTensor().numel() * context->macs_per_element;
  if (context->kind == OpKind::kLinear) {
    active_count->linear += macs;
  } else {
    active_count->conv += macs;
  }
}

}  // namespace

MacCounter::MacCounter() : previous_(active_count) {
  active_count = &count_;
  // One callback per thread: an inner counter only redirects the counts.
  if (previous_ == nullptr) {
    handle_ =
        at::addThreadLocalCallback(at::RecordFunctionCallback(&OnStart, &OnEnd)
                                       .needsInputs(true)
                                       .needsOutputs(true)
                                       .scopes({at::RecordScope::FUNCTION}));
  }
}

MacCounter::~MacCounter() {
  if (previous_ == nullptr) {
    at::removeCallback(handle_);
  } else {
    previous_->conv += count_.conv;
    previous_->linear += count_.linear;
  }
  active_count = previous_;
}

}  // namespace segserve
