#include "histocnn/train/distributed.h"

#include "histocnn/core/device.h"
#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/train/mixup.h"
#include "histocnn/train/options.h"

// Every LibTorch for Linux is built with Gloo, but only defines USE_C10D_GLOO for its own build:
// the macro unlocks the Gloo process group's header (which needs gloo's headers, libgloo-dev).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// NCCL only exists in a LibTorch built with CUDA; CMake defines HISTOCNN_WITH_NCCL there.
#ifdef HISTOCNN_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <thread>

extern char** environ;

namespace histocnn::train {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

const char* env_or_null(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, const char* text, int low, int high) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  HISTOCNN_CHECK(errno == 0 && end && *end == '\0' && v >= low && v <= high,
                 "environment variable {}='{}' must be a whole number in [{}, {}]", name, text, low, high);
  return static_cast<int>(v);
}

const char* required_env(const char* name, int world_size) {
  const char* v = env_or_null(name);
  HISTOCNN_CHECK(v != nullptr,
                 "WORLD_SIZE is {} but {} is not set: every process of a data-parallel job needs RANK, MASTER_ADDR "
                 "and MASTER_PORT (torchrun and a Kubeflow PyTorchJob set them; `histocnn train --nproc N` starts "
                 "local workers with them)",
                 world_size, name);
  return v;
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr.rfind("127.", 0) == 0 || addr == "::1";
}

}  // namespace

std::optional<DistributedEnvironment> DistributedEnvironment::from_environment() {
  const char* ws = env_or_null("WORLD_SIZE");
  if (!ws) return std::nullopt;
  DistributedEnvironment env;
  env.world_size = env_int("WORLD_SIZE", ws, 1, 1 << 20);
  if (env.world_size == 1) return std::nullopt;
  env.rank = env_int("RANK", required_env("RANK", env.world_size), 0, env.world_size - 1);
  env.master_addr = required_env("MASTER_ADDR", env.world_size);
  env.master_port = env_int("MASTER_PORT", required_env("MASTER_PORT", env.world_size), 1, 65535);
  if (const char* v = env_or_null("LOCAL_WORLD_SIZE")) env.local_world_size = env_int("LOCAL_WORLD_SIZE", v, 1, env.world_size);
  if (const char* v = env_or_null("LOCAL_RANK")) env.local_rank = env_int("LOCAL_RANK", v, 0, env.world_size - 1);
  return env;
}

bool is_main_process() {
  const auto env = DistributedEnvironment::from_environment();
  return !env || env->rank == 0;
}

bool prints_run_report() { return is_main_process() && !env_or_null("HISTOCNN_LOCAL_WORKER"); }

// ---------------------------------------------------------------------------------------------
// The process group

struct ProcessGroup::Impl {
  DistributedEnvironment env;
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::string backend;
  torch::Device device{torch::kCPU};       // the training tensors
  torch::Device comm_device{torch::kCPU};  // where the backend wants its tensors

  [[noreturn]] void fail(const char* what, const std::string& why) const {
    HISTOCNN_FAIL_IO("rank {} of {}: {} failed: {}. Another process of the job has probably stopped (its own "
                     "error says why); the checkpoint of the last complete epoch is kept, and rerunning the same "
                     "command resumes from it",
                     env.rank, env.world_size, what, why);
  }

  // Runs a collective, turning c10d's and Gloo's errors into one message that names this rank.
  template <typename F>
  void run(const char* what, F&& f) const {
    try {
      f();
    } catch (const c10::Error& e) {
      fail(what, e.what_without_backtrace());
    } catch (const std::exception& e) {
      fail(what, e.what());
    }
  }

  torch::Tensor to_comm(const torch::Tensor& t) const { return t.to(comm_device).contiguous(); }

  // Element-wise sum over ranks of one tensor, in place (one collective).
  void all_reduce(torch::Tensor& t, const char* what) const {
    std::vector<at::Tensor> v{to_comm(t)};
    run(what, [&] { pg->allreduce(v)->wait(); });
    if (!v[0].is_same(t)) t.copy_(v[0]);
  }

  void broadcast(torch::Tensor& t, int root, const char* what) const {
    std::vector<at::Tensor> v{to_comm(t)};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    run(what, [&] { pg->broadcast(v, o)->wait(); });
    if (!v[0].is_same(t)) t.copy_(v[0]);
  }
};

