#pragma once
// Data-parallel training over torch's c10d process groups: Gloo on the CPU, NCCL on CUDA GPUs when
// histocnn is built against a LibTorch with CUDA.
//
//   # torchrun, a Kubeflow PyTorchJob, or by hand: the usual environment, one process per rank
//   MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 WORLD_SIZE=4 RANK=0 histocnn train --data ... --batch-size 64
//   # or N local workers on loopback, started and watched by one command
//   histocnn train --data ... --nproc 2
//
// The Trainer joins the job by itself when WORLD_SIZE > 1 (default_process_group()); with
// WORLD_SIZE unset, training runs in one process exactly as without this file. In a job:
// - every rank reads the same epoch order (the loader's seeded order) and takes its own part of
//   every global batch (data::LoaderOptions::shard_*): batch_size stays the global batch, each rank
//   computes batch_size / world size of it;
// - initial weights (and a resumed checkpoint) come from rank 0 by broadcast;
// - after each backward pass the gradients are all-reduced in buckets (GradientReducer) and
//   divided by the global batch's total loss weight, so every rank takes the step that one process
//   with the whole global batch would take;
// - BatchNorm: each rank normalises with its own part of the batch (as torch's DDP does without
//   SyncBatchNorm), and at the end of every epoch the running mean and variance of the BatchNorm
//   layers that train are averaged over ranks (average_batchnorm_statistics), so validation, the
//   checkpoint and the bundle see one set of statistics. Synchronised BN would cost two more
//   all-reduces per BN layer in every forward and backward pass, which on Ethernet or loopback is
//   latency the step waits for; per-rank statistics over 16 or more patches are the usual trade.
//   Frozen BN layers (train_bn false, the default for pretrained backbones) never differ;
// - rank 0 alone validates, writes checkpoints, history, TensorBoard and the bundle; the other
//   ranks receive the validation numbers and wait for rank 0 at the end.
#include "histocnn/train/checkpoint.h"
#include "histocnn/train/run.h"

#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::train {

/// This process's place in a data-parallel job, from the torchrun / PyTorchJob environment:
/// WORLD_SIZE, RANK, MASTER_ADDR, MASTER_PORT and optionally LOCAL_RANK and LOCAL_WORLD_SIZE.
struct DistributedEnvironment {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;        ///< index on this machine (chooses the GPU: cuda:LOCAL_RANK)
  int local_world_size = 1;  ///< processes on this machine (divides the CPU threads)
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;

  /// nullopt when WORLD_SIZE is unset or 1 (one process: no job). Throws std::invalid_argument
  /// naming the variable when one is missing or out of range.
  static std::optional<DistributedEnvironment> from_environment();
};

/// False only in ranks other than 0 of a job: the process that writes the run folder.
bool is_main_process();
/// Whether this process prints a run's report: not the ranks above 0, and not the workers that
/// `--nproc` started (HISTOCNN_LOCAL_WORKER=1), whose launcher prints it.
bool prints_run_report();

struct ProcessGroupOptions {
  std::string backend = "auto";  ///< auto (NCCL for CUDA devices when built with it, else Gloo), gloo, nccl
  double timeout_seconds = 1800; ///< how long a collective waits for the other ranks
  std::string device = "auto";   ///< the training device (TrainerOptions::device)
};

/// A c10d process group with the collectives training needs. Tensors may live on any device;
/// they are moved to the group's device (the CPU for Gloo) and back as needed.
class ProcessGroup {
 public:
  /// Connects to the rendezvous (a c10d TCPStore served by rank 0 at MASTER_ADDR:MASTER_PORT) and
  /// creates the group. Every rank must call it. Throws std::runtime_error naming the address when
  /// the others do not arrive within the timeout.
  ProcessGroup(const DistributedEnvironment& environment, const ProcessGroupOptions& options = {});
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const;
  int size() const;
  bool is_main() const { return rank() == 0; }
  const DistributedEnvironment& environment() const;
  std::string backend() const;  ///< "gloo" or "nccl"
  /// Where the training tensors of this rank live (cuda:LOCAL_RANK for CUDA, else the CPU).
  torch::Device device() const;

  /// Sends `tensors` of rank `root` to every rank, in place.
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  /// Every parameter and buffer of `module` (recursively) from rank 0.
  void broadcast_module(torch::nn::Module& module);
  /// Rank `root`'s bytes, on every rank.
  std::string broadcast_bytes(const std::string& bytes, int root = 0);
  /// Element-wise sums over ranks (float64).
  std::vector<double> all_reduce_sum(const std::vector<double>& values);
  /// The rows of every rank, concatenated in rank order (ranks may hold different row counts; the
  /// other dimensions and the dtype must agree).
  torch::Tensor all_gather_rows(const torch::Tensor& rows);
  /// Averages running_mean and running_var of the BatchNorm layers of `module` that are in training
  /// mode over ranks. Returns how many buffers were averaged.
  int average_batchnorm_statistics(torch::nn::Module& module);
  /// Throws std::runtime_error on every rank, naming the first that differs, unless `text` is the same
  /// on all ranks (e.g. a fingerprint of the training data). `what` names it in the message.
  void check_same(const std::string& text, const std::string& what);
  void barrier();

