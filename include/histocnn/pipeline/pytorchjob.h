#pragma once
// A Kubeflow PyTorchJob manifest for a data-parallel `histocnn train`: the training operator starts a
// Master pod (rank 0) and Worker pods and gives each the MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK
// that histocnn's trainer joins by (train/distributed.h).
//
//   histocnn::pipeline::PyTorchJobOptions job;
//   job.name = "idc-train";
//   job.image = "registry.example.org/histocnn:0.1.0";
//   job.command = {"histocnn", "train", "--data", "/workspace/data/idc", "--out", "/workspace/runs"};
//   job.workers = 3;                          // 4 processes: Master + 3 Workers
//   job.volume_claim = "histocnn-workspace";  // data and run folders, shared by the replicas
//   std::string yaml = histocnn::pipeline::pytorchjob_manifest(job);   // kubectl apply -f -
#include <string>
#include <vector>

namespace histocnn::pipeline {

struct PyTorchJobOptions {
  std::string name = "histocnn-train";       ///< metadata.name: lowercase letters, digits and '-'
  std::string namespace_name;                ///< metadata.namespace ("" = kubectl's current namespace)
  std::string image = "histocnn:latest";     ///< the histocnn container image (the repository's Dockerfile)
  /// The training command run in every replica, program first. The operator's environment makes each
  /// replica one rank; --nproc is not needed (one process per pod).
  std::vector<std::string> command = {"histocnn", "train"};
  int workers = 1;                           ///< Worker replicas; the job has workers + 1 processes
  int port = 23456;                          ///< the rendezvous port (container port `pytorchjob-port`)
  int gpus = 0;                              ///< nvidia.com/gpu limit per replica (0: CPU, Gloo)
  std::string cpu;                           ///< CPU request per replica, e.g. "8" ("" = none)
  std::string memory;                        ///< memory request per replica, e.g. "16Gi" ("" = none)
  /// Always, OnFailure, Never or ExitCode. OnFailure restarts a failed or killed replica; the others
  /// fail with it and restart too, and the job resumes from rank 0's last checkpoint.
  std::string restart_policy = "OnFailure";
  /// A PersistentVolumeClaim mounted at mount_path in every replica (the data, and the run folder that
  /// rank 0 writes and resumes from); "" mounts nothing (the image or the command must provide them).
  std::string volume_claim;
  std::string mount_path = "/workspace";
};

/// The PyTorchJob (apiVersion kubeflow.org/v1, kind PyTorchJob) as YAML text: Master (1 replica)
/// and Worker (`workers` replicas, none when 0) pod templates with one container named `pytorch` (the
/// name the operator looks for) running `command` in `image`, the rendezvous port named
/// `pytorchjob-port`, HISTOCNN_PROGRESS=0 (no terminal), and the resources and volume asked for.
/// Throws std::invalid_argument naming the field when a value is not one Kubernetes accepts.
std::string pytorchjob_manifest(const PyTorchJobOptions& options);

}  // namespace histocnn::pipeline