namespace {

// Flattens tensors of one dtype into one buffer, applies `op` to it, and copies the result back:
// one collective for many small tensors.
void flat_collective(std::vector<torch::Tensor>& tensors, const std::function<void(torch::Tensor&)>& op) {
  std::map<c10::ScalarType, std::vector<size_t>> by_type;
  for (size_t i = 0; i < tensors.size(); ++i) by_type[tensors[i].scalar_type()].push_back(i);
  torch::NoGradGuard no_grad;
  for (auto& [type, indices] : by_type) {
    std::vector<torch::Tensor> parts;
    for (size_t i : indices) parts.push_back(tensors[i].detach().to(torch::kCPU).reshape(-1));
    auto flat = torch::cat(parts);
    op(flat);
    int64_t offset = 0;
    for (size_t i : indices) {
      auto& t = tensors[i];
      const int64_t n = t.numel();
      t.detach().copy_(flat.narrow(0, offset, n).view(t.sizes()));
      offset += n;
    }
  }
}

}  // namespace

ProcessGroup::ProcessGroup(const DistributedEnvironment& environment, const ProcessGroupOptions& options)
    : impl_(std::make_unique<Impl>()) {
  auto& g = *impl_;
  g.env = environment;
  HISTOCNN_CHECK(environment.world_size >= 1 && environment.rank >= 0 && environment.rank < environment.world_size,
                 "rank {} is not in [0, world size {})", environment.rank, environment.world_size);
  HISTOCNN_CHECK(options.timeout_seconds > 0, "the process group timeout must be positive, got {} s",
                 options.timeout_seconds);
  HISTOCNN_CHECK(options.backend == "auto" || options.backend == "gloo" || options.backend == "nccl",
                 "dist_backend must be auto, gloo or nccl, got '{}'", options.backend);
  g.device = parse_device(options.device);
  if (g.device.is_cuda() && options.device.find(':') == std::string::npos) {
    // "auto" and "cuda" mean one GPU per local rank.
    g.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(environment.local_rank));
  }
  HISTOCNN_CHECK(!g.device.is_cuda() || g.device.index() < static_cast<int>(torch::cuda::device_count()),
                 "rank {} would train on {}, but this machine has {} GPUs: start at most one process per GPU, or "
                 "train on the CPU (--device cpu)",
                 environment.rank, g.device.str(), torch::cuda::device_count());
#ifdef HISTOCNN_WITH_NCCL
  const bool have_nccl = true;
#else
  const bool have_nccl = false;
#endif
  g.backend = options.backend == "auto" ? (g.device.is_cuda() && have_nccl ? "nccl" : "gloo") : options.backend;
  HISTOCNN_CHECK(g.backend != "nccl" || have_nccl,
                 "dist_backend nccl needs histocnn built against a LibTorch with CUDA and NCCL (see Torch_DIR in "
                 "docs/distributed.md); this build has Gloo only: use dist_backend gloo");
  HISTOCNN_CHECK(g.backend != "nccl" || g.device.is_cuda(), "dist_backend nccl needs a CUDA device, got {}",
                 g.device.str());
  g.comm_device = g.backend == "nccl" ? g.device : torch::Device(torch::kCPU);

  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_seconds * 1000));
  const std::string where = fmt::format("{}:{}", environment.master_addr, environment.master_port);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(environment.master_port);
    so.isServer = environment.rank == 0;
    so.numWorkers = environment.world_size;
    so.waitWorkers = true;
    so.timeout = timeout;
    g.store = c10::make_intrusive<c10d::TCPStore>(environment.master_addr, so);
    if (g.backend == "gloo") {
      auto o = c10d::ProcessGroupGloo::Options::create(timeout);
      if (const char* ifname = env_or_null("GLOO_SOCKET_IFNAME")) {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (is_loopback(environment.master_addr)) {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      g.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g.store, environment.rank, environment.world_size, o);
    } else {
#ifdef HISTOCNN_WITH_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      g.pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(g.store, environment.rank, environment.world_size, o);
#endif
    }
  } catch (const c10::Error& e) {
    HISTOCNN_FAIL_IO("rank {} of {}: cannot join the job at {} (MASTER_ADDR:MASTER_PORT): {}. Every rank must "
                     "start within dist_timeout ({} s) and reach that address",
                     environment.rank, environment.world_size, where, e.what_without_backtrace(),
                     options.timeout_seconds);
  } catch (const std::exception& e) {
    HISTOCNN_FAIL_IO("rank {} of {}: cannot join the job at {} (MASTER_ADDR:MASTER_PORT): {}. Every rank must "
                     "start within dist_timeout ({} s) and reach that address",
                     environment.rank, environment.world_size, where, e.what(), options.timeout_seconds);
  }
}

