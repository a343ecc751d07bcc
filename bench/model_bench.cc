// model_bench: in-process CPU throughput of the builtin architectures, as a
// fraction of this machine's GEMM rate measured in the same run.
//
//   model_bench [--threads N] [--repeats R] [--arch a,b,...] [--batches 1,4,8]
//               [--optimized 0|1] [--caching_allocator 0|1]
//
// For each architecture at 512x512 (SGCPNet also at 768x1536) and each batch
// size it times the network's forward pass (eval mode, InferenceMode,
// random weights, a random normalized batch), after one warm-up pass, and
// prints the median over R repeats as images/s and as achieved GFLOP/s:
// 2 x (conv + linear multiply-accumulates, model/mac_counter.h) per image x
// images/s. The GEMM rate is the median of R square fp32 matrix products
// (1024^3) on the same threads, measured before and after the models; the
// ratio uses their mean. With --optimized 1 (default) the networks are
// prepared the way the server loads them (PrepareForInference); with
// --caching_allocator 1 (default) model/cpu_allocator.h is installed.
//
// Not run by ctest: it takes minutes. Results and method: BENCHMARKS.md.

#include <ATen/Parallel.h>
#include <torch/types.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "model/architectures.h"
#include "model/checkpoint.h"
#include "model/cpu_allocator.h"
#include "model/mac_counter.h"
#include "model/torch_runtime.h"

namespace segserve {
namespace {

constexpr int64_t kGemmSide = 1024;

struct Options {
  int threads = 0;  // 0: one per hardware thread.
  int repeats = 3;
  std::vector<std::string> architectures = {"sgcpnet", "cgrseg_t", "cgrseg_b",
                                            "cgrseg_l"};
  std::vector<int64_t> batches = {1, 4, 8};
  bool optimized = true;
  bool caching_allocator = true;
};

double Seconds(const std::function<void()>& run) {
  const auto start = std::chrono::steady_clock::now();
  run();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
      .count();
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// GFLOP/s of a kGemmSide^3 fp32 matrix product on `threads` BLAS threads,
// median over `repeats`. The models run with OpenBLAS single-threaded, as in
// the server (SetTorchThreads); the reference GEMM uses every thread.
double GemmRate(int repeats, int threads) {
  SetBlasThreads(threads);
  const torch::Tensor a = torch::randn({kGemmSide, kGemmSide});
  const torch::Tensor b = torch::randn({kGemmSide, kGemmSide});
  torch::Tensor c = torch::mm(a, b);  // Warm-up.
  std::vector<double> times;
  for (int i = 0; i < std::max(repeats, 5); ++i) {
    times.push_back(Seconds([&] { torch::mm_out(c, a, b); }));
  }
  SetBlasThreads(1);
  return 2.0 * kGemmSide * kGemmSide * kGemmSide / Median(times) / 1e9;
}

struct Row {
  std::string architecture;
  int64_t height, width, batch;
  double images_per_s;
  double gflop_per_image;
};

bool ParseList(const std::string& text, std::vector<int64_t>* values) {
  values->clear();
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t value;
    if (!absl::SimpleAtoi(part, &value) || value < 1) return false;
    values->push_back(value);
  }
  return !values->empty();
}

bool ParseArgs(int argc, char** argv, Options* options) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--threads") {
      if (!absl::SimpleAtoi(value, &options->threads)) return false;
    } else if (flag == "--repeats") {
      if (!absl::SimpleAtoi(value, &options->repeats) || options->repeats < 1) {
        return false;
      }
    } else if (flag == "--arch") {
      options->architectures = absl::StrSplit(value, ',');
    } else if (flag == "--batches") {
      if (!ParseList(value, &options->batches)) return false;
    } else if (flag == "--optimized") {
      options->optimized = value != "0";
    } else if (flag == "--caching_allocator") {
      options->caching_allocator = value != "0";
    } else {
      return false;
    }
  }
  return argc % 2 == 1;
}

