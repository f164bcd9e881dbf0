#include "test_prelude.h"

#include "histocnn/pipeline/pytorchjob.h"

#include <yaml-cpp/yaml.h>

#include <regex>
#include <string>
#include <vector>

using namespace histocnn;

namespace {

// The part of the PyTorchJob CRD (kubeflow/training-operator, manifests/base/crds/
// kubeflow.org_pytorchjobs.yaml, version v1, openAPIV3Schema) that covers the fields the manifest
// uses: types, required fields and the int-or-string quantities, as the API server checks them.
const char* kCrdSchema = R"(
type: object
required: [apiVersion, kind, metadata, spec]
properties:
  apiVersion: {type: string}
  kind: {type: string}
  metadata:
    type: object
    required: [name]
    properties:
      name: {type: string}
      namespace: {type: string}
      labels: {type: object, additionalProperties: {type: string}}
  spec:
    type: object
    required: [pytorchReplicaSpecs]
    properties:
      pytorchReplicaSpecs:
        type: object
        additionalProperties:
          type: object
          properties:
            replicas: {type: integer}
            restartPolicy: {type: string}
            template:
              type: object
              properties:
                spec:
                  type: object
                  required: [containers]
                  properties:
                    containers:
                      type: array
                      items:
                        type: object
                        required: [name]
                        properties:
                          name: {type: string}
                          image: {type: string}
                          imagePullPolicy: {type: string}
                          command: {type: array, items: {type: string}}
                          args: {type: array, items: {type: string}}
                          workingDir: {type: string}
                          env:
                            type: array
                            items:
                              type: object
                              required: [name]
                              properties:
                                name: {type: string}
                                value: {type: string}
                          ports:
                            type: array
                            items:
                              type: object
                              required: [containerPort]
                              properties:
                                containerPort: {type: integer}
                                name: {type: string}
                          resources:
                            type: object
                            properties:
                              limits: {type: object, additionalProperties: {x-kubernetes-int-or-string: true}}
                              requests: {type: object, additionalProperties: {x-kubernetes-int-or-string: true}}
                          volumeMounts:
                            type: array
                            items:
                              type: object
                              required: [mountPath, name]
                              properties:
                                mountPath: {type: string}
                                name: {type: string}
                    volumes:
                      type: array
                      items:
                        type: object
                        required: [name]
                        properties:
                          name: {type: string}
                          persistentVolumeClaim:
                            type: object
                            required: [claimName]
                            properties:
                              claimName: {type: string}
)";

// What a YAML 1.2 reader (the API server's) makes of a scalar: quoted ones are strings.
std::string scalar_type(const YAML::Node& n) {
  if (n.Tag() == "!") return "string";
  const std::string s = n.Scalar();
  if (std::regex_match(s, std::regex("[-+]?[0-9]+"))) return "integer";
  if (std::regex_match(s, std::regex("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?"))) return "number";
  if (s == "true" || s == "false") return "boolean";
  if (s.empty() || s == "null" || s == "~") return "null";
  return "string";
}

// A validator for the schema subset above; each problem is a path and what is wrong.
void validate(const YAML::Node& value, const YAML::Node& schema, const std::string& path,
              std::vector<std::string>& problems) {
  if (schema["x-kubernetes-int-or-string"]) {
    const auto t = value.IsScalar() ? scalar_type(value) : "";
    if (t != "integer" && t != "string") problems.push_back(path + ": not an integer or a string");
    return;
  }
  const std::string type = schema["type"] ? schema["type"].as<std::string>() : "";
  if (type == "object") {
    if (!value.IsMap()) {
      problems.push_back(path + ": not an object");
      return;
    }
    if (schema["required"]) {
      for (const auto& r : schema["required"]) {
        if (!value[r.as<std::string>()]) problems.push_back(path + ": missing required field " + r.as<std::string>());
      }
    }
    for (const auto& kv : value) {
      const auto key = kv.first.as<std::string>();
      if (schema["properties"] && schema["properties"][key]) {
        validate(kv.second, schema["properties"][key], path + "." + key, problems);
      } else if (schema["additionalProperties"]) {
        validate(kv.second, schema["additionalProperties"], path + "." + key, problems);
      } else {
        problems.push_back(path + ": field " + key + " is not in the schema");
      }
    }
  } else if (type == "array") {
    if (!value.IsSequence()) {
      problems.push_back(path + ": not an array");
      return;
    }
    for (size_t i = 0; i < value.size(); ++i) {
      validate(value[i], schema["items"], path + "[" + std::to_string(i) + "]", problems);
    }
  } else if (!type.empty()) {
    if (!value.IsScalar() || scalar_type(value) != type) problems.push_back(path + ": not of type " + type);
  }
}

std::vector<std::string> crd_problems(const std::string& manifest) {
  std::vector<std::string> problems;
  validate(YAML::Load(manifest), YAML::Load(kCrdSchema), "$", problems);
  return problems;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

}  // namespace