ProcessGroup::~ProcessGroup() = default;

int ProcessGroup::rank() const { return impl_->env.rank; }
int ProcessGroup::size() const { return impl_->env.world_size; }
const DistributedEnvironment& ProcessGroup::environment() const { return impl_->env; }
std::string ProcessGroup::backend() const { return impl_->backend; }
torch::Device ProcessGroup::device() const { return impl_->device; }

void ProcessGroup::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  for (auto& t : tensors) impl_->broadcast(t, root, "broadcast");
}

void ProcessGroup::broadcast_module(torch::nn::Module& module) {
  std::vector<torch::Tensor> tensors;
  for (const auto& p : module.named_parameters(true)) tensors.push_back(p.value());
  for (const auto& b : module.named_buffers(true)) tensors.push_back(b.value());
  if (tensors.empty()) return;
  flat_collective(tensors, [&](torch::Tensor& flat) { impl_->broadcast(flat, 0, "broadcast of the model"); });
}

std::string ProcessGroup::broadcast_bytes(const std::string& bytes, int root) {
  auto size = torch::tensor({static_cast<int64_t>(bytes.size())}, torch::kInt64);
  impl_->broadcast(size, root, "broadcast");
  const int64_t n = size.item<int64_t>();
  if (n == 0) return {};
  auto data = torch::empty({n}, torch::kUInt8);
  if (rank() == root) std::memcpy(data.data_ptr<uint8_t>(), bytes.data(), static_cast<size_t>(n));
  impl_->broadcast(data, root, "broadcast");
  return std::string(reinterpret_cast<const char*>(data.data_ptr<uint8_t>()), static_cast<size_t>(n));
}

std::vector<double> ProcessGroup::all_reduce_sum(const std::vector<double>& values) {
  if (values.empty()) return {};
  auto t = torch::tensor(values, torch::kFloat64);
  impl_->all_reduce(t, "all-reduce");
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
}

torch::Tensor ProcessGroup::all_gather_rows(const torch::Tensor& rows) {
  HISTOCNN_CHECK(rows.dim() >= 1, "all_gather_rows needs a tensor with a row dimension");
  const int w = size();
  auto count = torch::tensor({rows.size(0)}, torch::kInt64);
  std::vector<std::vector<at::Tensor>> counts(1);
  for (int r = 0; r < w; ++r) counts[0].push_back(torch::empty({1}, torch::kInt64).to(impl_->comm_device));
  std::vector<at::Tensor> count_in{impl_->to_comm(count)};
  impl_->run("all-gather", [&] { impl_->pg->allgather(counts, count_in)->wait(); });
  std::vector<int64_t> n(w);
  int64_t most = 0;
  for (int r = 0; r < w; ++r) most = std::max(most, n[r] = counts[0][r].to(torch::kCPU).item<int64_t>());
  auto sizes = rows.sizes().vec();
  sizes[0] = most;
  auto padded = torch::zeros(sizes, rows.options().device(impl_->comm_device));
  if (rows.size(0) > 0) padded.narrow(0, 0, rows.size(0)).copy_(rows);
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < w; ++r) out[0].push_back(torch::empty_like(padded));
  std::vector<at::Tensor> in{padded};
  if (most > 0) impl_->run("all-gather", [&] { impl_->pg->allgather(out, in)->wait(); });
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < w; ++r) parts.push_back(out[0][r].narrow(0, 0, n[r]));
  return torch::cat(parts).to(rows.device());
}

