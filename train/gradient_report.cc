#include "train/gradient_report.h"

#include <torch/autograd.h>

#include "absl/strings/str_format.h"

namespace segserve {
namespace {

// The term's gradient on every parameter, flattened into one vector
// (zeros where the term does not reach).
torch::Tensor FlatGradient(const torch::Tensor& value,
                           const std::vector<torch::Tensor>& parameters) {
  const std::vector<torch::Tensor> grads = torch::autograd::grad(
      {value}, parameters, /*grad_outputs=*/{}, /*retain_graph=*/true,
      /*create_graph=*/false, /*allow_unused=*/true);
  std::vector<torch::Tensor> flat;
  flat.reserve(grads.size());
  for (size_t i = 0; i < grads.size(); ++i) {
    flat.push_back(grads[i].defined() ? grads[i].flatten()
                                      : torch::zeros({parameters[i].numel()},
                                                     parameters[i].options()));
  }
  return torch::cat(flat);
}

}  // namespace

std::string GradientReport(const std::vector<WeightedLoss>& terms,
                           const std::vector<torch::Tensor>& parameters) {
  std::vector<torch::Tensor> trained;
  for (const torch::Tensor& p : parameters) {
    if (p.requires_grad()) trained.push_back(p);
  }
  std::string line = "gradients:";
  torch::Tensor reference;
  for (const WeightedLoss& term : terms) {
    if (!term.value.defined() || !term.value.requires_grad()) continue;
    const torch::Tensor g = FlatGradient(term.value, trained);
    const double norm = g.norm().item<double>();
    absl::StrAppendFormat(&line, "%s %s %.2e", reference.defined() ? "," : "",
                          term.name, norm);
    if (!reference.defined()) {
      reference = g;
      continue;
    }
    const double cosine =
        (g.dot(reference) / (norm * reference.norm() + 1e-30)).item<double>();
    absl::StrAppendFormat(&line, " (cos %+.2f)", cosine);
  }
  return line;
}

}  // namespace segserve