int Run(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, &options)) {
    std::fprintf(stderr,
                 "usage: model_bench [--threads N] [--repeats R] "
                 "[--arch a,b,...] [--batches 1,4,8] [--optimized 0|1] "
                 "[--caching_allocator 0|1]\n");
    return 2;
  }
  const int threads =
      options.threads > 0
          ? options.threads
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  SetTorchThreads(threads);
  if (options.caching_allocator) InstallCachingCpuAllocator();
  torch::manual_seed(0);
  std::printf("LibTorch %s, intra-op threads %d, repeats %d (median), %s, %s\n",
              TORCH_VERSION, at::get_num_threads(), options.repeats,
              options.optimized ? "prepared for inference" : "as constructed",
              options.caching_allocator ? "caching CPU allocator"
                                        : "LibTorch's CPU allocator");
  std::fflush(stdout);
  const double gemm_before = GemmRate(options.repeats, threads);
  std::printf("GEMM %lld^3 fp32: %.1f GFLOP/s\n",
              static_cast<long long>(kGemmSide), gemm_before);
  std::fflush(stdout);

  std::vector<Row> rows;
  std::printf("%-10s %-9s %5s %9s %10s %9s\n", "arch", "input", "batch",
              "images/s", "GFLOP/img", "GFLOP/s");
  for (const std::string& architecture : options.architectures) {
    absl::StatusOr<BuiltinNetwork> network =
        CreateBuiltinNetwork(architecture, DefaultNumClasses(architecture));
    if (!network.ok()) {
      std::fprintf(stderr, "%s\n", network.status().ToString().c_str());
      return 1;
    }
    network->module->eval();
    if (options.optimized) PrepareForInference(*network);
    std::vector<std::pair<int64_t, int64_t>> sizes = {{512, 512}};
    if (architecture == "sgcpnet") sizes.push_back({768, 1536});
    for (auto [height, width] : sizes) {
      c10::InferenceMode inference_mode;
      double macs_per_image;
      {
        MacCounter counter;
        network->forward(torch::zeros({1, 3, height, width}));
        macs_per_image = static_cast<double>(counter.count().total());
      }
      for (int64_t batch : options.batches) {
        const torch::Tensor input = torch::randn({batch, 3, height, width});
        network->forward(input);  // Warm-up: allocations, oneDNN kernels.
        std::vector<double> times;
        for (int r = 0; r < options.repeats; ++r) {
          times.push_back(Seconds([&] { network->forward(input); }));
        }
        Row row{architecture,
                height,
                width,
                batch,
                batch / Median(times),
                2 * macs_per_image / 1e9};
        std::printf("%-10s %4lldx%-4lld %5lld %9.2f %10.3f %9.1f\n",
                    architecture.c_str(), static_cast<long long>(height),
                    static_cast<long long>(width),
                    static_cast<long long>(batch), row.images_per_s,
                    row.gflop_per_image,
                    row.images_per_s * row.gflop_per_image);
        std::fflush(stdout);
        rows.push_back(row);
      }
    }
  }
  const double gemm_after = GemmRate(options.repeats, threads);
  const double gemm = (gemm_before + gemm_after) / 2;
  std::printf("GEMM %lld^3 fp32 after the models: %.1f GFLOP/s; using %.1f\n\n",
              static_cast<long long>(kGemmSide), gemm_after, gemm);
  std::printf("%-10s %-9s %5s %9s %8s\n", "arch", "input", "batch", "images/s",
              "of GEMM");
  for (const Row& row : rows) {
    std::printf("%-10s %4lldx%-4lld %5lld %9.2f %7.1f%%\n",
                row.architecture.c_str(), static_cast<long long>(row.height),
                static_cast<long long>(row.width),
                static_cast<long long>(row.batch), row.images_per_s,
                100 * row.images_per_s * row.gflop_per_image / gemm);
  }
  return 0;
}

}  // namespace
}  // namespace segserve

int main(int argc, char** argv) {
  try {
    return segserve::Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "model_bench: %s\n",
                 segserve::ExceptionMessage(e).c_str());
    return 1;
  }
}