int ProcessGroup::average_batchnorm_statistics(torch::nn::Module& module) {
  std::vector<torch::Tensor> stats;
  auto collect = [&](const torch::nn::Module& m) {
    if (!m.is_training()) return;
    for (const auto& b : m.named_buffers(false)) {
      if ((b.key() == "running_mean" || b.key() == "running_var") && b.value().defined()) stats.push_back(b.value());
    }
  };
  collect(module);
  for (const auto& m : module.named_modules("", /*include_self=*/false)) collect(*m.value());
  if (stats.empty()) return 0;
  const double w = size();
  flat_collective(stats, [&](torch::Tensor& flat) {
    impl_->all_reduce(flat, "all-reduce of the BatchNorm statistics");
    flat.div_(w);
  });
  return static_cast<int>(stats.size());
}

void ProcessGroup::check_same(const std::string& text, const std::string& what) {
  const std::string reference = broadcast_bytes(text, 0);
  std::vector<double> differs(size(), 0.0);
  differs[rank()] = text == reference ? 0.0 : 1.0;
  differs = all_reduce_sum(differs);
  for (int r = 0; r < size(); ++r) {
    HISTOCNN_CHECK(differs[r] == 0.0,
                   "rank {} of the job sees {} other than rank 0's: every rank must read the same data with the "
                   "same options (a shared folder, the same command)",
                   r, what);
  }
}

void ProcessGroup::barrier() {
  impl_->run("barrier", [&] { impl_->pg->barrier()->wait(); });
}

ProcessGroup* default_process_group(const ProcessGroupOptions& options) {
  static std::mutex mu;
  // Never destroyed: a process group torn down during static destruction can outlive LibTorch's
  // own statics, and the process is ending anyway.
  static ProcessGroup* group = nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (group) return group;
  const auto env = DistributedEnvironment::from_environment();
  if (!env) return nullptr;
  if (env->rank > 0) ::setenv("HISTOCNN_LOG_LEVEL", "warn", /*overwrite=*/0);
  const auto t0 = Clock::now();
  group = new ProcessGroup(*env, options);
  log_info("data-parallel job: {} processes, {} backend, rendezvous {}:{} ({:.1f} s)", env->world_size,
           group->backend(), env->master_addr, env->master_port, seconds_since(t0));
  return group;
}

// ---------------------------------------------------------------------------------------------
// The step

StepTotals local_step(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& class_weights,
                      const torch::Tensor& other, double lambda) {
  StepTotals t;
  if (!logits.defined() || labels.size(0) == 0) return t;
  auto loss = weighted_cross_entropy(logits, labels, class_weights, other, lambda);
  t.loss_sum = loss.sum.item<double>();
  t.weight_sum = loss.weight_sum;
  t.correct = static_cast<double>(logits.argmax(1).eq(labels).sum().item<int64_t>());
  t.samples = static_cast<double>(labels.size(0));
  loss.sum.backward();
  return t;
}

struct GradientReducer::Bucket {
  std::vector<size_t> parameters;  // indices into parameters_
  std::vector<int64_t> offsets;
  torch::Tensor flat;
};

GradientReducer::GradientReducer(ProcessGroup& group, std::vector<torch::Tensor> parameters, int64_t bucket_bytes)
    : group_(group), parameters_(std::move(parameters)) {
  HISTOCNN_CHECK(bucket_bytes > 0, "bucket_bytes must be positive, got {}", bucket_bytes);
  // Like torch's DDP, buckets follow the parameters in reverse, the order backward produces them.
  const auto comm = group_.impl().comm_device;
  Bucket current;
  int64_t used = 0;
  auto close = [&] {
    if (current.parameters.empty()) return;
    const auto type = parameters_[current.parameters.front()].scalar_type();
    current.flat = torch::zeros({used / static_cast<int64_t>(c10::elementSize(type))},
                                torch::TensorOptions().dtype(type).device(comm));
    buckets_.push_back(std::move(current));
    current = Bucket{};
    used = 0;
  };
  for (size_t k = parameters_.size(); k-- > 0;) {
    const auto& p = parameters_[k];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    if (!current.parameters.empty() &&
        (used + bytes > bucket_bytes || parameters_[current.parameters.front()].scalar_type() != p.scalar_type())) {
      close();
    }
    current.parameters.push_back(k);
    current.offsets.push_back(used / static_cast<int64_t>(p.element_size()));
    used += bytes;
  }
  close();
}

GradientReducer::~GradientReducer() = default;

size_t GradientReducer::buckets() const { return buckets_.size(); }