  /// The c10d group (torch/csrc/distributed/c10d/ProcessGroup.hpp), for collectives not wrapped here.
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

/// The job's process group, like torch.distributed's default group: created on the first call when
/// the environment describes a job of two or more processes (later calls return it and ignore
/// `options`), nullptr otherwise. Creating it is a rendezvous, so every rank must call it. Ranks
/// other than 0 print warnings and errors only unless HISTOCNN_LOG_LEVEL says otherwise.
ProcessGroup* default_process_group(const ProcessGroupOptions& options = {});

/// One step's numbers on one rank, summed over ranks by GradientReducer::reduce.
struct StepTotals {
  double loss_sum = 0;    ///< sum over the rank's samples of class weight x cross-entropy
  double weight_sum = 0;  ///< sum of the samples' class weights (their count without class weights)
  double correct = 0;     ///< samples predicted right
  double samples = 0;
  bool stop = false;      ///< this rank was asked to stop; any rank asking stops all
};

/// The local half of a data-parallel step: the summed, class-weighted cross-entropy of this rank's
/// part of the batch (against mixup's blend of `labels` and `other` when `other` is defined:
/// train/mixup.h), its backward pass, and its totals. An empty part (a short last batch split over
/// more ranks than it has samples: `logits` undefined or empty) contributes nothing.
StepTotals local_step(const torch::Tensor& logits, const torch::Tensor& labels, const torch::Tensor& class_weights,
                      const torch::Tensor& other = {}, double lambda = 1.0);

/// All-reduces the gradients of a fixed list of parameters in flat buckets of about bucket_bytes
/// (one collective each, all in flight at once), together with the step's totals.
class GradientReducer {
 public:
  GradientReducer(ProcessGroup& group, std::vector<torch::Tensor> parameters, int64_t bucket_bytes = 25 << 20);
  ~GradientReducer();
  /// After local backward passes of summed losses: every gradient becomes the sum over ranks divided
  /// by the global weight_sum, i.e. the gradient of the mean loss over the whole global batch. A
  /// gradient undefined on every rank stays undefined. Returns the totals summed over ranks.
  StepTotals reduce(const StepTotals& local);
  /// Time spent in reduce() so far (copies into buckets, the all-reduces, copies back).
  double seconds() const { return seconds_; }
  size_t buckets() const;

 private:
  struct Bucket;
  ProcessGroup& group_;
  std::vector<torch::Tensor> parameters_;
  std::vector<Bucket> buckets_;
  double seconds_ = 0;
};

/// Rank 0's checkpoint in `dir` (load_checkpoint there) on every rank, so that only rank 0 needs
/// the folder: history, fingerprint, optimizer state and model weights come by broadcast; best_model
/// and rng stay rank 0's. nullopt on every rank when rank 0 has none; when rank 0 cannot read it,
/// every rank throws.
std::optional<TrainingCheckpoint> load_checkpoint_of_rank0(ProcessGroup& group, const std::filesystem::path& dir);
/// Rank 0's validation numbers (val_loss, val_accuracy, val_auc) into `record` on every rank.
void broadcast_validation(ProcessGroup& group, EpochRecord& record);

/// Intra-op threads for this rank: `requested` when > 0, else the hardware threads divided by the
/// local processes (LOCAL_WORLD_SIZE), at least 1.
int threads_per_process(int requested, const DistributedEnvironment& environment);

/// Rank 0 creates one after training; when it goes out of scope, the other ranks, waiting in
/// wait_for_main_rank(), learn whether rank 0 finished (they return) or failed (they throw).
class MainRankDone {
 public:
  explicit MainRankDone(ProcessGroup* group);
  ~MainRankDone();
  MainRankDone(const MainRankDone&) = delete;
  MainRankDone& operator=(const MainRankDone&) = delete;

 private:
  ProcessGroup* group_;
  int exceptions_;
};
/// The other ranks' side of MainRankDone: waits (through the rendezvous store, so for as long as
/// rank 0 runs, not just dist_timeout) and throws std::runtime_error when rank 0 failed or died.
void wait_for_main_rank(ProcessGroup& group);

/// How this process starts `histocnn` again: $HISTOCNN_CLI when set; this executable when it is the
/// histocnn tool; `<python> -m histocnn` inside Python; else `histocnn` from PATH.
std::vector<std::string> histocnn_command();

/// Starts `nproc` copies of `command` on this machine with MASTER_ADDR=127.0.0.1, a free
/// MASTER_PORT, WORLD_SIZE=nproc, RANK=LOCAL_RANK=i and LOCAL_WORLD_SIZE=nproc, and waits for all.
/// When one fails, the others are stopped (SIGTERM, then SIGKILL) and std::runtime_error names
/// the rank and how it ended. Workers die with this process (PR_SET_PDEATHSIG). Ranks above 0
/// print warnings and errors only, and no progress bars; every worker's standard output goes to
/// this process's standard error. `environment` adds variables for every worker.
void launch_local_workers(int nproc, const std::vector<std::string>& command,
                          const std::map<std::string, std::string>& environment = {});

/// `histocnn train --nproc N`: runs the training of `options` in N local worker processes
/// (launch_local_workers with histocnn_command() and the options as arguments) and reads their run
/// folder back: history, metrics, report and model folder.
RunResult run_training_on_local_workers(const RunOptions& options);

}  // namespace histocnn::train
