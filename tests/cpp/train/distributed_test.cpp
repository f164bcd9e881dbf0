#include "test_prelude.h"

#include "histocnn/data/synthetic.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/safetensors.h"
#include "histocnn/train/distributed.h"
#include "histocnn/train/history.h"
#include "histocnn/train/options.h"

#include "test_support.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

using namespace histocnn;
namespace fs = std::filesystem;
using json = nlohmann::json;

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using test::ScopedEnv;

fs::path self_executable() { return fs::read_symlink("/proc/self/exe"); }

// The histocnn tool: HISTOCNN_CLI, else HISTOCNN_BINARY_DIR/histocnn, else beside the tests' folder.
fs::path cli_binary() {
  fs::path p;
  if (const char* c = std::getenv("HISTOCNN_CLI")) {
    p = c;
  } else if (const char* b = std::getenv("HISTOCNN_BINARY_DIR")) {
    p = fs::path(b) / "histocnn";
  } else {
    p = self_executable().parent_path().parent_path() / "histocnn";
  }
  INFO("the histocnn tool is built with the tests (ninja -C build histocnn_cli); HISTOCNN_CLI names another");
  REQUIRE(fs::exists(p));
  return p;
}

// A process running `args` with stdout and stderr in `log`, without any data-parallel variables
// of this process's environment.
struct Child {
  pid_t pid = -1;
  fs::path log;
};

Child spawn(const std::vector<std::string>& args, const fs::path& log) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string kv = *e;
    const std::string key = kv.substr(0, kv.find('='));
    if (key == "WORLD_SIZE" || key == "RANK" || key == "LOCAL_RANK" || key == "MASTER_ADDR" ||
        key == "MASTER_PORT" || key == "LOCAL_WORLD_SIZE" || key == "HISTOCNN_PROGRESS") {
      continue;
    }
    env_strings.push_back(kv);
  }
  env_strings.push_back("HISTOCNN_PROGRESS=0");
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> a = args;
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return {pid, log};
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits for the child (killing it after `timeout_s`); returns its wait status.
int wait_for(const Child& c, double timeout_s = 300) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  while (::waitpid(c.pid, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, &status, 0);
      FAIL("timed out after " << timeout_s << " s; log:\n" << slurp(c.log));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status;
}