StepTotals GradientReducer::reduce(const StepTotals& local) {
  const auto t0 = Clock::now();
  auto& g = group_.impl();
  torch::NoGradGuard no_grad;
  // The totals and, per parameter, on how many ranks its gradient is defined.
  constexpr int64_t kTotals = 5;
  auto extras = torch::zeros({kTotals + static_cast<int64_t>(parameters_.size())}, torch::kFloat64);
  auto* e = extras.data_ptr<double>();
  e[0] = local.loss_sum;
  e[1] = local.weight_sum;
  e[2] = local.correct;
  e[3] = local.samples;
  e[4] = local.stop ? 1.0 : 0.0;
  for (auto& bucket : buckets_) {
    for (size_t j = 0; j < bucket.parameters.size(); ++j) {
      const auto& p = parameters_[bucket.parameters[j]];
      auto slice = bucket.flat.narrow(0, bucket.offsets[j], p.numel());
      const auto& grad = p.grad();
      if (grad.defined()) {
        slice.copy_(grad.reshape(-1));
        e[kTotals + bucket.parameters[j]] = 1.0;
      } else {
        slice.zero_();
      }
    }
  }
  // Every collective in flight at once; Gloo and NCCL run them in the order issued on every rank.
  std::vector<std::vector<at::Tensor>> inputs;
  inputs.push_back({g.to_comm(extras)});
  for (auto& bucket : buckets_) inputs.push_back({bucket.flat});
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  g.run("gradient all-reduce", [&] {
    for (auto& in : inputs) works.push_back(g.pg->allreduce(in));
    for (auto& w : works) w->wait();
  });
  const auto sums = inputs[0][0].to(torch::kCPU);
  const double* s = sums.data_ptr<double>();
  StepTotals total;
  total.loss_sum = s[0];
  total.weight_sum = s[1];
  total.correct = s[2];
  total.samples = s[3];
  total.stop = s[4] > 0.5;
  const double divisor = total.weight_sum > 0 ? total.weight_sum : 1.0;
  for (auto& bucket : buckets_) {
    for (size_t j = 0; j < bucket.parameters.size(); ++j) {
      const size_t i = bucket.parameters[j];
      if (s[kTotals + i] < 0.5) continue;  // no rank computed it: leave it undefined, as one process would
      auto& p = parameters_[i];
      auto slice = bucket.flat.narrow(0, bucket.offsets[j], p.numel()).view(p.sizes());
      if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
      p.mutable_grad().copy_(slice).div_(divisor);
    }
  }
  seconds_ += seconds_since(t0);
  return total;
}

namespace {

// A tensor map's names, types and shapes, from which the other ranks allocate it before a broadcast.
nlohmann::json describe_tensors(const io::TensorMap& tensors) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [name, t] : tensors) out.push_back({name, static_cast<int>(t.scalar_type()), t.sizes().vec()});
  return out;
}

io::TensorMap allocate_tensors(const nlohmann::json& described) {
  io::TensorMap out;
  for (const auto& t : described) {
    out[t[0].get<std::string>()] =
        torch::empty(t[2].get<std::vector<int64_t>>(), static_cast<c10::ScalarType>(t[1].get<int>()));
  }
  return out;
}

}  // namespace

