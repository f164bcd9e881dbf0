"""The deployment files, checked without a container engine or a cluster.

- Dockerfile: Debian 12, built with the repository's own scripts/install-deps.sh, multi-stage, a
  numeric non-root USER, EXPOSE 8501, a HEALTHCHECK on /healthz, ENTRYPOINT histocnn with the
  serve CMD; the run-time packages exist in Debian; dockerfile-utils' linter (tests/deploy).
- examples/kubernetes: the schemas of Kubernetes (kubernetes-models, kubernetes-types) and of
  KServe (tests/deploy/kserve-v1beta1.d.ts), through tests/deploy/validate.js; and, here, that
  the manifests agree with the image and with `histocnn serve`: probe paths and ports, the
  container arguments (flags of the serve contract, and of `histocnn serve --help` when the
  build has it), the read-only model volume on the ReadWriteMany claim, the non-root user, the
  grace period for draining, and the rollback patch.

The Node.js checks skip (visibly, with -rs) where node or npm is missing; `npm ci` needs the npm
registry (or npm's cache).
"""
import copy
import json
import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # PyYAML reads YAML 1.1, as Kubernetes does

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
K8S = ROOT / "examples" / "kubernetes"
CHECKS = ROOT / "tests" / "deploy"

PORT = 8501
# `histocnn serve` options (the server contract's, and src/cli/commands.cpp's): those taking a
# value, and switches. `histocnn serve --help` is checked too where the build is at hand.
SERVE_VALUE_FLAGS = {
    "--model-base-path", "--model-name", "--model-config-file", "--host", "--port", "--rest-api-port",
    "--file-system-poll-wait-seconds", "--max-batch-size", "--batch-timeout-micros",
    "--num-batch-threads", "--max-enqueued-batches", "--max-body-bytes", "--max-instances",
    "--max-image-pixels", "--request-timeout", "--api-key-file", "--http-threads", "--device",
}
SERVE_SWITCHES = {"--enable-batching", "--no-access-log"}
INTEGER_FLAGS = {"--port", "--rest-api-port", "--max-batch-size", "--batch-timeout-micros",
                 "--num-batch-threads", "--max-enqueued-batches", "--max-body-bytes", "--max-instances",
                 "--max-image-pixels", "--http-threads"}
NUMBER_FLAGS = {"--file-system-poll-wait-seconds", "--request-timeout"}


# ---- Dockerfile ------------------------------------------------------------------------------

def dockerfile_stages(text):
    """[(FROM argument, [(INSTRUCTION, arguments)])], continuation lines joined, comments dropped."""
    instructions, logical = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or (not logical and not stripped):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, rest = logical.strip().partition(" ")
        instructions.append((keyword.upper(), " ".join(rest.split())))
        logical = ""
    stages = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            stages.append((rest, []))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1][1].append((keyword, rest))
    return stages


def exec_form(argument):
    value = json.loads(argument)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), argument
    return value


@pytest.fixture(scope="module")
def stages():
    return dockerfile_stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final_stage(stages):
    return dict_of_last(stages[-1][1])


def dict_of_last(instructions):
    """The last value of each instruction (what Docker keeps for CMD, USER, ...), and all RUNs."""
    out = {"RUN": [], "COPY": [], "EXPOSE": []}
    for keyword, rest in instructions:
        if keyword in out:
            out[keyword].append(rest)
        else:
            out[keyword] = rest
    return out


def test_dockerfile_builds_on_debian_12_with_the_repository_scripts(stages):
    assert len(stages) >= 2, "a multi-stage build: build tools stay out of the final image"
    for base, _ in stages:
        image = base.split()[0]
        assert image.startswith("debian:bookworm"), f"FROM {base}: Debian 12 (bookworm)"
    build_runs = [rest for _, instructions in stages[:-1] for keyword, rest in instructions if keyword == "RUN"]
    deps = [r for r in build_runs if "scripts/install-deps.sh" in r]
    assert deps, "the build stage installs its packages with scripts/install-deps.sh"
    assert all("--test" not in r for r in deps), "the image needs no test dependencies"
    assert any(re.search(r"cmake --install \S+ --prefix /usr/local", r) for r in build_runs)
    final = dict_of_last(stages[-1][1])
    assert any("--from=" in c for c in final["COPY"]), "the final stage copies the installed files"


