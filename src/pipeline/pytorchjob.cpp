#include "histocnn/pipeline/pytorchjob.h"

#include "histocnn/core/error.h"

#include "json_yaml.h"

#include <nlohmann/json.hpp>

#include <regex>

namespace histocnn::pipeline {

namespace {

using json = nlohmann::json;

json replica(const PyTorchJobOptions& o, int replicas) {
  json container = {
      {"name", "pytorch"},
      {"image", o.image},
      {"imagePullPolicy", "IfNotPresent"},
      {"command", o.command},
      {"env", json::array({{{"name", "HISTOCNN_PROGRESS"}, {"value", "0"}}})},
      {"ports", json::array({{{"name", "pytorchjob-port"}, {"containerPort", o.port}}})},
  };
  json requests = json::object();
  if (!o.cpu.empty()) requests["cpu"] = o.cpu;
  if (!o.memory.empty()) requests["memory"] = o.memory;
  json resources = json::object();
  if (!requests.empty()) resources["requests"] = requests;
  if (o.gpus > 0) resources["limits"] = {{"nvidia.com/gpu", o.gpus}};
  if (!resources.empty()) container["resources"] = resources;
  json pod = json::object();
  if (!o.volume_claim.empty()) {
    container["volumeMounts"] = json::array({{{"name", "workspace"}, {"mountPath", o.mount_path}}});
    container["workingDir"] = o.mount_path;
    pod["volumes"] = json::array({{{"name", "workspace"}, {"persistentVolumeClaim", {{"claimName", o.volume_claim}}}}});
  }
  pod["containers"] = json::array({container});
  return {{"replicas", replicas}, {"restartPolicy", o.restart_policy}, {"template", {{"spec", pod}}}};
}

}  // namespace

std::string pytorchjob_manifest(const PyTorchJobOptions& o) {
  static const std::regex dns_label("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  HISTOCNN_CHECK(!o.name.empty() && o.name.size() <= 63 && std::regex_match(o.name, dns_label),
                 "PyTorchJob name '{}' must be 1-63 lowercase letters, digits or '-', starting and ending with a "
                 "letter or digit",
                 o.name);
  HISTOCNN_CHECK(o.namespace_name.empty() || std::regex_match(o.namespace_name, dns_label),
                 "PyTorchJob namespace '{}' must be lowercase letters, digits or '-'", o.namespace_name);
  HISTOCNN_CHECK(!o.image.empty(), "the PyTorchJob needs a container image (the histocnn image)");
  HISTOCNN_CHECK(!o.command.empty() && !o.command.front().empty(),
                 "the PyTorchJob needs a command, e.g. histocnn train --data ...");
  HISTOCNN_CHECK(o.workers >= 0, "PyTorchJob workers must be >= 0 (the Master is one more), got {}", o.workers);
  HISTOCNN_CHECK(o.port >= 1 && o.port <= 65535, "PyTorchJob port must be in [1, 65535], got {}", o.port);
  HISTOCNN_CHECK(o.gpus >= 0, "PyTorchJob gpus must be >= 0, got {}", o.gpus);
  HISTOCNN_CHECK(o.restart_policy == "Always" || o.restart_policy == "OnFailure" || o.restart_policy == "Never" ||
                     o.restart_policy == "ExitCode",
                 "PyTorchJob restart_policy must be Always, OnFailure, Never or ExitCode, got '{}'", o.restart_policy);
  HISTOCNN_CHECK(o.volume_claim.empty() || (!o.mount_path.empty() && o.mount_path.front() == '/'),
                 "PyTorchJob mount_path must be an absolute path, got '{}'", o.mount_path);

  json metadata = {{"name", o.name}, {"labels", {{"app.kubernetes.io/name", "histocnn"}}}};
  if (!o.namespace_name.empty()) metadata["namespace"] = o.namespace_name;
  json specs = {{"Master", replica(o, 1)}};
  if (o.workers > 0) specs["Worker"] = replica(o, o.workers);
  const json job = {{"apiVersion", "kubeflow.org/v1"},
                    {"kind", "PyTorchJob"},
                    {"metadata", metadata},
                    {"spec", {{"pytorchReplicaSpecs", specs}}}};
  return detail::json_to_yaml(job);
}

}  // namespace histocnn::pipeline