std::optional<TrainingCheckpoint> load_checkpoint_of_rank0(ProcessGroup& group, const fs::path& dir) {
  std::optional<TrainingCheckpoint> ck;
  std::exception_ptr error;
  nlohmann::json header = {{"present", false}};
  if (group.is_main()) {
    try {
      ck = load_checkpoint(dir);
    } catch (const std::exception& e) {
      error = std::current_exception();
      header["error"] = e.what();
    }
    if (ck) {
      header = {{"present", true},
                {"fingerprint", ck->fingerprint},
                {"history", ck->history.to_csv()},
                {"best_epoch", ck->history.best_epoch},
                {"best_val_auc", ck->history.best_val_auc},
                {"stopped_early", ck->history.stopped_early},
                {"average_updates", ck->average_updates},
                {"model", describe_tensors(ck->model)},
                {"average", describe_tensors(ck->average)}};
    }
  }
  header = nlohmann::json::parse(group.broadcast_bytes(header.dump()));
  if (header.contains("error")) {
    if (error) std::rethrow_exception(error);
    HISTOCNN_FAIL_IO("rank 0 cannot read the checkpoint in '{}': {}", dir.string(), header["error"].get<std::string>());
  }
  if (!header["present"].get<bool>()) return std::nullopt;
  const std::string optimizer = group.broadcast_bytes(ck ? ck->optimizer : std::string());
  if (!group.is_main()) {
    ck.emplace();
    ck->fingerprint = header["fingerprint"].get<std::string>();
    ck->history = History::from_csv(header["history"].get<std::string>());
    ck->history.best_epoch = header["best_epoch"].get<int>();
    if (header["best_val_auc"].is_number()) ck->history.best_val_auc = header["best_val_auc"].get<double>();
    ck->history.stopped_early = header["stopped_early"].get<bool>();
    ck->optimizer = optimizer;
    ck->average_updates = header["average_updates"].get<int64_t>();
    ck->model = allocate_tensors(header["model"]);
    ck->average = allocate_tensors(header["average"]);
  }
  std::vector<torch::Tensor> tensors;
  for (auto& kv : ck->model) tensors.push_back(kv.second);
  for (auto& kv : ck->average) tensors.push_back(kv.second);
  if (!tensors.empty()) {
    flat_collective(tensors, [&](torch::Tensor& flat) {
      std::vector<torch::Tensor> v{flat};
      group.broadcast(v);
    });
  }
  return ck;
}

void broadcast_validation(ProcessGroup& group, EpochRecord& record) {
  std::vector<torch::Tensor> t{torch::tensor({record.val_loss, record.val_accuracy, record.val_auc}, torch::kFloat64)};
  group.broadcast(t);
  const double* v = t[0].data_ptr<double>();
  record.val_loss = v[0];
  record.val_accuracy = v[1];
  record.val_auc = v[2];
}

int threads_per_process(int requested, const DistributedEnvironment& environment) {
  if (requested > 0) return requested;
  const int hw = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  return std::max(1, hw / std::max(1, environment.local_world_size));
}

MainRankDone::MainRankDone(ProcessGroup* group) : group_(group), exceptions_(std::uncaught_exceptions()) {}

namespace {
// Through the rendezvous store rather than a collective: a collective would give up after
// dist_timeout, while rank 0's evaluation may take longer. The store lives in rank 0, so the
// other ranks learn at once when rank 0 dies.
constexpr const char* kMainDoneKey = "histocnn/main-rank-done";
constexpr const char* kMainDoneReadKey = "histocnn/main-rank-done-read";
}  // namespace

MainRankDone::~MainRankDone() {
  if (!group_) return;
  const std::string outcome = std::uncaught_exceptions() > exceptions_ ? "failed" : "done";
  try {
    auto& g = group_->impl();
    g.store->set(kMainDoneKey, std::vector<uint8_t>(outcome.begin(), outcome.end()));
    // The store ends with this process: keep it until every other rank has read the outcome.
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (g.store->add(kMainDoneReadKey, 0) < g.env.world_size - 1 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  } catch (...) {
    // The other ranks learn of a failure from the closed connection instead.
  }
}

void wait_for_main_rank(ProcessGroup& group) {
  auto& g = group.impl();
  std::string outcome;
  try {
    g.store->wait({kMainDoneKey}, std::chrono::hours(24 * 7));
    const auto bytes = g.store->get(kMainDoneKey);
    outcome.assign(bytes.begin(), bytes.end());
    g.store->add(kMainDoneReadKey, 1);
  } catch (const std::exception& e) {
    HISTOCNN_FAIL_IO("rank {} lost rank 0 while rank 0 evaluated and wrote the run folder ({}); rank 0's own error "
                     "says why",
                     group.rank(), e.what());
  }
  HISTOCNN_CHECK_IO(outcome == "done", "rank 0 failed after training (its own error says why); rank {} stops with it",
                    group.rank());
}

// ---------------------------------------------------------------------------------------------
// Local workers

std::vector<std::string> histocnn_command() {
  if (const char* cli = env_or_null("HISTOCNN_CLI")) return {cli};
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::string name = self.filename().string();
    if (name == "histocnn") return {self.string()};
    if (name.rfind("python", 0) == 0) return {self.string(), "-m", "histocnn"};
  }
  return {"histocnn"};
}