int run_to_end(const std::vector<std::string>& args, const fs::path& log) {
  const int status = wait_for(spawn(args, log));
  INFO(slurp(log));
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

// The children of `pid` whose environment has RANK=<rank>.
pid_t child_with_rank(pid_t pid, int rank) {
  std::vector<pid_t> children;
  std::ifstream in(fmt::format("/proc/{}/task/{}/children", pid, pid));
  for (pid_t c; in >> c;) children.push_back(c);
  for (pid_t c : children) {
    const std::string env = slurp(fmt::format("/proc/{}/environ", c));
    std::stringstream ss(env);
    for (std::string item; std::getline(ss, item, '\0');) {
      if (item == fmt::format("RANK={}", rank)) return c;
    }
  }
  return -1;
}

int latest_epoch(const fs::path& checkpoint_dir) {
  std::error_code ec;
  if (!fs::exists(checkpoint_dir / "latest", ec)) return 0;
  std::string name = slurp(checkpoint_dir / "latest");
  if (name.rfind("epoch-", 0) != 0) return 0;
  return std::atoi(name.c_str() + 6);
}

double max_abs_difference(const io::TensorMap& a, const io::TensorMap& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (const auto& [name, t] : a) {
    INFO(name);
    REQUIRE(b.count(name));
    REQUIRE(b.at(name).sizes() == t.sizes());
    if (!t.is_floating_point()) {
      CHECK(torch::equal(t, b.at(name)));
      continue;
    }
    worst = std::max(worst, (t.to(torch::kFloat64) - b.at(name).to(torch::kFloat64)).abs().max().item<double>());
  }
  return worst;
}

// A small run of the histocnn tool on synthetic patches: no dropout, no augmentation, nothing that
// differs between ranks but the part of each batch they compute.
std::vector<std::string> train_command(const fs::path& data, const fs::path& out, const std::string& name,
                                       int epochs, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {cli_binary().string(), "train", "--data", data.string(), "--out", out.string(),
                                   "--name", name, "--backbone", "simple_cnn", "--weights", "", "--image-size", "32",
                                   "--hidden1", "32", "--hidden2", "16", "--dropout", "0", "--epochs",
                                   std::to_string(epochs), "--batch-size", "32", "--no-restore-best",
                                   "--stain-shift", "0", "--no-tensorboard", "--threads", "1", "--workers", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

io::TensorMap bundle_weights(const fs::path& run) {
  return io::load_safetensors(run / "model" / "1" / "model.safetensors").tensors;
}

}  // namespace

// Run by the collectives test below in two processes (launch_local_workers), never alone.
TEST_CASE("(one rank of the collectives test)", "[.distributed-worker]") {
  const char* out = std::getenv("HISTOCNN_TEST_DIST_OUT");
  REQUIRE(out != nullptr);
  const auto env = train::DistributedEnvironment::from_environment();
  REQUIRE(env);
  train::ProcessGroupOptions po;
  po.backend = "gloo";
  po.timeout_seconds = 60;
  po.device = "cpu";
  train::ProcessGroup g(*env, po);
  const int r = g.rank();
  json result;
  result["rank"] = r;
  result["size"] = g.size();
  result["backend"] = g.backend();
  result["bytes"] = g.broadcast_bytes(r == 0 ? "from rank 0" : "not sent");
  result["sum"] = g.all_reduce_sum({r + 1.0, 10.0 * (r + 1)});
  const auto gathered = g.all_gather_rows(torch::full({r + 1, 2}, static_cast<float>(r)));
  result["gathered_rows"] = gathered.size(0);
  result["gathered"] = std::vector<float>(gathered.data_ptr<float>(), gathered.data_ptr<float>() + gathered.numel());

  // BatchNorm: the training layer's statistics are averaged, the inference-mode layer's left alone.
  torch::nn::BatchNorm1d training_bn(3), frozen_bn(2);
  torch::nn::Sequential net(training_bn, frozen_bn);
  {
    torch::NoGradGuard no_grad;
    training_bn->running_mean.fill_(r + 1.0);
    training_bn->running_var.fill_(2.0 * (r + 1));
    frozen_bn->running_mean.fill_(r + 5.0);
  }
  net->train();
  frozen_bn->eval();
  result["bn_averaged"] = g.average_batchnorm_statistics(*net.ptr());
  result["bn_mean"] = training_bn->running_mean[0].item<double>();
  result["bn_var"] = training_bn->running_var[2].item<double>();
  result["frozen_mean"] = frozen_bn->running_mean[1].item<double>();

  // Rank 0's module everywhere.
  torch::nn::Linear lin(3, 2);
  {
    torch::NoGradGuard no_grad;
    lin->weight.fill_(r + 1.0);
    lin->bias.fill_(-(r + 1.0));
  }
  g.broadcast_module(*lin.ptr());
  result["module_weight"] = lin->weight.sum().item<double>();
  result["module_bias"] = lin->bias.sum().item<double>();

  // Gradients: summed over ranks and divided by the global weight; a gradient no rank has stays
  // undefined; one only rank 1 has is that rank's over the global weight.
  auto a = torch::zeros({1000}, torch::requires_grad());
  auto b = torch::zeros({3}, torch::requires_grad());
  auto c = torch::zeros({2}, torch::requires_grad());
  a.mutable_grad() = torch::full({1000}, r + 1.0);
  if (r == 1) b.mutable_grad() = torch::full({3}, 4.0);
  train::GradientReducer reducer(g, {a, b, c}, /*bucket_bytes=*/1024);
  train::StepTotals local;
  local.loss_sum = r + 1.0;
  local.weight_sum = 2.0 * (r + 1);
  local.correct = r;
  local.samples = r + 2;
  local.stop = r == 1;
  const auto total = reducer.reduce(local);
  result["buckets"] = reducer.buckets();
  result["a_grad"] = a.grad()[999].item<double>();
  result["b_grad"] = b.grad().defined() ? b.grad()[0].item<double>() : -1.0;
  result["c_grad_defined"] = c.grad().defined();
  result["totals"] = {total.loss_sum, total.weight_sum, total.correct, total.samples};
  result["stop"] = total.stop;
  result["reduce_seconds"] = reducer.seconds();

  g.check_same("same text", "a text");
  try {
    g.check_same(r == 0 ? "one" : "other", "the test's text");
    result["check_same"] = "no error";
  } catch (const std::invalid_argument& e) {
    result["check_same"] = e.what();
  }
  g.barrier();
  io::write_file_atomic(fs::path(out) / fmt::format("rank-{}.json", r), result.dump());
}

TEST_CASE("Two processes on loopback broadcast, reduce, gather and average as one would by hand", "[distributed]") {
  test::TempDir dir;
  train::launch_local_workers(2, {self_executable().string(), "[distributed-worker]"},
                              {{"HISTOCNN_TEST_DIST_OUT", dir.path().string()}});
  for (int r = 0; r < 2; ++r) {
    INFO("rank " << r);
    const auto j = json::parse(slurp(dir / fmt::format("rank-{}.json", r)));
    CHECK(j["rank"] == r);
    CHECK(j["size"] == 2);
    CHECK(j["backend"] == "gloo");
    CHECK(j["bytes"] == "from rank 0");
    CHECK(j["sum"] == json({3.0, 30.0}));
    CHECK(j["gathered_rows"] == 3);  // rank 0's one row of zeros, then rank 1's two rows of ones
    CHECK(j["gathered"] == json({0.0, 0.0, 1.0, 1.0, 1.0, 1.0}));
    CHECK(j["bn_averaged"] == 2);
    CHECK(j["bn_mean"].get<double>() == Approx(1.5));
    CHECK(j["bn_var"].get<double>() == Approx(3.0));
    CHECK(j["frozen_mean"].get<double>() == r + 5.0);
    CHECK(j["module_weight"].get<double>() == 6.0);  // rank 0's 3x2 ones
    CHECK(j["module_bias"].get<double>() == -2.0);
    CHECK(j["buckets"] == 2);                        // 1024-byte buckets: [c, b] and [a]
    CHECK(j["a_grad"].get<double>() == Approx((1.0 + 2.0) / (2.0 + 4.0)));
    CHECK(j["b_grad"].get<double>() == Approx(4.0 / 6.0));
    CHECK(j["c_grad_defined"] == false);
    CHECK(j["totals"] == json({3.0, 6.0, 1.0, 5.0}));
    CHECK(j["stop"] == true);
    CHECK(j["reduce_seconds"].get<double>() > 0);
    CHECK_THAT(j["check_same"].get<std::string>(), Catch::Contains("rank 1") && Catch::Contains("the test's text"));
  }
}

TEST_CASE("The job's environment is read as torchrun and PyTorchJob set it, and refused when incomplete",
          "[distributed]") {
  {
    ScopedEnv env({{"WORLD_SIZE", nullptr}, {"RANK", nullptr}});
    CHECK_FALSE(train::DistributedEnvironment::from_environment());
    CHECK(train::is_main_process());
  }
  {
    ScopedEnv env({{"WORLD_SIZE", "1"}, {"RANK", "0"}});
    CHECK_FALSE(train::DistributedEnvironment::from_environment());  // one process: no job
  }
  {
    ScopedEnv env({{"WORLD_SIZE", "4"}, {"RANK", "3"}, {"MASTER_ADDR", "pytorchjob-master-0"}, {"MASTER_PORT", "23456"},
                   {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"}});
    const auto e = train::DistributedEnvironment::from_environment();
    REQUIRE(e);
    CHECK(e->world_size == 4);
    CHECK(e->rank == 3);
    CHECK(e->master_addr == "pytorchjob-master-0");
    CHECK(e->master_port == 23456);
    CHECK(e->local_rank == 1);
    CHECK(e->local_world_size == 2);
    CHECK_FALSE(train::is_main_process());
    CHECK(train::threads_per_process(3, *e) == 3);
    CHECK(train::threads_per_process(0, *e) ==
          std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / 2));
  }
  {
    ScopedEnv env({{"WORLD_SIZE", "2"}, {"RANK", "0"}, {"MASTER_ADDR", nullptr}, {"MASTER_PORT", "29500"}});
    CHECK_THROWS_WITH(train::DistributedEnvironment::from_environment(),
                      Catch::Contains("MASTER_ADDR is not set") && Catch::Contains("--nproc"));
  }
  {
    ScopedEnv env({{"WORLD_SIZE", "2"}, {"RANK", "2"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "29500"}});
    CHECK_THROWS_WITH(train::DistributedEnvironment::from_environment(), Catch::Contains("RANK='2'"));
  }
}

TEST_CASE("The local launcher sets each worker's rank, and stops them all when one fails", "[distributed]") {
  test::TempDir dir;
  ScopedEnv env(std::map<std::string, const char*>{{"HISTOCNN_TEST_DIST_OUT", dir.path().c_str()}});
  train::launch_local_workers(
      3, {"/bin/sh", "-c", "echo $RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $MASTER_ADDR > $HISTOCNN_TEST_DIST_OUT/$RANK"});
  for (int r = 0; r < 3; ++r) {
    CHECK(slurp(dir / std::to_string(r)) == fmt::format("{} {} 3 3 127.0.0.1\n", r, r));
  }
  // Rank 1 fails at once; the others would sleep for a minute if they were not stopped.
  const auto t0 = Clock::now();
  CHECK_THROWS_WITH(train::launch_local_workers(3, {"/bin/sh", "-c", "[ $RANK = 1 ] && exit 3; exec sleep 60"}),
                    Catch::Contains("worker rank 1 of 3") && Catch::Contains("exited with status 3") &&
                        Catch::Contains("the other workers were stopped"));
  CHECK(std::chrono::duration<double>(Clock::now() - t0).count() < 20);
}

TEST_CASE("The local launcher reports the worker that died first, not a peer's SIGPIPE after it", "[distributed]") {
  // Rank 1 is killed; rank 0, reading from it through a FIFO, sees the end of the stream and dies of
  // SIGPIPE a few milliseconds later, as a training peer does when it next writes to the dead one.
  // The launcher polls every 50 ms, so it mostly finds both dead in one pass, with rank 0 ahead in
  // rank order: the case that reported rank 0's SIGPIPE. Found in two passes, rank 1 comes first
  // anyway; the repeats make it all but certain that some run takes the one-pass path.
  test::TempDir dir;
  const std::string fifo = (dir / "fifo").string();
  for (int run = 0; run < 5; ++run) {
    INFO("run " << run);
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    ScopedEnv env(std::map<std::string, const char*>{{"HISTOCNN_TEST_FIFO", fifo.c_str()}});
    const std::string script =
        "if [ $RANK = 1 ]; then exec 3>\"$HISTOCNN_TEST_FIFO\"; kill -9 $$; "
        "else read x < \"$HISTOCNN_TEST_FIFO\"; kill -13 $$; fi";
    CHECK_THROWS_WITH(train::launch_local_workers(2, {"/bin/sh", "-c", script}),
                      Catch::Contains("worker rank 1 of 2") && Catch::Contains("killed by signal 9"));
    std::filesystem::remove(fifo);
  }
}

TEST_CASE("run_option_arguments gives back the same options through the command line's flags", "[distributed]") {
  train::RunOptions o;
  train::set_run_option(o, "data_dir", R"(["a dir", "b"])");
  train::set_run_option(o, "epochs", "7");
  train::set_run_option(o, "learning_rate", "0.00012345678901234");
  train::set_run_option(o, "freeze_backbone", "false");
  train::set_run_option(o, "weights", "\"\"");
  train::set_run_option(o, "optimizer", "\"adam\"");
  train::set_run_option(o, "nproc", "4");
  const auto args = train::run_option_arguments(o);
  // Parse them back as the command line does: each flag names one option of the table.
  train::RunOptions back;
  const train::RunOptions defaults;
  const auto specs = train::run_option_specs();
  for (size_t i = 0; i < args.size(); ++i) {
    const train::RunOptionSpec* spec = nullptr;
    for (const auto& s : specs) {
      if (s.flag.substr(0, s.flag.find(',')) == args[i]) spec = &s;
    }
    INFO(args[i]);
    REQUIRE(spec != nullptr);
    if (spec->type == train::RunOptionType::boolean) {
      train::set_run_option(back, spec->name, train::get_run_option(defaults, spec->name) == "true" ? "false" : "true");
    } else if (spec->type == train::RunOptionType::paths) {
      json list = json::array();
      while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) list.push_back(args[++i]);
      train::set_run_option(back, spec->name, list.dump());
    } else {
      REQUIRE(i + 1 < args.size());
      train::set_run_option(back, spec->name, train::run_option_json_value(*spec, args[++i]));
    }
  }
  CHECK(std::find(args.begin(), args.end(), "--nproc") != args.end());
  CHECK(json::parse(train::run_option_values(back)) == json::parse(train::run_option_values(o)));
}

TEST_CASE("2 processes with a global batch of 32 end with the weights of 1 process with batch 32",
          "[distributed][slow]") {
  test::TempDir dir;
  const auto data = test::synthetic_folder(dir, test::synthetic_options(8, 30));
  const auto runs = dir / "runs";
  // The head on cached features of a frozen backbone (features computed half by each rank and
  // gathered), and the last backbone layers training on batches the loader splits between ranks.
  for (const auto& variant : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"head", {}}, {"unfrozen", {"--unfreeze-last", "2"}}}) {
    INFO("variant " << variant.first);
    const auto one = variant.first + "-1", two = variant.first + "-2";
    REQUIRE(run_to_end(train_command(data, runs, one, 2, variant.second), dir / (one + ".log")) == 0);
    auto args = train_command(data, runs, two, 2, variant.second);
    args.insert(args.end(), {"--nproc", "2"});
    REQUIRE(run_to_end(args, dir / (two + ".log")) == 0);
    const std::string log = slurp(dir / (two + ".log"));
    CHECK_THAT(log, Catch::Contains("data-parallel job: 2 processes, gloo backend"));
    CHECK_THAT(log, Catch::Contains("gradient all-reduce"));
    const double diff = max_abs_difference(bundle_weights(runs / one), bundle_weights(runs / two));
    INFO("max abs difference of the weights: " << diff);
    CHECK(diff <= 1e-5);
    const auto h1 = train::History::from_csv(slurp(runs / one / "history.csv"));
    const auto h2 = train::History::from_csv(slurp(runs / two / "history.csv"));
    REQUIRE(h1.epochs.size() == 2);
    REQUIRE(h2.epochs.size() == 2);
    for (size_t e = 0; e < 2; ++e) {
      CHECK(h2.epochs[e].train_loss == Approx(h1.epochs[e].train_loss).epsilon(1e-5));
      CHECK(h2.epochs[e].train_accuracy == h1.epochs[e].train_accuracy);
      CHECK(h2.epochs[e].val_auc == Approx(h1.epochs[e].val_auc).margin(1e-6));
    }
    CHECK(h1.epochs[1].train_loss < h1.epochs[0].train_loss);
    // Rank 0 alone wrote the run folder; the launcher printed the report rank 0 wrote.
    CHECK(fs::exists(runs / two / "metrics.json"));
    CHECK(fs::exists(runs / two / "checkpoint" / "latest"));
  }
}

TEST_CASE("A data-parallel run whose rank 1, then rank 0, is killed resumes from rank 0's checkpoint",
          "[distributed][slow]") {
  test::TempDir dir;
  const auto data = test::synthetic_folder(dir, test::synthetic_options(8, 30));
  const auto runs = dir / "runs";
  const int epochs = 10;
  // With a moving average of the weights, which rank 0's checkpoint gives every rank on resume.
  const std::vector<std::string> options = {"--unfreeze-last", "2", "--ema-decay", "0.9"};
  auto args = train_command(data, runs, "resumed", epochs, options);
  args.insert(args.end(), {"--nproc", "2"});
  const auto checkpoint = runs / "resumed" / "checkpoint";

  // Kills the worker of `rank` once the checkpoint is past `after` epochs; returns that epoch.
  auto kill_rank_after = [&](int rank, int after, const std::string& log_name) {
    const Child launcher = spawn(args, dir / log_name);
    const auto deadline = Clock::now() + std::chrono::seconds(240);
    while (latest_epoch(checkpoint) <= after) {
      REQUIRE(Clock::now() < deadline);
      int status = 0;
      if (::waitpid(launcher.pid, &status, WNOHANG) == launcher.pid) FAIL("ended early:\n" << slurp(launcher.log));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const pid_t victim = child_with_rank(launcher.pid, rank);
    const pid_t other = child_with_rank(launcher.pid, 1 - rank);
    REQUIRE(victim > 0);
    REQUIRE(other > 0);
    REQUIRE(::kill(victim, SIGKILL) == 0);
    const int reached = latest_epoch(checkpoint);
    const int status = wait_for(launcher, 120);
    INFO(slurp(launcher.log));
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) != 0);
    CHECK_THAT(slurp(launcher.log), Catch::Contains(fmt::format("worker rank {} of 2", rank)) &&
                                         Catch::Contains("killed by signal 9"));
    // The other worker was stopped (and reaped) with it: nothing is left running.
    CHECK((::kill(other, 0) == -1 && errno == ESRCH));
    return reached;
  };
  const int first = kill_rank_after(1, 0, "killed-rank-1.log");
  REQUIRE(first < epochs);
  const int second = kill_rank_after(0, first, "killed-rank-0.log");
  REQUIRE(second < epochs);
  REQUIRE(second > first);

  // The same command again finishes the run from rank 0's last checkpoint.
  const int kept = latest_epoch(checkpoint);
  REQUIRE(kept >= second);
  REQUIRE(run_to_end(args, dir / "finished.log") == 0);
  CHECK_THAT(slurp(dir / "finished.log"), Catch::Contains(fmt::format("resuming from the checkpoint of epoch {}", kept)));
  const auto h = train::History::from_csv(slurp(runs / "resumed" / "history.csv"));
  REQUIRE(h.epochs.size() == static_cast<size_t>(epochs));
  for (int e = 0; e < epochs; ++e) CHECK(h.epochs[e].epoch == e + 1);
  CHECK(fs::exists(runs / "resumed" / "metrics.json"));

  // And it ends where one uninterrupted process ends.
  REQUIRE(run_to_end(train_command(data, runs, "reference", epochs, options),
                     dir / "reference.log") == 0);
  const double diff = max_abs_difference(bundle_weights(runs / "resumed"), bundle_weights(runs / "reference"));
  INFO("max abs difference of the weights: " << diff);
  CHECK(diff <= 1e-5);
}
