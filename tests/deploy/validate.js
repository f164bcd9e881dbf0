#!/usr/bin/env node
// Checks the deployment files without a cluster or a container engine, and exits non-zero with
// every problem found.
//
//  - Kubernetes objects: the validators of kubernetes-models, compiled from the Kubernetes OpenAPI
//    spec (types, required fields, enums, formats).
//  - Unknown or misplaced fields, which `kubectl apply` rejects (strict field validation): the
//    manifests are type-checked by the TypeScript compiler against kubernetes-types, generated from
//    the same OpenAPI spec; its excess-property check names the field and the type it is not in.
//  - KServe InferenceService: the same type check against kserve-v1beta1.d.ts (KServe's Go API
//    types, transcribed); the predictor's pod fields go through kubernetes-models' PodSpec
//    validator; and the rules of KServe's admission webhook that these manifests could break.
//  - Dockerfile: the linter of dockerfile-utils (the Dockerfile language server's).
//
// YAML is read as YAML 1.1, as Kubernetes reads it (so `on`/`yes` are booleans), with duplicate
// keys an error.
//
// Usage: node validate.js [--dockerfile FILE]... [MANIFEST.yaml]...
// Without arguments: the repository's Dockerfile and examples/kubernetes/*.yaml.
"use strict";

const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const ts = require("typescript");
const dockerfileUtils = require("dockerfile-utils");

const HERE = __dirname;
const ROOT = path.resolve(HERE, "..", "..");

const problems = [];
const problem = (where, message) => problems.push(`${where}: ${message}`);
const rel = (file) => path.relative(process.cwd(), file) || file;

// ---- arguments -------------------------------------------------------------------------------
let dockerfiles = [];
let manifests = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--dockerfile") dockerfiles.push(path.resolve(argv[++i]));
  else if (argv[i] === "-h" || argv[i] === "--help") {
    console.log("usage: node validate.js [--dockerfile FILE]... [MANIFEST.yaml]...");
    process.exit(0);
  } else manifests.push(path.resolve(argv[i]));
}
if (dockerfiles.length === 0 && manifests.length === 0) {
  dockerfiles = [path.join(ROOT, "Dockerfile")];
  const dir = path.join(ROOT, "examples", "kubernetes");
  manifests = fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => path.join(dir, f));
}

// ---- which schema for which object ----------------------------------------------------------
// kubernetes-models paths are the apiVersion ("v1", "apps/v1", "networking.k8s.io/v1");
// kubernetes-types paths use the group's short name ("core/v1", "apps/v1", "networking/v1").
function kubernetesSchema(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
  const typesModule = `kubernetes-types/${group.split(".")[0]}/${version}`;
  let Model;
  try {
    Model = require(`kubernetes-models/${apiVersion}/${kind}`)[kind];
  } catch (e) {
    return null;
  }
  if (!Model) return null;
  return {
    typesModule,
    typeName: kind,
    validate: (obj) => new Model(obj).validate(),
  };
}

const { PodSpec } = require("kubernetes-models/v1/PodSpec");
const { ObjectMeta } = require("@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta");

// PredictorSpec's own fields (predictor.go, component.go); the others are KServe's inlined PodSpec.
const PREDICTOR_OWN_FIELDS = new Set([
  "sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx", "huggingface", "pmml",
  "lightgbm", "paddle", "model", "storageUris", "workerSpec",
  "minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency", "timeout",
  "canaryTrafficPercent", "logger", "batcher", "labels", "annotations", "deploymentStrategy",
]);
const PREDICTOR_IMPLEMENTATIONS = ["sklearn", "xgboost", "tensorflow", "pytorch", "triton", "onnx",
  "huggingface", "pmml", "lightgbm", "paddle", "model"];
const ISVC_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/; // KServe's IsvcNameFmt

