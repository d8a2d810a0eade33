/**
 * deploy/kubernetes/, checked without a cluster: every object valid against Kubernetes' OpenAPI schemas (the
 * validators kubernetes-models generates from them), and the operating rules README's "Deploy on Kubernetes"
 * promises: receivers and workers apart, probes on /healthz and /readyz, a grace period above
 * `worker.shutdown_timeout_ms`, PodDisruptionBudgets, resource requests, secrets from a Secret and the config from
 * a ConfigMap, non-root with a read-only root filesystem.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { posix } from "node:path";
import { describe, it } from "node:test";
import { Deployment } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ConfigMap, type IContainer, type IPodSpec, Secret, Service } from "kubernetes-models/v1";
import { parse, parseAllDocuments } from "yaml";
import { configSchema, ENV_OVERRIDES } from "../../src/config/config.js";

const DIR = new URL("../../deploy/kubernetes/", import.meta.url);

/** The models this directory uses, by `apiVersion/kind`; anything else is an error (add it here). */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
};

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

const files = readdirSync(DIR).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
const objects: Array<K8sObject & { file: string }> = files.flatMap((file) =>
  parseAllDocuments(readFileSync(new URL(file, DIR), "utf8")).map((doc) => {
    assert.deepEqual(doc.errors, [], file);
    return { ...(doc.toJS() as K8sObject), file };
  }),
);
const applied = new Set(
  (parse(readFileSync(new URL("kustomization.yaml", DIR), "utf8")) as { resources: string[] }).resources,
);
const deployments = objects.filter((o) => o.kind === "Deployment") as unknown as Array<
  K8sObject & {
    spec: {
      selector: { matchLabels: Record<string, string> };
      template: { metadata: { labels: Record<string, string> }; spec: IPodSpec };
    };
  }
>;
const configMap = objects.find((o) => o.kind === "ConfigMap") as unknown as K8sObject & {
  data: Record<string, string>;
};
/** The configuration as the bot will load it from the ConfigMap (secrets come from the environment). */
const config = configSchema.parse(parse(configMap.data["trusted-mr-bot.yml"]!));

