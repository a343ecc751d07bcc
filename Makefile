# The front door. Two commands do everything on a fresh Debian 12 machine:
#   make serve   set up, build (Release) and serve model_repository/
#   make test    set up, build and run the whole ctest suite
# and:
#   make demo           serve, segment one synthetic scene, write the input,
#                       mask and overlay to demo/ and print per-class IoU
#   make train-default  retrain the shipped scene models from scratch
#   make train-teacher  train the distillation teacher, scenes-cgrseg-t
#   make distill-ablation  train and score the distillation ablation's arms
#   make ssa-ablation   train and score the classifier ablation (DPG, SSA)
#   make distill-default  fine-tune the default with and without the teacher
#   make bench          run the serving benchmarks (about 10 minutes on a
#                       quiet machine) and update BENCHMARKS.md
#   make bench-costs    time and memory against image size, concurrency and
#                       models loaded, with charts (docs/bench/)
#   make soak           SOAK_MINUTES (30) at SOAK_LOAD (0.7) of capacity: memory and p99
#                       must not drift
#   make image          build the container image segserve:cpu offline
#   make test-image     run it as the kubelet runs deploy/overlays/cpu
#   make fuzz           build the libFuzzer targets (clang, ASan + UBSan) and
#                       run each for FUZZ_SECONDS (default 60)
#   make test-sanitize  build with ASan + UBSan and run the suite under them
#   make gpu-kit        the GPU build kit: what a machine with only PyTorch
#                       lacks to build segserve (scripts/gpu-kit/README.md)
#   make test-gpu-kit   build and test with the kit in a clean Debian root
BUILD_DIR ?= build
JOBS ?= 2
GRPC_PORT ?= 50051
METRICS_PORT ?= 8002
CMAKE_ARGS ?=

.PHONY: all setup configure build serve test demo train-default train-teacher distill-ablation ssa-ablation distill-default bench bench-costs soak clean format image test-image fuzz test-sanitize gpu-kit test-gpu-kit

all: build

setup:
	bash scripts/setup-debian.sh

configure: setup
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

serve: build
	$(BUILD_DIR)/server/segserve --model_repository=model_repository \
	  --default_model=scenes-sgcpnet \
	  --grpc_port=$(GRPC_PORT) --metrics_port=$(METRICS_PORT)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

SEED ?= 3
demo: build
	bash scripts/demo.sh $(BUILD_DIR) $(SEED)

train-default: build
	bash scripts/train-default.sh $(BUILD_DIR)

train-teacher: build
	bash scripts/train-teacher.sh $(BUILD_DIR)

TEACHER ?= model_repository/scenes-cgrseg-t
distill-ablation: build
	bash scripts/distill-ablation.sh $(BUILD_DIR) $(TEACHER)

ssa-ablation: build
	bash scripts/ssa-ablation.sh $(BUILD_DIR)

distill-default: build
	bash scripts/distill-default.sh $(BUILD_DIR) shipped control kl

BENCH_REPEATS ?= 3
bench: build
	/usr/bin/python3 bench/run_bench.py --build $(BUILD_DIR) --repeats $(BENCH_REPEATS)

# Server time and memory against image size, concurrency and models loaded
# (about 10 minutes), and a long run at 70% of capacity (SOAK_MINUTES).
bench-costs: build
	/usr/bin/python3 bench/cost_curves.py --build $(BUILD_DIR)

SOAK_MINUTES ?= 30
SOAK_LOAD ?= 0.7
soak: build
	/usr/bin/python3 bench/soak.py --build $(BUILD_DIR) --minutes $(SOAK_MINUTES) \
	  --load $(SOAK_LOAD)

# The container image segserve:cpu (docker/README.md), built offline from
# segserve-base:bookworm, and its end-to-end test against deploy/overlays/cpu.
# IMAGE_FROM=build takes segserve and segclient from $(BUILD_DIR) instead of
# compiling them in the image's builder stage (CI: the image ships the
# binaries make test tested).
IMAGE_FROM ?= source
image: setup
	SEGSERVE_BUILD_DIR=$(BUILD_DIR) SEGSERVE_IMAGE_FROM=$(IMAGE_FROM) \
	  bash docker/build-image.sh

test-image: build image
	SEGSERVE_BUILD_DIR=$(BUILD_DIR) /usr/bin/python3 tests/deploy/image/image_test.py \
	  --segclient $(BUILD_DIR)/tools/segclient --segload $(BUILD_DIR)/tools/segload/segload

FUZZ_SECONDS ?= 60
fuzz: setup
	FUZZ_BUILD_DIR=$(BUILD_DIR)-fuzz JOBS=$(JOBS) bash scripts/fuzz.sh $(FUZZ_SECONDS)

test-sanitize: setup
	SANITIZE_BUILD_DIR=$(BUILD_DIR)-asan JOBS=$(JOBS) bash scripts/sanitize.sh

gpu-kit: setup
	bash scripts/gpu-kit/make-kit.sh

test-gpu-kit: setup
	SEGSERVE_BUILD_DIR=$(BUILD_DIR) bash scripts/gpu-kit/test-kit.sh $(KIT_TEST)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	-SEGSERVE_BUILD_DIR=$(BUILD_DIR) bash docker/start-dockerd.sh stop
	rm -rf $(BUILD_DIR)