def test_final_stage_has_only_runtime_packages(final_stage):
    packages = final_stage_packages(final_stage)
    assert "libtorch1.13" in packages and "libjs-bootstrap5" in packages, packages
    build_only = [p for p in packages if p.endswith("-dev") or p in {
        "build-essential", "cmake", "ninja-build", "ccache", "g++", "gcc", "git", "pkg-config"}]
    assert not build_only, f"build-time packages in the final image: {build_only}"
    assert any("--no-install-recommends" in r for r in final_stage["RUN"] if "apt-get install" in r)


# What each -dev package of scripts/install-deps.sh needs at run time in the image (its library
# packages, from `apt-cache depends`); [] for header-only ones and for the Python bindings' build,
# which the image does not ship. A -dev package added to install-deps.sh must be added here.
DEV_TO_RUNTIME = {
    "libtorch-dev": ["libtorch1.13"],
    "libopencv-core-dev": ["libopencv-core406"],
    "libopencv-imgproc-dev": ["libopencv-imgproc406"],
    "libopencv-imgcodecs-dev": ["libopencv-imgcodecs406"],
    "libfmt-dev": ["libfmt9"],
    "libhdf5-dev": ["libhdf5-103-1"],
    "libcpp-httplib-dev": ["libcpp-httplib0.11"],
    "prometheus-cpp-dev": ["libprometheus-cpp-core1.0"],  # the server links prometheus-cpp::core only
    "libyaml-cpp-dev": ["libyaml-cpp0.7"],
    "libsqlitecpp-dev": [],  # static libSQLiteCpp.a; its run-time half is libsqlite3-0
    "libsqlite3-dev": ["libsqlite3-0"],
    "libopenslide-dev": ["libopenslide0"],
    "libtiff-dev": ["libtiff6"],
    "libgloo-dev": ["libgloo0"],
    "libeigen3-dev": [], "nlohmann-json3-dev": [], "libcli11-dev": [],
    "pybind11-dev": [], "python3-dev": [],
}
# Run-time packages that install-deps.sh names directly.
DIRECT_RUNTIME = ["libopenblas0-pthread", "libjs-bootstrap5"]


def final_stage_packages(final_stage):
    installs = " ".join(r for r in final_stage["RUN"] if "apt-get install" in r)
    words = installs.split("apt-get install", 1)[1].split("&&")[0].split()
    return [w for w in words if not w.startswith("-")]


def install_deps_packages():
    text = (ROOT / "scripts" / "install-deps.sh").read_text()
    block = re.search(r"^PACKAGES=\((.*?)^\)", text, re.S | re.M)
    assert block, "scripts/install-deps.sh: no PACKAGES=( ... ) list"
    return block.group(1).split()


def test_final_stage_installs_the_runtime_half_of_install_deps(final_stage):
    packages = set(final_stage_packages(final_stage))
    dev = [p for p in install_deps_packages() if p.endswith("-dev")]
    unknown = [p for p in dev if p not in DEV_TO_RUNTIME]
    assert not unknown, f"install-deps.sh builds against {unknown}: add their run-time packages " \
                        "to the Dockerfile's final stage and to DEV_TO_RUNTIME here"
    needed = {r for p in dev for r in DEV_TO_RUNTIME[p]} | set(DIRECT_RUNTIME)
    assert needed <= packages, f"missing from the final stage: {sorted(needed - packages)}"


def test_runtime_packages_exist_in_debian(final_stage):
    if not shutil.which("apt-cache"):
        pytest.skip("apt-cache is not installed")
    probe = subprocess.run(["apt-cache", "show", "libc6"], capture_output=True, text=True)
    if probe.returncode != 0 or "bookworm" not in Path("/etc/os-release").read_text():
        pytest.skip("no Debian 12 package lists here (apt-get update)")
    packages = final_stage_packages(final_stage)
    if subprocess.run(["apt-cache", "show", *packages], capture_output=True).returncode != 0:
        missing = [p for p in packages
                   if subprocess.run(["apt-cache", "show", p], capture_output=True).returncode != 0]
        assert not missing, f"not Debian 12 packages: {missing}"
    # And they are what the -dev packages link to.
    devs = [dev for dev, runtimes in DEV_TO_RUNTIME.items() if runtimes]
    out = subprocess.run(["apt-cache", "depends", *devs], capture_output=True, text=True).stdout
    depends, current = {}, None
    for line in out.splitlines():
        if not line.startswith(" "):
            current = line.strip()
            depends[current] = set()
        elif current and (m := re.match(r"\s*\|?Depends: (\S+)", line)):
            depends[current].add(m.group(1))
    for dev in devs:
        runtimes, listed = DEV_TO_RUNTIME[dev], depends.get(dev, set())
        assert set(runtimes) <= listed, f"{dev} depends on {sorted(listed)}, not on {runtimes}"


