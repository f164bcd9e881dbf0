// KServe's InferenceService (serving.kserve.io/v1beta1), transcribed from KServe's Go API types in
// kserve/kserve pkg/apis/serving/v1beta1: inference_service.go (InferenceService,
// InferenceServiceSpec, LoggerSpec, Batcher), predictor.go (PredictorSpec, PredictorExtensionSpec,
// StorageUri, WorkerSpec), component.go (ComponentExtensionSpec, ScaleMetric), podspec.go
// (KServe's copy of the Kubernetes PodSpec, with containers optional), predictor_custom.go (a
// custom predictor's protocol is its container's PROTOCOL variable, "v1" or "v2").
// No npm package publishes KServe's schema; Kubernetes' own types come from kubernetes-types
// (generated from the Kubernetes OpenAPI spec), as the Go types embed them.
//
// The predictor's own fields are typed in full (unknown fields are errors, as in the CRD's
// structural schema); the framework specs, explainer and transformer, which these manifests do not
// use, are accepted as objects without checking their insides.
import type { ObjectMeta } from "kubernetes-types/meta/v1";
import type { Container, PodSpec } from "kubernetes-types/core/v1";
import type { DeploymentStrategy } from "kubernetes-types/apps/v1";

export interface InferenceService {
  apiVersion: "serving.kserve.io/v1beta1";
  kind: "InferenceService";
  metadata?: ObjectMeta;
  spec: InferenceServiceSpec;
  status?: { [key: string]: unknown };
}

export interface InferenceServiceSpec {
  predictor: PredictorSpec;
  explainer?: UncheckedComponentSpec;
  transformer?: UncheckedComponentSpec;
}

/** KServe's PodSpec: corev1.PodSpec with `containers` optional. */
export type KServePodSpec = Omit<PodSpec, "containers"> & { containers?: Array<Container> };

export type ScaleMetric = "cpu" | "memory" | "concurrency" | "rps";
export type LoggerType = "all" | "request" | "response";

export interface ComponentExtensionSpec {
  minReplicas?: number;
  maxReplicas?: number;
  scaleTarget?: number;
  scaleMetric?: ScaleMetric;
  containerConcurrency?: number;
  /** TimeoutSeconds */
  timeout?: number;
  canaryTrafficPercent?: number;
  logger?: LoggerSpec;
  batcher?: Batcher;
  labels?: { [name: string]: string };
  annotations?: { [name: string]: string };
  deploymentStrategy?: DeploymentStrategy;
}

export interface LoggerSpec {
  url?: string;
  mode?: LoggerType;
  metadataHeaders?: Array<string>;
  metadataAnnotations?: Array<string>;
  storage?: { [key: string]: unknown };
}

export interface Batcher {
  maxBatchSize?: number;
  maxLatency?: number;
  timeout?: number;
}

export interface StorageUri {
  uri: string;
  mountPath?: string;
}

export type WorkerSpec = KServePodSpec & {
  pipelineParallelSize?: number;
  tensorParallelSize?: number;
};

/** PredictorExtensionSpec and ModelSpec: a framework server with container overrides. */
export type UncheckedFrameworkSpec = { [key: string]: unknown };
/** ExplainerSpec, TransformerSpec: not used by these manifests. */
export type UncheckedComponentSpec = { [key: string]: unknown };

export type PredictorSpec = KServePodSpec &
  ComponentExtensionSpec & {
    sklearn?: UncheckedFrameworkSpec;
    xgboost?: UncheckedFrameworkSpec;
    tensorflow?: UncheckedFrameworkSpec;
    pytorch?: UncheckedFrameworkSpec;
    triton?: UncheckedFrameworkSpec;
    onnx?: UncheckedFrameworkSpec;
    huggingface?: UncheckedFrameworkSpec;
    pmml?: UncheckedFrameworkSpec;
    lightgbm?: UncheckedFrameworkSpec;
    paddle?: UncheckedFrameworkSpec;
    model?: UncheckedFrameworkSpec;
    storageUris?: Array<StorageUri>;
    workerSpec?: WorkerSpec;
  };