function component(name: string) {
  const d = deployments.find((x) => x.spec.template.metadata.labels["app.kubernetes.io/component"] === name);
  assert.ok(d, `a Deployment of ${name}s`);
  const container = d.spec.template.spec.containers[0] as IContainer;
  return { deployment: d, pod: d.spec.template.spec, container };
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

describe("deploy/kubernetes", () => {
  it("every object is valid against Kubernetes' schemas", () => {
    assert.ok(objects.length >= 7, `${objects.length} objects`);
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      assert.ok(Model, `${o.file}: no model for ${o.apiVersion} ${o.kind}`);
      const { file, ...data } = o;
      assert.doesNotThrow(() => new Model(data as never).validate(), `${file}: ${o.kind} ${o.metadata.name}`);
    }
  });

  it("kustomization.yaml applies every manifest but the Secret example", () => {
    assert.deepEqual([...applied].sort(), files.filter((f) => f !== "secret.example.yaml").sort());
  });

  it("runs receivers and workers as separate Deployments, the Service in front of the receivers only", () => {
    const receiver = component("receiver");
    const worker = component("worker");
    assert.deepEqual(receiver.container.args, ["receiver"]);
    assert.deepEqual(worker.container.args, ["worker"]);
    const services = objects.filter((o) => o.kind === "Service") as unknown as Array<{
      spec: { selector: Record<string, string>; ports: Array<{ targetPort: string }> };
    }>;
    assert.equal(services.length, 1);
    const service = services[0]!;
    assert.ok(selects(service.spec.selector, receiver.deployment.spec.template.metadata.labels));
    assert.ok(
      !selects(service.spec.selector, worker.deployment.spec.template.metadata.labels),
      "no webhooks to workers",
    );
    assert.deepEqual(
      service.spec.ports.map((p) => p.targetPort),
      ["http"],
    );
    for (const { deployment } of [receiver, worker]) {
      assert.ok(selects(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels));
    }
  });

  for (const name of ["receiver", "worker"]) {
    it(`${name}: probes, grace period, requests, Secret and ConfigMap, non-root and read-only`, () => {
      const { deployment, pod, container } = component(name);
      const http = container.ports?.find((p) => p.name === "http");
      assert.equal(http?.containerPort, config.server.port, "the port the bot listens on");
      assert.deepEqual(container.livenessProbe?.httpGet, { path: "/healthz", port: "http" });
      assert.deepEqual(container.readinessProbe?.httpGet, { path: "/readyz", port: "http" });

      const preStopMs = Number(container.lifecycle?.preStop?.exec?.command?.[1] ?? 0) * 1000;
      const graceMs = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
      assert.ok(
        graceMs > preStopMs + config.worker.shutdown_timeout_ms,
        `terminationGracePeriodSeconds ${graceMs / 1000} s must exceed the preStop pause and shutdown_timeout_ms`,
      );

      assert.ok(container.resources?.requests?.["cpu"], "a CPU request");
      assert.ok(container.resources?.requests?.["memory"], "a memory request");
      assert.ok(container.resources?.limits?.["memory"], "a memory limit");

      assert.deepEqual(container.envFrom, [{ secretRef: { name: "trusted-mr-bot" } }]);
      assert.ok(!container.env?.some((e) => e.value !== undefined), "no value written into the manifest");
      const configVolume = pod.volumes?.find((v) => v.configMap?.name === configMap.metadata.name);
      assert.ok(configVolume, "the ConfigMap as a volume");
      const mount = container.volumeMounts?.find((m) => m.name === configVolume.name);
      // The image's TMR_CONFIG (Dockerfile) names the file the bot reads.
      const dockerfile = readFileSync(new URL("../../Dockerfile", import.meta.url), "utf8");
      const tmrConfig = /TMR_CONFIG=(\S+)/.exec(dockerfile)?.[1];
      assert.equal(`${mount?.mountPath}/${Object.keys(configMap.data)[0]}`, tmrConfig);
      assert.equal(posix.dirname(tmrConfig!), mount?.mountPath);

      assert.equal(pod.securityContext?.runAsNonRoot, true);
      assert.ok((pod.securityContext?.runAsUser ?? 0) > 0, "a non-root uid");
      assert.equal(container.securityContext?.readOnlyRootFilesystem, true);
      assert.equal(container.securityContext?.allowPrivilegeEscalation, false);
      assert.deepEqual(container.securityContext?.capabilities?.drop, ["ALL"]);

      const pdbs = objects.filter((o) => o.kind === "PodDisruptionBudget") as unknown as Array<{
        spec: { selector: { matchLabels: Record<string, string> } };
      }>;
      assert.equal(
        pdbs.filter((p) => selects(p.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).length,
        1,
        "one PodDisruptionBudget",
      );
    });
  }

  it("the ConfigMap holds a valid configuration without secrets; the Secret's keys are variables the bot reads", () => {
    const text = configMap.data["trusted-mr-bot.yml"]!;
    for (const key of ["token", "secret", "signing_token", "relay_signature_secret", "sentinel_password"]) {
      assert.doesNotMatch(text, new RegExp(`^\\s*${key}:`, "m"), `${key} belongs in the Secret`);
    }
    assert.equal(config.worker.shutdown_timeout_ms, 25_000);
    const secret = objects.find((o) => o.kind === "Secret") as unknown as K8sObject & {
      stringData: Record<string, string>;
    };
    const known = new Set(ENV_OVERRIDES.map((o) => o.env));
    for (const key of Object.keys(secret.stringData)) assert.ok(known.has(key), `${key} is read by the bot`);
    for (const key of ["GITLAB_TOKEN", "GITLAB_WEBHOOK_SECRET", "REDIS_URL"]) assert.ok(key in secret.stringData, key);
  });
});