def test_final_stage_runs_histocnn_serve_as_a_non_root_user(final_stage):
    user = final_stage.get("USER", "root").split(":")[0]
    assert user.isdigit() and int(user) != 0, \
        f"USER {user!r}: numeric and non-root (Kubernetes' runAsNonRoot can only verify a number)"
    assert str(PORT) in " ".join(final_stage["EXPOSE"]).split()
    assert exec_form(final_stage["ENTRYPOINT"]) == ["histocnn"]
    assert exec_form(final_stage["CMD"]) == [
        "serve", "--model-base-path", "/models/idc", "--model-name", "idc",
        "--host", "0.0.0.0", "--port", str(PORT)]
    options = parse_serve_args(exec_form(final_stage["CMD"]))
    assert options["--host"] == "0.0.0.0", "a container must listen beyond its loopback"


def test_healthcheck_asks_healthz_on_the_served_port(final_stage):
    healthcheck = final_stage.get("HEALTHCHECK")
    assert healthcheck, "HEALTHCHECK is missing"
    flags, _, command = healthcheck.partition("CMD ")
    assert command, "HEALTHCHECK CMD ..."
    argv = exec_form(command) if command.lstrip().startswith("[") else shlex.split(command)
    served_port = parse_serve_args(exec_form(final_stage["CMD"]))["--port"]
    assert any(a.endswith(f":{served_port}/healthz") for a in argv), argv
    tool = argv[0]
    installs = " ".join(r for r in final_stage["RUN"] if "apt-get install" in r)
    assert tool in installs.split() or tool in {"bash", "sh"}, f"{tool} is not installed in the image"
    assert re.search(r"--timeout=\d+s", flags) and re.search(r"--start-period=\d+s", flags)


def test_dockerignore_keeps_build_outputs_and_git_out_of_the_context():
    patterns = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines()
                if l.strip() and not l.startswith("#")]
    for needed in [".git", "build*", "runs", "**/node_modules"]:
        assert needed in patterns, f".dockerignore lacks {needed}"
    for kept in ["scripts", "src", "include", "cmake", "CMakeLists.txt"]:
        assert kept not in patterns


# ---- the serve command line -------------------------------------------------------------------

def parse_serve_args(args):
    """`histocnn serve` arguments -> {flag: value}; fails on an unknown or value-less flag."""
    assert args and args[0] == "serve", f"the command is `histocnn serve`, not {args[:1]}"
    options, i = {}, 1
    while i < len(args):
        flag = args[i]
        name, eq, inline = flag.partition("=")
        if name in SERVE_SWITCHES and not eq:
            options[name] = True
            i += 1
            continue
        assert name in SERVE_VALUE_FLAGS, f"{flag!r} is not an option of histocnn serve"
        assert name not in options, f"{name} given twice"
        if eq:
            value = inline
            i += 1
        else:
            assert i + 1 < len(args) and not args[i + 1].startswith("--"), f"{name} needs a value"
            value = args[i + 1]
            i += 2
        assert isinstance(value, str), f"{name} {value!r}: Kubernetes args are strings"
        if name in INTEGER_FLAGS:
            assert value.isdigit(), f"{name} {value!r} is not a whole number"
        if name in NUMBER_FLAGS:
            assert re.fullmatch(r"\d+(\.\d+)?", value), f"{name} {value!r} is not a number"
        options[name] = value
    if "--rest-api-port" in options:
        assert "--port" not in options, "--port and --rest-api-port are the same option"
        options["--port"] = options.pop("--rest-api-port")
    assert "--port" in options, "--port is missing (the default is not 8501)"
    assert ("--model-base-path" in options) != ("--model-config-file" in options), \
        "histocnn serve takes --model-base-path (one model) or --model-config-file, not both or neither"
    if "--model-config-file" in options:
        assert "--model-name" not in options, "the config file names the models"
    return options