TEST_CASE("The PyTorchJob manifest has the Master and Workers, image, command and port the operator needs",
          "[pipeline][distributed]") {
  pipeline::PyTorchJobOptions o;
  o.name = "idc-train";
  o.namespace_name = "kubeflow-user";
  o.image = "registry.example.org/histocnn:0.1.0";
  o.command = {"histocnn", "train", "--data", "/workspace/data", "--epochs", "10", "--lr", "0.001", "--unfreeze",
               "--name", "true"};
  o.workers = 3;
  o.port = 23456;
  o.cpu = "4";
  o.memory = "8Gi";
  o.gpus = 1;
  o.volume_claim = "histocnn-workspace";
  const std::string text = pipeline::pytorchjob_manifest(o);
  INFO(text);
  const YAML::Node job = YAML::Load(text);
  CHECK(job["apiVersion"].as<std::string>() == "kubeflow.org/v1");
  CHECK(job["kind"].as<std::string>() == "PyTorchJob");
  CHECK(job["metadata"]["name"].as<std::string>() == "idc-train");
  CHECK(job["metadata"]["namespace"].as<std::string>() == "kubeflow-user");
  const YAML::Node specs = job["spec"]["pytorchReplicaSpecs"];
  REQUIRE(specs.size() == 2);
  for (const auto& [role, replicas] : std::vector<std::pair<std::string, int>>{{"Master", 1}, {"Worker", 3}}) {
    INFO(role);
    const YAML::Node r = specs[role];
    REQUIRE(r);
    CHECK(r["replicas"].as<int>() == replicas);
    CHECK(r["restartPolicy"].as<std::string>() == "OnFailure");
    const YAML::Node pod = r["template"]["spec"];
    REQUIRE(pod["containers"].size() == 1);
    const YAML::Node c = pod["containers"][0];
    CHECK(c["name"].as<std::string>() == "pytorch");  // the container the operator configures
    CHECK(c["image"].as<std::string>() == o.image);
    CHECK(c["command"].as<std::vector<std::string>>() == o.command);
    CHECK(c["ports"][0]["name"].as<std::string>() == "pytorchjob-port");
    CHECK(c["ports"][0]["containerPort"].as<int>() == 23456);
    CHECK(c["resources"]["limits"]["nvidia.com/gpu"].as<int>() == 1);
    CHECK(c["resources"]["requests"]["memory"].as<std::string>() == "8Gi");
    CHECK(c["volumeMounts"][0]["mountPath"].as<std::string>() == "/workspace");
    CHECK(pod["volumes"][0]["persistentVolumeClaim"]["claimName"].as<std::string>() == "histocnn-workspace");
    CHECK(c["env"][0]["name"].as<std::string>() == "HISTOCNN_PROGRESS");
  }
  // Arguments that look like numbers or booleans stay strings, as a container command must be.
  INFO(joined(crd_problems(text)));
  CHECK(crd_problems(text).empty());
  CHECK(text.find("\"0.001\"") != std::string::npos);
  CHECK(text.find("\"true\"") != std::string::npos);
}

TEST_CASE("A PyTorchJob of one process has no Worker replicas; bad fields are refused by name",
          "[pipeline][distributed]") {
  pipeline::PyTorchJobOptions o;
  o.workers = 0;
  const std::string text = pipeline::pytorchjob_manifest(o);
  const YAML::Node job = YAML::Load(text);
  CHECK(job["spec"]["pytorchReplicaSpecs"]["Master"]);
  CHECK_FALSE(job["spec"]["pytorchReplicaSpecs"]["Worker"]);
  CHECK_FALSE(job["metadata"]["namespace"]);
  CHECK_FALSE(job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["volumes"]);
  CHECK(crd_problems(text).empty());

  auto bad = [](auto change) {
    pipeline::PyTorchJobOptions b;
    change(b);
    return b;
  };
  CHECK_THROWS_WITH(pipeline::pytorchjob_manifest(bad([](auto& b) { b.name = "Idc_Train"; })), Catch::Contains("name"));
  CHECK_THROWS_WITH(pipeline::pytorchjob_manifest(bad([](auto& b) { b.workers = -1; })), Catch::Contains("workers"));
  CHECK_THROWS_WITH(pipeline::pytorchjob_manifest(bad([](auto& b) { b.restart_policy = "Sometimes"; })),
                    Catch::Contains("restart_policy"));
  CHECK_THROWS_WITH(pipeline::pytorchjob_manifest(bad([](auto& b) { b.command.clear(); })), Catch::Contains("command"));
  CHECK_THROWS_WITH(pipeline::pytorchjob_manifest(bad([](auto& b) { b.port = 70000; })), Catch::Contains("port"));
}

TEST_CASE("The CRD check itself catches what the API server would reject", "[pipeline][distributed]") {
  // A manifest without pytorchReplicaSpecs, a container without a name, and a port given as text.
  const std::string broken = R"(
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: x}
spec:
  runsOn: nothing
)";
  const auto p = crd_problems(broken);
  CHECK_THAT(joined(p), Catch::Contains("missing required field pytorchReplicaSpecs"));
  const std::string bad_container = R"(
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: x}
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      template:
        spec:
          containers:
          - image: histocnn
            ports: [{containerPort: "23456"}]
            command: [histocnn, train, --epochs, 5]
)";
  const auto q = joined(crd_problems(bad_container));
  CHECK_THAT(q, Catch::Contains("containers[0]: missing required field name"));
  CHECK_THAT(q, Catch::Contains("containerPort: not of type integer"));
  CHECK_THAT(q, Catch::Contains("command[3]: not of type string"));
}