function validateInferenceService(obj) {
  const errors = [];
  if (obj.metadata) new ObjectMeta(obj.metadata).validate();
  const name = obj.metadata && obj.metadata.name;
  if (!name || !ISVC_NAME.test(name)) errors.push(`metadata.name ${JSON.stringify(name)} must match ${ISVC_NAME}`);
  const predictor = obj.spec && obj.spec.predictor;
  if (!predictor || typeof predictor !== "object") throw new Error("spec.predictor is required");
  const pod = Object.fromEntries(Object.entries(predictor).filter(([k]) => !PREDICTOR_OWN_FIELDS.has(k)));
  const containers = pod.containers || [];
  if (containers.length > 0) {
    try {
      new PodSpec(pod).validate();
    } catch (e) {
      errors.push(`spec.predictor (as a PodSpec): ${e.message}`);
    }
  }
  // The webhook's rules (inference_service_validation.go, component.go, predictor_custom.go).
  const implementations = PREDICTOR_IMPLEMENTATIONS.filter((k) => predictor[k] != null);
  if (containers.some((c) => c.name === "kserve-container") || (implementations.length === 0 && containers.length > 0))
    implementations.push("custom container");
  if (implementations.length !== 1)
    errors.push(`spec.predictor: exactly one implementation must be given, found [${implementations.join(", ")}]`);
  const min = predictor.minReplicas === undefined ? 1 : predictor.minReplicas;
  const max = predictor.maxReplicas || 0;
  if (min < 0 || max < 0) errors.push("spec.predictor: minReplicas and maxReplicas cannot be negative");
  if (max !== 0 && min > max) errors.push("spec.predictor: minReplicas cannot be greater than maxReplicas");
  if (implementations.length === 1 && implementations[0] === "custom container") {
    const protocol = (containers[0].env || []).find((e) => e.name === "PROTOCOL");
    if (protocol && !["v1", "v2"].includes(protocol.value))
      errors.push(`spec.predictor.containers[0]: PROTOCOL must be v1 or v2, not ${JSON.stringify(protocol.value)}`);
  }
  if (errors.length) throw new Error(errors.join("\n  "));
}

function schemaFor(apiVersion, kind) {
  if (apiVersion === "serving.kserve.io/v1beta1" && kind === "InferenceService")
    return { typesModule: "./kserve-v1beta1", typeName: "InferenceService", validate: validateInferenceService };
  return kubernetesSchema(apiVersion, kind);
}

// ---- TypeScript source with a JSON path for each line -----------------------------------------
function emitLiteral(value, jsonPath, indent, head, out) {
  const pad = "  ".repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return out.push([`${head}[]`, jsonPath]);
    out.push([`${head}[`, jsonPath]);
    value.forEach((v, i) => {
      emitLiteral(v, `${jsonPath}[${i}]`, indent + 1, `${pad}  `, out);
      out[out.length - 1][0] += ",";
    });
    return out.push([`${pad}]`, jsonPath]);
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 0) return out.push([`${head}{}`, jsonPath]);
    out.push([`${head}{`, jsonPath]);
    for (const k of keys) {
      const p = /^[A-Za-z_$][\w$]*$/.test(k) ? `${jsonPath}.${k}` : `${jsonPath}[${JSON.stringify(k)}]`;
      emitLiteral(value[k], p, indent + 1, `${pad}  ${JSON.stringify(k)}: `, out);
      out[out.length - 1][0] += ",";
    }
    return out.push([`${pad}}`, jsonPath]);
  }
  return out.push([`${head}${JSON.stringify(value)}`, jsonPath]);
}