namespace {

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  HISTOCNN_CHECK_IO(fd >= 0, "cannot open a socket to find a free port: {}", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int err = errno;
  ::close(fd);
  HISTOCNN_CHECK_IO(ok, "cannot find a free port on 127.0.0.1: {}", std::strerror(err));
  return ntohs(addr.sin_port);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("ended with wait status {}", status);
}

}  // namespace

void launch_local_workers(int nproc, const std::vector<std::string>& command,
                          const std::map<std::string, std::string>& environment) {
  HISTOCNN_CHECK(nproc >= 1 && nproc <= 256, "nproc must be in [1, 256], got {}", nproc);
  HISTOCNN_CHECK(!command.empty(), "launch_local_workers needs a command");
  const int port = free_loopback_port();

  // Everything the children need is built before fork: after it, only exec-safe calls.
  std::vector<std::vector<std::string>> envs(nproc);
  for (int r = 0; r < nproc; ++r) {
    std::map<std::string, std::string> vars;
    for (char** e = environ; *e; ++e) {
      const std::string kv = *e;
      const auto eq = kv.find('=');
      if (eq != std::string::npos) vars[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [k, v] : environment) vars[k] = v;
    vars["MASTER_ADDR"] = "127.0.0.1";
    vars["MASTER_PORT"] = std::to_string(port);
    vars["WORLD_SIZE"] = std::to_string(nproc);
    vars["RANK"] = std::to_string(r);
    vars["LOCAL_RANK"] = std::to_string(r);
    vars["LOCAL_WORLD_SIZE"] = std::to_string(nproc);
    if (r > 0) {
      vars["HISTOCNN_PROGRESS"] = "0";
      if (!vars.count("HISTOCNN_LOG_LEVEL")) vars["HISTOCNN_LOG_LEVEL"] = "warn";
    }
    for (const auto& [k, v] : vars) envs[r].push_back(k + "=" + v);
  }
  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string exec_error = fmt::format("histocnn: error: cannot start worker '{}': ", command.front());

  const pid_t parent = ::getpid();
  std::vector<pid_t> pids(nproc, -1);
  std::vector<bool> running(nproc, false);
  auto stop_all = [&](int grace_seconds) {
    for (int r = 0; r < nproc; ++r) {
      if (running[r]) ::kill(pids[r], SIGTERM);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(grace_seconds);
    for (int r = 0; r < nproc; ++r) {
      while (running[r]) {
        int status = 0;
        const pid_t done = ::waitpid(pids[r], &status, WNOHANG);
        if (done == pids[r] || (done < 0 && errno != EINTR)) {
          running[r] = false;
          break;
        }
        if (Clock::now() > deadline) ::kill(pids[r], SIGKILL);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  };

  std::fflush(nullptr);
  for (int r = 0; r < nproc; ++r) {
    std::vector<char*> envp;
    for (auto& kv : envs[r]) envp.push_back(const_cast<char*>(kv.c_str()));
    envp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int err = errno;
      stop_all(10);
      HISTOCNN_FAIL_IO("cannot start worker {} of {}: fork failed: {}", r, nproc, std::strerror(err));
    }
    if (pid == 0) {
      // A worker never outlives the launcher, however the launcher ends.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ::dup2(STDERR_FILENO, STDOUT_FILENO);
      ::environ = envp.data();
      ::execvp(argv[0], argv.data());
      const char* why = std::strerror(errno);
      (void)!::write(STDERR_FILENO, exec_error.data(), exec_error.size());
      (void)!::write(STDERR_FILENO, why, std::strlen(why));
      (void)!::write(STDERR_FILENO, "\n", 1);
      ::_exit(127);
    }
    pids[r] = pid;
    running[r] = true;
  }

  auto killed_by_sigpipe = [](int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE; };
  int remaining = nproc;
  while (remaining > 0) {
    bool progressed = false;
    // Every worker found dead in this pass; the one reported is the cause, not a knock-on: when a
    // worker dies, its peers' next write to it can kill them with SIGPIPE before this pass sees it.
    int failed = -1, failed_status = 0;
    for (int r = 0; r < nproc; ++r) {
      if (!running[r]) continue;
      int status = 0;
      const pid_t done = ::waitpid(pids[r], &status, WNOHANG);
      if (done == 0 || (done < 0 && errno == EINTR)) continue;
      running[r] = false;
      --remaining;
      progressed = true;
      if (done < 0) status = 0;
      if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) &&
          (failed < 0 || (killed_by_sigpipe(failed_status) && !killed_by_sigpipe(status)))) {
        failed = r;
        failed_status = status;
      }
    }
    if (failed >= 0) {
      stop_all(10);
      HISTOCNN_FAIL_IO("worker rank {} of {} (pid {}) {}; the other workers were stopped. The checkpoint of the "
                       "last complete epoch is kept: rerunning the same command resumes from it",
                       failed, nproc, pids[failed], describe_status(failed_status));
    }
    if (!progressed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// ---------------------------------------------------------------------------------------------
// `histocnn train --nproc N`

namespace {

metrics::BinaryMetrics metrics_from_json(const nlohmann::json& j) {
  auto number = [&](const char* key) {
    return j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::numeric_limits<double>::quiet_NaN();
  };
  metrics::BinaryMetrics m;
  m.n = j.value("n", int64_t{0});
  m.threshold = number("threshold");
  if (j.contains("cm")) {
    m.cm.tn = j["cm"].value("tn", int64_t{0});
    m.cm.fp = j["cm"].value("fp", int64_t{0});
    m.cm.fn = j["cm"].value("fn", int64_t{0});
    m.cm.tp = j["cm"].value("tp", int64_t{0});
  }
  m.accuracy = number("accuracy");
  m.precision = number("precision");
  m.recall = number("recall");
  m.specificity = number("specificity");
  m.f1 = number("f1");
  m.roc_auc = number("roc_auc");
  m.log_loss = number("log_loss");
  return m;
}

}  // namespace

RunResult run_training_on_local_workers(const RunOptions& options) {
  const auto t0 = Clock::now();
  options.validate();
  const int nproc = options.trainer.nproc;
  RunOptions worker_options = options;
  // The workers name the run folder as this process does, whatever reaches them.
  if (worker_options.name.empty()) worker_options.name = default_run_name(options);
  auto command = histocnn_command();
  command.push_back("train");
  for (auto& a : run_option_arguments(worker_options)) command.push_back(std::move(a));
  std::map<std::string, std::string> env = {{"HISTOCNN_LOCAL_WORKER", "1"}};  // this process reports
  if (!options.trainer.progress) env["HISTOCNN_PROGRESS"] = "0";
  log_info("training in {} local worker processes: {}", nproc, fmt::join(command, " "));
  if (!options.callbacks.empty()) {
    log_info("the callbacks of this process are not called: the workers train, and rank 0 writes history.csv and "
             "tensorboard/ in the run folder");
  }
  launch_local_workers(nproc, command, env);

  RunResult result;
  result.run_dir = options.output_dir / worker_options.name;
  const fs::path history = result.run_dir / "history.csv";
  if (fs::exists(history)) result.history = History::from_csv(io::read_file(history));
  const fs::path metrics_file = result.run_dir / "metrics.json";
  if (!fs::exists(metrics_file)) {
    // The workers ended well but wrote no metrics: training was stopped (the checkpoint is kept).
    result.history.interrupted = true;
    result.history.stopped_early = true;
  } else {
    const auto m = nlohmann::json::parse(io::read_file(metrics_file));
    result.history.best_epoch = m.value("best_epoch", 0);
    if (result.history.best_epoch > 0 && result.history.best_epoch <= static_cast<int>(result.history.epochs.size())) {
      result.history.best_val_auc = result.history.epochs[result.history.best_epoch - 1].val_auc;
    }
    result.history.feature_cache_seconds = m.value("feature_cache_seconds", 0.0);
    result.history.fit_seconds = m.value("fit_seconds", 0.0);
    if (m.contains("validation")) result.validation = metrics_from_json(m["validation"]);
    if (m.contains("test")) result.test = metrics_from_json(m["test"]);
    if (m.contains("test_stain_shift")) result.test_stain_shift = metrics_from_json(m["test_stain_shift"]);
    if (fs::exists(result.run_dir / "report.txt")) result.test_report = io::read_file(result.run_dir / "report.txt");
    if (fs::exists(result.run_dir / "model" / "1")) result.model_dir = result.run_dir / "model" / "1";
  }
  result.seconds = seconds_since(t0);
  return result;
}

}  // namespace histocnn::train