# ---- manifests -----------------------------------------------------------------------------

def load(name):
    docs = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d is not None]
    assert len(docs) == 1, f"{name}: one object"
    return docs[0]


@pytest.fixture(scope="module")
def deployment():
    d = load("deployment.yaml")
    assert (d["apiVersion"], d["kind"]) == ("apps/v1", "Deployment")
    return d


@pytest.fixture(scope="module")
def pvc():
    p = load("pvc.yaml")
    assert (p["apiVersion"], p["kind"]) == ("v1", "PersistentVolumeClaim")
    return p


@pytest.fixture(scope="module")
def isvc():
    i = load("inferenceservice.yaml")
    assert (i["apiVersion"], i["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    return i


def resolve_port(port, container):
    if isinstance(port, int):
        return port
    named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    assert port in named, f"probe port {port!r} names no container port"
    return named[port]


def volume_of(pod_spec, container, file_path):
    """The volume mount and the volume that a path in the container lies on."""
    mounts = [m for m in container.get("volumeMounts", [])
              if file_path == m["mountPath"] or file_path.startswith(m["mountPath"].rstrip("/") + "/")]
    assert mounts, f"{file_path} is on no volume mount"
    mount = max(mounts, key=lambda m: len(m["mountPath"]))
    volume = next(v for v in pod_spec["volumes"] if v["name"] == mount["name"])
    return mount, volume


def mounted_model_config(pod_spec, container, options):
    """The --model-config-file a pod reads: parsed from the ConfigMap in model-config.yaml."""
    config_file = options["--model-config-file"]
    mount, volume = volume_of(pod_spec, container, config_file)
    config_map = load("model-config.yaml")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    key = config_file[len(mount["mountPath"].rstrip("/")) + 1:]
    assert key in config_map["data"], f"the ConfigMap has no {key}"
    return json.loads(config_map["data"][key])


def check_server_pod(pod_spec, container, pvc, final_stage):
    """What the Deployment and the InferenceService share: the server's pod."""
    options = parse_serve_args(container["args"])
    assert "command" not in container, "keep the image's ENTRYPOINT (histocnn); give args only"
    served_port = int(options["--port"])
    image_port = int(parse_serve_args(exec_form(final_stage["CMD"]))["--port"])
    assert served_port == image_port == PORT
    assert options["--host"] == "0.0.0.0"
    assert [p["containerPort"] for p in container["ports"]] == [served_port]

    for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
        get = container[probe]["httpGet"]
        assert get["path"] == path, f"{probe} asks {get['path']}, the server's is {path}"
        assert resolve_port(get["port"], container) == served_port, f"{probe} port"
    if "startupProbe" in container:
        get = container["startupProbe"]["httpGet"]
        assert get["path"] == "/healthz" and resolve_port(get["port"], container) == served_port

    # The model base paths lie on the shared claim, mounted read-only.
    if "--model-base-path" in options:
        bases = [options["--model-base-path"]]
    else:
        bases = [m["base_path"] for m in mounted_model_config(pod_spec, container, options)["model_config_list"]["config"]]
    for base in bases:
        mount, volume = volume_of(pod_spec, container, base)
        assert mount.get("readOnly") is True, f"{base} is mounted read-write"
        claim = volume["persistentVolumeClaim"]
        assert claim["claimName"] == pvc["metadata"]["name"]
        assert claim.get("readOnly") is True
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]

    # Non-root, as the image's USER.
    user = int(final_stage["USER"].split(":")[0])
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"].get("runAsUser", user) == user
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # SIGTERM drains: leave it time to.
    assert pod_spec["terminationGracePeriodSeconds"] >= 30
    for kind in ["requests", "limits"]:
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"resources.{kind}"
    return options


def test_deployment_serves_what_the_image_serves(deployment, pvc, final_stage):
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    options = check_server_pod(pod["spec"], container, pvc, final_stage)
    assert options["--model-name"] == "idc"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_service_reaches_the_pods_on_8501(deployment):
    service = load("service.yaml")
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    [port] = service["spec"]["ports"]
    assert port["port"] == PORT
    assert resolve_port(port["targetPort"], pod["spec"]["containers"][0]) == PORT


def test_inferenceservice_runs_the_same_server_over_kserve_v1(isvc, deployment, pvc, final_stage):
    predictor = isvc["spec"]["predictor"]
    [container] = predictor["containers"]
    assert container["name"] == "kserve-container"
    deployed = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == deployed["args"] and container["image"] == deployed["image"]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env.get("PROTOCOL") == "v1", "KServe's v1 protocol is TensorFlow Serving's REST API"
    check_server_pod(predictor, container, pvc, final_stage)
    assert predictor["minReplicas"] == 2


def apply_json_patch(document, patch):
    """The JSON Patch operations that rollback-patch.json uses, "add" and "replace" (RFC 6902)."""
    document = copy.deepcopy(document)
    for op in patch:
        assert op["op"] in ("add", "replace"), op
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target = document
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if isinstance(target, list) and op["op"] == "add":
            target.insert(len(target) if last == "-" else int(last), op["value"])
        elif isinstance(target, list):
            target[int(last)] = op["value"]
        else:
            assert op["op"] == "add" or last in target, f"replace: {op['path']} does not exist"
            target[last] = op["value"]
    return document


@pytest.fixture(scope="module")
def rolled_back(deployment):
    patch = json.loads((K8S / "rollback-patch.json").read_text())
    return apply_json_patch(deployment, patch)


def test_rollback_patch_serves_from_the_config_map(rolled_back, deployment, pvc, final_stage):
    pod = rolled_back["spec"]["template"]["spec"]
    [container] = pod["containers"]
    options = check_server_pod(pod, container, pvc, final_stage)
    config = mounted_model_config(pod, container, options)
    [model] = config["model_config_list"]["config"]
    before = parse_serve_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"])
    assert model["name"] == before["--model-name"] and model["base_path"] == before["--model-base-path"]
    assert set(model) <= {"name", "base_path", "model_version_policy", "version_labels"}
    versions = model["model_version_policy"]["specific"]["versions"]
    assert versions and all(isinstance(v, int) for v in versions)
    assert set(model.get("version_labels", {}).values()) <= set(versions), "a label must name a served version"
    same = {k: v for k, v in before.items() if k not in ("--model-base-path", "--model-name")}
    assert {k: v for k, v in options.items() if k != "--model-config-file"} == same


@pytest.fixture
def serve_cli(cli):
    proc = subprocess.run([cli, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"histocnn serve --help failed: {proc.stderr.strip()[:200]}"
    return cli


def test_serve_help_lists_the_flags_the_manifests_use(serve_cli, deployment, isvc, final_stage, rolled_back):
    proc = subprocess.run([serve_cli, "serve", "--help"], capture_output=True, text=True, timeout=60)
    known = set(re.findall(r"--[a-z0-9][a-z0-9-]*", proc.stdout))
    used = set()
    for args in [exec_form(final_stage["CMD"]),
                 deployment["spec"]["template"]["spec"]["containers"][0]["args"],
                 isvc["spec"]["predictor"]["containers"][0]["args"],
                 rolled_back["spec"]["template"]["spec"]["containers"][0]["args"]]:
        used |= {a.split("=")[0] for a in args if a.startswith("--")}
    assert used <= known, f"not in `histocnn serve --help`: {sorted(used - known)}"


# ---- schemas and lint (Node.js, tests/deploy) ------------------------------------------------

def installed_matches_lock():
    """node_modules holds exactly what package-lock.json pins (npm's own record of node_modules)."""
    try:
        hidden = json.loads((CHECKS / "node_modules" / ".package-lock.json").read_text())["packages"]
        lock = json.loads((CHECKS / "package-lock.json").read_text())["packages"]
    except (OSError, ValueError, KeyError):
        return False
    pinned = {k: (v.get("version"), v.get("integrity")) for k, v in lock.items() if k}
    return pinned == {k: (v.get("version"), v.get("integrity")) for k, v in hidden.items()}


@pytest.fixture(scope="module")
def validator():
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the schema checks (tests/deploy)")
    major = int(subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
                .lstrip("v").split(".")[0])
    if major < 18:
        pytest.skip(f"Node.js {major} is too old for tests/deploy (18 or newer)")
    if not installed_matches_lock():
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"], cwd=CHECKS,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"npm ci in tests/deploy failed:\n{proc.stdout}\n{proc.stderr}"

    def run(*args, cwd=ROOT):
        return subprocess.run([node, str(CHECKS / "validate.js"), *map(str, args)], cwd=cwd,
                              capture_output=True, text=True, timeout=300)
    return run


def test_manifests_and_dockerfile_pass_the_schemas_and_the_linter(validator):
    proc = validator()
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ["deployment.yaml", "service.yaml", "pvc.yaml", "inferenceservice.yaml"]:
        assert f"ok   examples/kubernetes/{name}" in proc.stdout
    assert "ok   Dockerfile: Dockerfile lint" in proc.stdout


def test_rolled_back_deployment_passes_the_schemas(validator, rolled_back, tmp_path):
    patched = tmp_path / "deployment-rolled-back.yaml"
    patched.write_text(yaml.safe_dump(rolled_back, sort_keys=False))
    proc = validator(patched)
    assert proc.returncode == 0, proc.stdout + proc.stderr


BROKEN = [  # (file, text, replaced by, what the validator must say)
    ("deployment.yaml", "readinessProbe:", "readynessProbe:",
     "'\"readynessProbe\"' does not exist in type 'Container'"),
    ("deployment.yaml", "replicas: 2", 'replicas: "2"', "spec/replicas must be integer"),
    ("service.yaml", "type: ClusterIP", "type: Clusterip", "spec/type must be equal to one of the allowed values"),
    ("pvc.yaml", "      storage: 5Gi", "      storage: 5 gigabytes", 'must match format "quantity"'),
    ("inferenceservice.yaml", "    minReplicas: 2", "    minReplica: 2",
     "'\"minReplica\"' does not exist in type 'PredictorSpec'"),
    ("inferenceservice.yaml", "value: v1", "value: v3", "PROTOCOL must be v1 or v2"),
    ("inferenceservice.yaml", "containerPort: 8501", "containerPort: http", "containerPort must be integer"),
    ("service.yaml", "  type: ClusterIP", "  type: ClusterIP\n  type: NodePort", "Map keys must be unique"),
]


def test_validator_rejects_broken_manifests(validator, tmp_path):
    """Each broken copy fails, for the reason planted: the checks above are not vacuous."""
    files = []
    for i, (name, old, new, expected) in enumerate(BROKEN):
        text = (K8S / name).read_text()
        assert old in text, (name, old)
        broken = tmp_path / f"case{i}" / name
        broken.parent.mkdir()
        broken.write_text(text.replace(old, new, 1))
        files.append(broken)
    proc = validator(*files, cwd=tmp_path)
    assert proc.returncode != 0
    missed = [(name, new) for (name, _, new, expected), f in zip(BROKEN, files)
              if not any(line.strip().startswith(f"case{files.index(f)}/{name}") and expected in line
                         for line in proc.stderr.splitlines())]
    assert not missed, f"not caught: {missed}\n{proc.stderr}"


def test_validator_rejects_a_broken_dockerfile(validator, tmp_path):
    text = DOCKERFILE.read_text()
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace("HEALTHCHECK --interval=", "HEALTHCHECK --intervals=", 1))
    proc = validator("--dockerfile", broken)
    assert proc.returncode != 0 and "Unknown flag: intervals" in proc.stderr, proc.stdout + proc.stderr


# ---- the manifests' arguments, run (needs the build: HISTOCNN_CLI, set by ctest) ---------------

class LocalServer:
    """`histocnn serve` with a manifest's arguments, made to run here: the model paths moved under
    a temporary folder, a free port on the loopback address, a short poll."""

    def __init__(self, cli, args, tmp_path, base_path=None, config_file=None):
        argv = list(args)

        def put(flag, value):
            if flag in argv:
                argv[argv.index(flag) + 1] = str(value)
            else:
                argv.extend([flag, str(value)])
        if "--model-base-path" in argv:
            put("--model-base-path", base_path)
        if "--model-config-file" in argv:
            put("--model-config-file", config_file)
        put("--port", 0)
        put("--host", "127.0.0.1")
        put("--file-system-poll-wait-seconds", "0.2")
        self.log = open(tmp_path / f"serve-{os.getpid()}-{id(self)}.log", "w+")
        self.proc = subprocess.Popen([cli, *argv], stdout=subprocess.PIPE, stderr=self.log, text=True,
                                     env={**os.environ, "HISTOCNN_PROGRESS": "0"})
        ready, _, _ = select.select([self.proc.stdout], [], [], 120)
        line = self.proc.stdout.readline() if ready else ""
        if "listening on http://" not in line:
            self.proc.kill()
            self.log.seek(0)
            raise AssertionError(f"histocnn {' '.join(argv)} did not start: {line!r}\n{self.log.read()}")
        self.url = line.strip().rsplit(" ", 1)[-1]

    def get(self, path):
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def wait_for(self, predicate, what, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        self.log.seek(0)
        raise AssertionError(f"{what}: not within {timeout} s\n{self.log.read()[-3000:]}")

    def available_versions(self, name="idc"):
        status, body = self.get(f"/v1/models/{name}")
        if status != 200:
            return set()
        return {s["version"] for s in body["model_version_status"] if s["state"] == "AVAILABLE"}

    def sigterm(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self.log.close()
        return code


def test_manifest_arguments_serve_the_probes_and_drain_on_sigterm(serve_cli, serving_runs, deployment, isvc,
                                                                  final_stage, tmp_path):
    """The pods' life, on the real server: alive but not ready on an empty volume, ready once a
    version is pushed, exit 0 on SIGTERM; the image's CMD and the InferenceService's arguments too."""
    base = tmp_path / "models" / "idc"
    base.mkdir(parents=True)
    server = LocalServer(serve_cli, deployment["spec"]["template"]["spec"]["containers"][0]["args"], tmp_path,
                         base_path=base)
    try:
        assert server.get("/healthz") == (200, {"status": "alive"})
        assert server.get("/readyz")[0] == 503, "ready without a model version"
        subprocess.run([serve_cli, "push", serving_runs[0], base], check=True, capture_output=True, timeout=300)
        server.wait_for(lambda: server.get("/readyz")[0] == 200, "ready after `histocnn push`")
        assert server.available_versions() == {"1"}
    finally:
        assert server.sigterm() == 0
    for args in [exec_form(final_stage["CMD"]), isvc["spec"]["predictor"]["containers"][0]["args"]]:
        server = LocalServer(serve_cli, args, tmp_path, base_path=base)
        try:
            server.wait_for(lambda: server.get("/readyz")[0] == 200, f"ready with {args}")
            assert server.get("/healthz")[0] == 200
        finally:
            assert server.sigterm() == 0


def test_rollback_through_the_config_map_without_a_restart(serve_cli, serving_runs, rolled_back, tmp_path):
    """The rolled-back pod's arguments and ConfigMap: the pinned version is served; a new pin in the
    file (what the kubelet does on `kubectl apply -f model-config.yaml`) switches it, same process."""
    base = tmp_path / "models" / "idc"
    for run in serving_runs:
        subprocess.run([serve_cli, "push", run, base], check=True, capture_output=True, timeout=300)
    config = json.loads(load("model-config.yaml")["data"]["models.config.json"])
    [model] = config["model_config_list"]["config"]
    model["base_path"] = str(base)
    assert model["model_version_policy"]["specific"]["versions"] == [1]
    config_file = tmp_path / "models.config.json"
    config_file.write_text(json.dumps(config))
    server = LocalServer(serve_cli, rolled_back["spec"]["template"]["spec"]["containers"][0]["args"], tmp_path,
                         config_file=config_file)
    try:
        server.wait_for(lambda: server.available_versions() == {"1"}, "version 1 served, as pinned")
        model["model_version_policy"]["specific"]["versions"] = [2]
        model["version_labels"] = {"stable": 2}
        time.sleep(1.1)  # a modification time the poll can tell apart, on any file system
        staged = tmp_path / "models.config.json.new"
        staged.write_text(json.dumps(config))
        os.replace(staged, config_file)  # atomically, as the kubelet swaps a ConfigMap's files
        server.wait_for(lambda: server.available_versions() == {"2"}, "version 2 served after the config changed")
        assert server.get("/readyz")[0] == 200
    finally:
        assert server.sigterm() == 0