function typeCheck(documents) {
  if (documents.length === 0) return;
  const lines = []; // [text, jsonPath, document]
  documents.forEach((d, i) => {
    lines.push([`import type { ${d.schema.typeName} as T${i} } from ${JSON.stringify(d.schema.typesModule)};`, "", d]);
  });
  documents.forEach((d, i) => {
    const out = [];
    emitLiteral(d.object, "", 0, `export const m${i}: T${i} = `, out);
    out[out.length - 1][0] += ";";
    for (const [text, p] of out) lines.push([text, p, d]);
  });
  const virtualFile = path.join(HERE, "__manifests__.ts");
  const sourceText = lines.map((l) => l[0]).join("\n") + "\n";
  const options = {
    strict: true, noEmit: true, skipLibCheck: true, types: [], lib: ["lib.es2020.d.ts"],
    target: ts.ScriptTarget.ES2020, module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (fileName, languageVersion, ...rest) =>
    path.resolve(fileName) === virtualFile
      ? ts.createSourceFile(fileName, sourceText, languageVersion, true)
      : getSourceFile(fileName, languageVersion, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (f) => path.resolve(f) === virtualFile || fileExists(f);
  const readFile = host.readFile.bind(host);
  host.readFile = (f) => (path.resolve(f) === virtualFile ? sourceText : readFile(f));
  const program = ts.createProgram([virtualFile], options, host);
  for (const diag of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diag.messageText, "\n    ");
    if (!diag.file || path.resolve(diag.file.fileName) !== virtualFile) {
      problem("type check", message);
      continue;
    }
    const { line } = diag.file.getLineAndCharacterOfPosition(diag.start);
    const [, jsonPath, d] = lines[line];
    problem(`${d.where}${jsonPath ? ` at ${jsonPath.replace(/^\./, "")}` : ""}`, message);
  }
}

// ---- manifests ------------------------------------------------------------------------------
const checked = [];
// The file's text, or null after reporting why it could not be read.
function readOrReport(file) {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    problem(rel(file), e.message);
    return null;
  }
}

for (const file of manifests) {
  const text = readOrReport(file);
  if (text === null) continue;
  const docs = YAML.parseAllDocuments(text, { version: "1.1", uniqueKeys: true, prettyErrors: true });
  docs.forEach((doc, index) => {
    const where = docs.length > 1 ? `${rel(file)} (document ${index + 1})` : rel(file);
    for (const e of [...doc.errors, ...doc.warnings]) problem(where, `YAML: ${e.message}`);
    if (doc.errors.length) return;
    const object = doc.toJS();
    if (object === null || object === undefined) return; // an empty document
    if (typeof object !== "object" || Array.isArray(object)) return problem(where, "not a Kubernetes object");
    const { apiVersion, kind } = object;
    if (typeof apiVersion !== "string" || typeof kind !== "string")
      return problem(where, "apiVersion and kind are required strings");
    const schema = schemaFor(apiVersion, kind);
    if (!schema) return problem(where, `no schema known for ${apiVersion} ${kind}`);
    try {
      schema.validate(object);
    } catch (e) {
      problem(where, `${apiVersion} ${kind}: ${e.message}`);
    }
    const name = object.metadata && object.metadata.name;
    checked.push({ where, object, schema, label: `${apiVersion} ${kind} ${name || "(no name)"}` });
  });
}
typeCheck(checked);

// ---- Dockerfiles ----------------------------------------------------------------------------
const SEVERITY = { 1: "error", 2: "warning", 3: "information", 4: "hint" };
for (const file of dockerfiles) {
  const text = readOrReport(file);
  if (text === null) continue;
  for (const d of dockerfileUtils.validate(text)) {
    problem(`${rel(file)}:${d.range.start.line + 1}`, `${SEVERITY[d.severity] || "problem"}: ${d.message}`);
  }
}

// ---- report ---------------------------------------------------------------------------------
const failed = new Set(problems.map((p) => p.split(/[: ]/)[0]));
for (const file of manifests.map(rel)) {
  const objects = checked.filter((d) => d.where.split(" ")[0] === file);
  for (const d of objects) console.log(`${failed.has(file) ? "FAIL" : "ok  "} ${d.where}: ${d.label}`);
  if (objects.length === 0) console.log(`${failed.has(file) ? "FAIL" : "ok  "} ${file}: no object`);
}
for (const file of dockerfiles) console.log(`${failed.has(rel(file).split(":")[0]) ? "FAIL" : "ok  "} ${rel(file)}: Dockerfile lint`);
if (problems.length) {
  console.error(`\n${problems.length} problem(s):`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log(`all ${checked.length} manifest object(s) and ${dockerfiles.length} Dockerfile(s) valid`);
