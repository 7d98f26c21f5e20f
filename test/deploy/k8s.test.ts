// The Kubernetes manifests, rendered per overlay with `kubectl kustomize` and validated offline: schemas and
// misspelt keys (manifests.ts), then what the services need from them: settings every service accepts, the
// Secrets they read, probes, limits and hardening, PDBs, NetworkPolicies that let the data path through, KEDA on
// the real queue, GPU scheduling, and scraping.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig, loadSection } from '../../shared/config';
import { STUDY_QUEUE } from '../../shared/studies';
import { loadListenerSettings } from '../../services/listener/config';
import { loadWorkerConfig, WORKER_DEFAULTS } from '../../services/worker/config';
import { QUEUE_PATH, READY_FIELD } from '../../services/worker/http';
import { ApiSettingsSchema, API_DEFAULTS, trustProxy } from '../../services/api/settings';
import { OutboundSettingsSchema, OUTBOUND_DEFAULTS } from '../../services/api/outbound/config';
import { loadReportsConfig, ReportsSettingsSchema } from '../../services/api/inbound/config';
import { RetentionSettingsSchema, RETENTION_DEFAULTS } from '../../tools/retention';
import { ConfigSchema } from '../../shared/config';
import { WorkerConfigSchema } from '../../services/worker/config';
import { ListenerSectionSchema } from '../../services/listener/config';
import { stop, waitFor } from './net';
import { freePort } from '../helpers/ports';
import { byKind, find, matches, podTemplates, renderKustomize, renderKustomizeWithWarnings, ROOT, typeCheck, validateRuntime, type K8sObject } from './manifests';

const OVERLAYS = ['overlays/cpu', 'overlays/gpu', 'overlays/external-redis', 'overlays/cpu-dicom-tls'] as const;
const rendered = new Map<string, { objects: K8sObject[]; warnings: string }>();
const renderWithWarnings = (dir: string) => {
  if (!rendered.has(dir)) rendered.set(dir, renderKustomizeWithWarnings(`k8s/${dir}`));
  return rendered.get(dir)!;
};
const render = (dir: string) => renderWithWarnings(dir).objects;

/** Keys any service, or the retention job, reads; and TZ, the runtime's, which the SR's dates and times follow. */
const KNOWN_SETTINGS = new Set([
  ...[ConfigSchema, WorkerConfigSchema, ListenerSectionSchema, ApiSettingsSchema, OutboundSettingsSchema, ReportsSettingsSchema, RetentionSettingsSchema]
    .flatMap((s) => Object.keys(s.properties)),
  'TZ',
]);

function containerEnv(objects: K8sObject[], deployment: string): Record<string, string> {
  const d = find(objects, 'Deployment', deployment);
  const c = d.spec.template.spec.containers[0];
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, find(objects, 'ConfigMap', from.configMapRef.name).data);
  }
  for (const e of c.env ?? []) env[e.name] = e.value ?? `secret:${e.valueFrom?.secretKeyRef?.key}`;
  return env;
}

describe.each(OVERLAYS)('k8s/%s', (overlay) => {
  test('renders, and every object passes the Kubernetes, KEDA and Prometheus Operator models', () => {
    const objects = render(overlay);
    expect(objects.length).toBeGreaterThan(20);
    expect(validateRuntime(objects)).toEqual([]);
  });

  test('renders without a kustomize warning (no deprecated bases or patchesStrategicMerge)', () => {
    expect(renderWithWarnings(overlay).warnings).toBe('');
  });

  test('has no misspelt or unknown field (TypeScript excess-property check against the models)', () => {
    expect(typeCheck(render(overlay))).toEqual([]);
  }, 60_000);

  test('every object lives in the neurotriage namespace and is labelled part-of neurotriage', () => {
    for (const o of render(overlay)) {
      if (o.kind !== 'Namespace') expect({ o: `${o.kind}/${o.metadata.name}`, ns: o.metadata.namespace }).toEqual({ o: `${o.kind}/${o.metadata.name}`, ns: 'neurotriage' });
    }
    for (const p of podTemplates(render(overlay))) expect(p.labels['app.kubernetes.io/part-of']).toBe('neurotriage');
  });

  test('the settings given to each service pass that service\'s own validation', () => {
    const objects = render(overlay);
    const config = byKind(objects, 'ConfigMap').find((c) => c.metadata.name.startsWith('neurotriage-config'))!;
    const unknown = Object.keys(config.data).filter((k) => !KNOWN_SETTINGS.has(k));
    expect(unknown).toEqual([]);
    for (const name of ['neurotriage-listener', 'neurotriage-worker', 'neurotriage-api']) {
      const env = { ...containerEnv(objects, name), REDIS_URL: 'redis://:x@neurotriage-redis:6379/0' };
      expect(() => loadConfig(env)).not.toThrow();
      if (name.endsWith('listener')) expect(loadListenerSettings(env).DICOM_HOST).toBe('0.0.0.0');
      if (name.endsWith('worker')) expect(loadWorkerConfig(env).WORKER_METRICS_HOST).toBe('0.0.0.0');
      if (name.endsWith('api')) {
        expect(loadSection(ApiSettingsSchema, API_DEFAULTS, env).API_TOKENS).toMatch(/^\//);
        expect(() => loadSection(OutboundSettingsSchema, OUTBOUND_DEFAULTS, env)).not.toThrow();
        expect(loadReportsConfig(env).mllp?.host).toBe('0.0.0.0');
      }
    }
    expect(loadSection(RetentionSettingsSchema, RETENTION_DEFAULTS, config.data).RETENTION_DAYS).toBeGreaterThan(0);
  });

  test('containers have requests, limits, probes and a hardened security context; pods run as non-root', () => {
    for (const { owner, spec } of podTemplates(render(overlay))) {
      expect({ owner, nonRoot: spec.securityContext?.runAsNonRoot, seccomp: spec.securityContext?.seccompProfile?.type }).toEqual({ owner, nonRoot: true, seccomp: 'RuntimeDefault' });
      expect({ owner, token: spec.automountServiceAccountToken }).toEqual({ owner, token: false });
      for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
        const what = `${owner}/${c.name}`;
        for (const r of ['cpu', 'memory']) {
          expect({ what, r, request: Boolean(c.resources?.requests?.[r]), limit: Boolean(c.resources?.limits?.[r]) }).toEqual({ what, r, request: true, limit: true });
        }
        expect({ what, sc: c.securityContext }).toMatchObject({ what, sc: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } } });
        if (!owner.startsWith('CronJob') && !(spec.initContainers ?? []).includes(c)) {
          expect({ what, readiness: Boolean(c.readinessProbe), liveness: Boolean(c.livenessProbe) }).toEqual({ what, readiness: true, liveness: true });
          // A probe on a named port must name a port the container declares.
          const names = new Set((c.ports ?? []).map((p: { name: string }) => p.name));
          for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe].filter(Boolean)) {
            const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
            if (typeof port === 'string') expect({ what, port, declared: names.has(port) }).toEqual({ what, port, declared: true });
          }
        }
      }
    }
  });

  test('metrics ports in the settings are the ports the containers declare and the Services expose', () => {
    const objects = render(overlay);
    const port = (d: string, name: string) =>
      find(objects, 'Deployment', d).spec.template.spec.containers[0].ports.find((p: { name: string }) => p.name === name).containerPort;
    const listener = containerEnv(objects, 'neurotriage-listener');
    const worker = containerEnv(objects, 'neurotriage-worker');
    const api = containerEnv(objects, 'neurotriage-api');
    expect(port('neurotriage-listener', 'metrics')).toBe(Number(listener.METRICS_PORT));
    expect(port('neurotriage-listener', 'dicom')).toBe(Number(listener.DICOM_PORT));
    expect(port('neurotriage-worker', 'metrics')).toBe(Number(worker.WORKER_METRICS_PORT));
    expect(port('neurotriage-api', 'http')).toBe(Number(api.API_PORT));
    expect(port('neurotriage-api', 'mllp')).toBe(loadReportsConfig(api).mllp?.port);
  });

  test('every Deployment has a PodDisruptionBudget and every Service selects pods', () => {
    const objects = render(overlay);
    const pdbs = byKind(objects, 'PodDisruptionBudget');
    for (const d of byKind(objects, 'Deployment')) {
      const labels = d.spec.template.metadata.labels;
      expect({ d: d.metadata.name, pdb: pdbs.some((p) => matches(p.spec.selector.matchLabels, labels)) }).toEqual({ d: d.metadata.name, pdb: true });
    }
    const pods = podTemplates(objects);
    for (const s of byKind(objects, 'Service')) {
      expect({ s: s.metadata.name, selects: pods.some((p) => matches(s.spec.selector, p.labels)) }).toEqual({ s: s.metadata.name, selects: true });
    }
  });

  test('default deny, and each Service port is let in by a NetworkPolicy for the pods behind it', () => {
    const objects = render(overlay);
    const policies = byKind(objects, 'NetworkPolicy');
    const deny = policies.find((p) => Object.keys(p.spec.podSelector).length === 0 && !p.spec.ingress && !p.spec.egress);
    expect(deny?.spec.policyTypes.sort()).toEqual(['Egress', 'Ingress']);
    const pods = podTemplates(objects);
    for (const s of byKind(objects, 'Service')) {
      const behind = pods.filter((p) => matches(s.spec.selector, p.labels));
      for (const sp of s.spec.ports) {
        for (const pod of behind) {
          const container = pod.spec.containers.find((c: { ports?: { name: string }[] }) => c.ports?.some((p) => p.name === sp.targetPort || p === sp.targetPort));
          const number = typeof sp.targetPort === 'number' ? sp.targetPort : container?.ports.find((p: { name: string }) => p.name === sp.targetPort)?.containerPort;
          const allowed = policies.some(
            (np) =>
              matches(np.spec.podSelector.matchLabels, pod.labels) &&
              (np.spec.ingress ?? []).some((rule: { ports?: { port: number }[] }) => (rule.ports ?? []).some((p) => p.port === number)),
          );
          expect({ service: s.metadata.name, port: sp.name, allowed }).toEqual({ service: s.metadata.name, port: sp.name, allowed: true });
        }
      }
    }
    // DNS is allowed to every pod; otherwise default deny would break name resolution of Redis and targets.
    const dns = policies.find((p) => p.metadata.name === 'allow-dns')!;
    expect(Object.keys(dns.spec.podSelector)).toEqual([]);
    // To kube-dns pods and to NodeLocal DNSCache on the pod's node (its default address), where clusters run it.
    expect(dns.spec.egress[0].to).toEqual(expect.arrayContaining([
      expect.objectContaining({ podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }),
      { ipBlock: { cidr: '169.254.20.10/32' } },
    ]));
  });

  test('liveness probes ask /livez (never Redis), readiness probes /readyz, on each service\'s HTTP port', () => {
    const objects = render(overlay);
    const ports: Record<string, string> = { 'neurotriage-listener': 'metrics', 'neurotriage-worker': 'metrics', 'neurotriage-api': 'http' };
    for (const [name, port] of Object.entries(ports)) {
      const c = find(objects, 'Deployment', name).spec.template.spec.containers[0];
      expect({ name, live: c.livenessProbe.httpGet, ready: c.readinessProbe.httpGet }).toEqual({ name, live: { path: '/livez', port }, ready: { path: '/readyz', port } });
      if (c.startupProbe) expect(c.startupProbe.httpGet.path).toBe('/livez');
    }
  });

  test('the listener and the API are taken out of rotation before SIGTERM, within the grace period', () => {
    const objects = render(overlay);
    for (const name of ['neurotriage-listener', 'neurotriage-api']) {
      const spec = find(objects, 'Deployment', name).spec.template.spec;
      const [command, seconds] = spec.containers[0].lifecycle?.preStop?.exec?.command ?? [];
      expect({ name, command }).toEqual({ name, command: 'sleep' });
      const shutdown = Number(containerEnv(objects, name).SHUTDOWN_TIMEOUT_SECONDS ?? 30);
      // The sleep, then the service's own bounded stop, with room to spare before SIGKILL.
      expect(Number(seconds)).toBeGreaterThanOrEqual(5);
      expect(Number(seconds) + shutdown + 5).toBeLessThanOrEqual(spec.terminationGracePeriodSeconds);
    }
  });

  test('port 2762 is published exactly when the listener serves DICOM over TLS there', () => {
    const objects = render(overlay);
    const env = containerEnv(objects, 'neurotriage-listener');
    const tlsPort = env.DICOM_TLS_PORT === undefined ? undefined : Number(env.DICOM_TLS_PORT);
    const container = find(objects, 'Deployment', 'neurotriage-listener').spec.template.spec.containers[0];
    const containerTls = container.ports.filter((p: { containerPort: number }) => p.containerPort !== Number(env.DICOM_PORT) && p.containerPort !== Number(env.METRICS_PORT));
    const service = find(objects, 'Service', 'neurotriage-dicom').spec.ports.filter((p: { port: number }) => p.port !== Number(env.DICOM_PORT));
    const policy = find(objects, 'NetworkPolicy', 'allow-dicom-ingress').spec.ingress[0].ports.map((p: { port: number }) => p.port);
    if (tlsPort === undefined) {
      expect({ containerTls, service, policy }).toEqual({ containerTls: [], service: [], policy: [Number(env.DICOM_PORT)] });
    } else {
      expect(containerTls.map((p: { containerPort: number }) => p.containerPort)).toEqual([tlsPort]);
      expect(service.map((p: { port: number }) => p.port)).toEqual([tlsPort]);
      expect(policy.sort()).toEqual([tlsPort, Number(env.DICOM_PORT)].sort());
      // The certificate the settings name is the mounted Secret's.
      const mount = container.volumeMounts.find((m: { name: string }) => m.name === 'dicom-tls');
      expect(env.DICOM_TLS_CERT_FILE.startsWith(`${mount.mountPath}/`)).toBe(true);
      expect(() => loadListenerSettings({ ...env, REDIS_URL: 'redis://x:6379' })).not.toThrow();
    }
  });

  test('a Deployment that takes a whole GPU rolls without a spare one (maxSurge 0, or Recreate)', () => {
    for (const d of byKind(render(overlay), 'Deployment')) {
      const gpu = d.spec.template.spec.containers.some((c: { resources?: { limits?: Record<string, string> } }) => c.resources?.limits?.['nvidia.com/gpu']);
      if (!gpu) continue;
      const s = d.spec.strategy;
      expect({ d: d.metadata.name, ok: s.type === 'Recreate' || (s.rollingUpdate.maxSurge === 0 && s.rollingUpdate.maxUnavailable >= 1) }).toEqual({ d: d.metadata.name, ok: true });
    }
  });

  test('the API behind the ingress believes exactly one proxy hop for the client address', () => {
    const objects = render(overlay);
    expect(byKind(objects, 'Ingress').map((i) => i.metadata.name)).toEqual(['neurotriage-api']);
    const env = containerEnv(objects, 'neurotriage-api');
    const trust = trustProxy(loadSection(ApiSettingsSchema, API_DEFAULTS, env).API_TRUST_PROXY) as (address: string, hop: number) => boolean;
    expect([trust('10.244.0.9', 0), trust('10.244.0.9', 1)]).toEqual([true, false]);
    // Only the ingress controller's namespace (and monitoring, for /metrics) reaches the API's HTTP port (the RIS
    // reaches its MLLP port, a rule of its own that a forged X-Forwarded-For cannot use).
    type Rule = { ports?: { port: number | string }[]; from: { namespaceSelector?: { matchLabels: Record<string, string> } }[] };
    const http = Number(env.API_PORT);
    const sources = byKind(objects, 'NetworkPolicy')
      .filter((np) => matches(np.spec.podSelector.matchLabels, find(objects, 'Deployment', 'neurotriage-api').spec.template.metadata.labels))
      .flatMap((np) => (np.spec.ingress ?? []) as Rule[])
      .filter((r) => !r.ports || r.ports.some((p) => p.port === http || p.port === 'http'))
      .flatMap((r) => r.from.map((f) => f.namespaceSelector?.matchLabels['kubernetes.io/metadata.name'] ?? 'other'));
    expect([...new Set(sources)].sort()).toEqual(['ingress-nginx', 'monitoring']);
  });

  // With fsGroup alone the kubelet chowns and chmods every file of the volume at each pod start: on the shared data
  // volume (hundreds of GB of instances on NFS) every listener, worker, API and daily retention pod then sat in
  // ContainerCreating for as long as that walk took. OnRootMismatch walks it only when its root is not yet right.
  test('pods that mount a claim with fsGroup change its ownership only when the volume root needs it', () => {
    for (const { owner, spec } of podTemplates(render(overlay))) {
      const claims = (spec.volumes ?? []).some((v: { persistentVolumeClaim?: unknown }) => v.persistentVolumeClaim) || owner.startsWith('StatefulSet');
      if (!claims || spec.securityContext?.fsGroup === undefined) continue;
      expect({ owner, policy: spec.securityContext.fsGroupChangePolicy }).toEqual({ owner, policy: 'OnRootMismatch' });
    }
  });

  test('DATA_DIR is one ReadWriteMany claim with an explicit storage class (a parameter, docs/operations.md)', () => {
    const pvc = find(render(overlay), 'PersistentVolumeClaim', 'neurotriage-data');
    expect(pvc.spec.accessModes).toEqual(['ReadWriteMany']);
    expect(pvc.spec.storageClassName).toMatch(/^[a-z0-9][a-z0-9.-]*$/);
  });

  test('the PACS-facing Service keeps the client address (AE@host policies and ipBlocks need it)', () => {
    const svc = find(render(overlay), 'Service', 'neurotriage-dicom');
    expect(svc.spec.type).toBe('LoadBalancer');
    expect(svc.spec.externalTrafficPolicy).toBe('Local');
  });

  test('KEDA scales the worker Deployment on the studies ready to score: the workers\' /queue, and BullMQ\'s wait list', () => {
    const objects = render(overlay);
    const so = find(objects, 'ScaledObject', 'neurotriage-worker');
    expect(so.spec.scaleTargetRef.name).toBe(find(objects, 'Deployment', 'neurotriage-worker').metadata.name);
    expect(so.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    const byType = (type: string) => so.spec.triggers.find((t: { type: string }) => t.type === type);
    const list = byType('redis');
    expect(list.metadata.listName).toBe(`bull:${STUDY_QUEUE}:wait`);
    expect(find(objects, 'TriggerAuthentication', list.authenticationRef.name).spec.secretTargetRef.map((r: { parameter: string }) => r.parameter)).toEqual(
      expect.arrayContaining(['address', 'password']),
    );
    // The backlog the list cannot see (due delayed, prioritized): a worker Service's port, from KEDA's namespace.
    const api = byType('metrics-api');
    expect(api.metadata).toMatchObject({ format: 'json', valueLocation: READY_FIELD, targetValue: list.metadata.listLength });
    const url = new URL(api.metadata.url);
    expect(url.pathname).toBe(QUEUE_PATH);
    const [svcName, ns, svcTld] = url.hostname.split('.');
    expect({ ns, svcTld }).toEqual({ ns: 'neurotriage', svcTld: 'svc' });
    expect(find(objects, 'Namespace', ns).metadata.name).toBe(ns);
    const svc = find(objects, 'Service', svcName);
    const port = svc.spec.ports.find((p: { port: number }) => p.port === Number(url.port));
    const worker = podTemplates(objects).find((p) => matches(svc.spec.selector, p.labels))!;
    expect(worker.labels['app.kubernetes.io/name']).toBe('neurotriage-worker');
    const containerPort = worker.spec.containers[0].ports.find((p: { name: string }) => p.name === port.targetPort).containerPort;
    expect(containerPort).toBe(WORKER_DEFAULTS.WORKER_METRICS_PORT);
    const fromKeda = byKind(objects, 'NetworkPolicy').filter(
      (np) =>
        matches(np.spec.podSelector.matchLabels, worker.labels) &&
        (np.spec.ingress ?? []).some(
          (rule: { from?: { namespaceSelector?: { matchLabels: Record<string, string> } }[]; ports?: { port: number }[] }) =>
            (rule.from ?? []).some((f) => f.namespaceSelector?.matchLabels['kubernetes.io/metadata.name'] === 'keda') && (rule.ports ?? []).some((p) => p.port === containerPort),
        ),
    );
    expect(fromKeda.length).toBeGreaterThan(0);
    // KEDA owns the replica count: a replicas field would be reset by every `kubectl apply`.
    expect(find(objects, 'Deployment', 'neurotriage-worker').spec.replicas).toBeUndefined();
  });

  test('the ServiceMonitor scrapes a port every selected Service has', () => {
    const objects = render(overlay);
    const sm = find(objects, 'ServiceMonitor', 'neurotriage');
    const selected = byKind(objects, 'Service').filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels ?? {}));
    expect(selected.map((s) => s.metadata.name).sort()).toEqual(['neurotriage-api', 'neurotriage-listener-metrics', 'neurotriage-worker-metrics']);
    const ports = new Set(sm.spec.endpoints.map((e: { port: string }) => e.port));
    for (const s of selected) expect(s.spec.ports.some((p: { name: string }) => ports.has(p.name))).toBe(true);
  });
});

test('the Secrets the workloads read exist, with those keys, in k8s/secrets-example', () => {
  const secrets = renderKustomize('k8s/secrets-example');
  expect(validateRuntime(secrets)).toEqual([]);
  const have = new Map(secrets.map((s) => [s.metadata.name, new Set(Object.keys(s.stringData ?? {}))]));
  const need: [string, string | undefined][] = [];
  for (const overlay of OVERLAYS) {
    const objects = render(overlay);
    for (const { spec } of podTemplates(objects)) {
      for (const c of spec.containers) {
        for (const e of c.env ?? []) if (e.valueFrom?.secretKeyRef) need.push([e.valueFrom.secretKeyRef.name, e.valueFrom.secretKeyRef.key]);
        for (const f of c.envFrom ?? []) if (f.secretRef) need.push([f.secretRef.name, undefined]);
      }
      for (const v of spec.volumes ?? []) if (v.secret) need.push([v.secret.secretName, undefined]);
    }
    for (const ta of byKind(objects, 'TriggerAuthentication')) for (const r of ta.spec.secretTargetRef) need.push([r.name, r.key]);
    for (const ing of byKind(objects, 'Ingress')) for (const t of ing.spec.tls) need.push([t.secretName, undefined]);
    for (const sm of byKind(objects, 'ServiceMonitor')) {
      for (const e of sm.spec.endpoints) if (e.authorization) need.push([e.authorization.credentials.name, e.authorization.credentials.key]);
    }
  }
  const missing = need.filter(([name, key]) => !have.has(name) || (key !== undefined && !have.get(name)!.has(key)));
  expect(missing).toEqual([]);
  // Templates only: no value in them, so nothing real can be committed by filling one in by mistake and applying.
  for (const s of secrets) for (const v of Object.values<string>(s.stringData ?? {})) expect(['', '[]']).toContain(v);
});

test('the GPU overlay asks for one NVIDIA GPU per worker, tolerates GPU nodes and runs the CUDA image', () => {
  const worker = find(render('overlays/gpu'), 'Deployment', 'neurotriage-worker').spec.template.spec;
  const c = worker.containers[0];
  expect(c.resources.limits['nvidia.com/gpu']).toBe('1');
  expect(c.resources.requests['nvidia.com/gpu']).toBe('1');
  expect(c.image).toMatch(/^neurotriage-gpu:/);
  expect(c.env.find((e: { name: string }) => e.name === 'EXECUTION_PROVIDERS').value).toMatch(/^cuda,/);
  expect(worker.tolerations).toEqual(expect.arrayContaining([expect.objectContaining({ key: 'nvidia.com/gpu' })]));
  expect(worker.nodeSelector).toBeDefined();
  const cpu = find(render('overlays/cpu'), 'Deployment', 'neurotriage-worker').spec.template.spec.containers[0];
  expect(cpu.resources.limits['nvidia.com/gpu']).toBeUndefined();
  expect(cpu.image).not.toMatch(/gpu/);
});

// docs/operations.md has each site make its own overlay on one of ours and set the registry and tag with `images:`.
// The GPU overlay used to name its worker image neurotriage:<tag>-gpu, so the site's entry for `neurotriage` (by name,
// whatever the tag) replaced it too: GPU workers ran the CPU image and scored on the CPU (NeurotriageWorkerOnCpuFallback).
test('a site overlay on the GPU overlay that sets the registry and tag keeps the GPU image on the GPU workers', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nt-site-overlay-'));
  const site = (images: { name: string; newName: string; newTag: string }[]) => {
    writeFileSync(path.join(dir, 'kustomization.yaml'), JSON.stringify({ resources: [path.relative(dir, path.join(ROOT, 'k8s/overlays/gpu'))], images }));
    const objects = renderKustomize(path.relative(ROOT, dir));
    const image = (name: string) => find(objects, 'Deployment', name).spec.template.spec.containers[0].image;
    return { listener: image('neurotriage-listener'), worker: image('neurotriage-worker') };
  };
  try {
    // Only the CPU image set: the GPU worker must not silently get it.
    expect(site([{ name: 'neurotriage', newName: 'registry.example/neurotriage', newTag: '9.9.9' }]).worker).not.toBe('registry.example/neurotriage:9.9.9');
    expect(
      site([
        { name: 'neurotriage', newName: 'registry.example/neurotriage', newTag: '9.9.9' },
        { name: 'neurotriage-gpu', newName: 'registry.example/neurotriage-gpu', newTag: '9.9.9' },
      ]),
    ).toEqual({ listener: 'registry.example/neurotriage:9.9.9', worker: 'registry.example/neurotriage-gpu:9.9.9' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// KEDA's operator connects to Redis from its own namespace (keda, as allow-redis-ingress admits), where the short
// name neurotriage-redis does not resolve: the scaler failed with "no such host" and the workers never scaled.
test('the REDIS_ADDRESS KEDA is told to use names the in-cluster Redis Service with its namespace', () => {
  const objects = render('overlays/cpu');
  const svc = find(objects, 'Service', 'neurotriage-redis');
  const kedaNs = find(objects, 'NetworkPolicy', 'allow-redis-ingress').spec.ingress[0].from
    .map((f: { namespaceSelector?: { matchLabels: Record<string, string> } }) => f.namespaceSelector?.matchLabels['kubernetes.io/metadata.name'])
    .find(Boolean);
  expect(kedaNs).toBeDefined();
  expect(kedaNs).not.toBe(svc.metadata.namespace);
  const port = svc.spec.ports[0].port;
  const ok = new RegExp(`^${svc.metadata.name}\\.${svc.metadata.namespace}\\.svc(\\.cluster\\.local)?:${port}$`);
  const ops = readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8');
  const documented = [...ops.matchAll(/REDIS_ADDRESS=(\S+)/g), ...readFileSync(path.join(ROOT, 'k8s/secrets-example/secrets.yaml'), 'utf8').matchAll(/REDIS_ADDRESS=(\S+)/g)].map((m) => m[1]);
  expect(documented.length).toBeGreaterThanOrEqual(2);
  expect(documented.filter((a) => !ok.test(a))).toEqual([]);
});

test('Redis: a StatefulSet with AOF, noeviction and a volume in-cluster; none with external-redis', () => {
  const objects = render('overlays/cpu');
  const sts = find(objects, 'StatefulSet', 'neurotriage-redis');
  const conf = redisConf(objects);
  expect(conf).toMatch(/^appendonly yes$/m);
  expect(conf).toMatch(/^maxmemory-policy noeviction$/m);
  expect(conf).toMatch(/^maxmemory \d+mb$/m);
  expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBeDefined();
  const external = render('overlays/external-redis');
  expect(byKind(external, 'StatefulSet')).toEqual([]);
  const egress = find(external, 'NetworkPolicy', 'allow-redis-egress').spec.egress;
  expect(egress.every((r: { to: { ipBlock?: unknown }[] }) => r.to.every((t) => t.ipBlock))).toBe(true);
});

/** The redis.conf the in-cluster Redis is started with (ConfigMap neurotriage-redis-config, hash-suffixed). */
function redisConf(objects: K8sObject[]): string {
  const sts = find(objects, 'StatefulSet', 'neurotriage-redis');
  const volume = sts.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'redis-config');
  return find(objects, 'ConfigMap', volume.configMap.name).data['redis.conf'];
}

describe('in-cluster Redis password', () => {
  const objects = render('overlays/cpu');
  const pod = find(objects, 'StatefulSet', 'neurotriage-redis').spec.template.spec;
  const server = pod.containers.find((c: { name: string }) => c.name === 'redis');
  const init = pod.initContainers.find((c: { name: string }) => c.name === 'auth-config');
  let dir: string;
  let redis: ChildProcess | undefined;
  let port = 0;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'nt-redis-conf-'));
  });
  afterAll(async () => {
    await stop(redis);
    rmSync(dir, { recursive: true, force: true });
  });

  test('is not on the server\'s command line nor in its environment', () => {
    expect(server.command).toEqual(['redis-server', '/etc/redis/redis.conf']);
    expect(server.args).toBeUndefined();
    expect(server.env ?? []).toEqual([]);
    expect(server.envFrom ?? []).toEqual([]);
    // Kubernetes expands $(VAR) in command and args before the process starts: no container may do that with a secret.
    for (const c of [...pod.initContainers, ...pod.containers]) expect(JSON.stringify([c.command, c.args])).not.toMatch(/\$\(/);
    expect(init.env.map((e: { valueFrom: { secretKeyRef: { key: string } } }) => e.valueFrom.secretKeyRef.key)).toEqual(['REDIS_PASSWORD']);
  });

  test('the init script and redis.conf, run here with a real redis-server: AUTH required, password nowhere in ps', async () => {
    const authDir = path.join(dir, 'auth');
    mkdirSync(authDir);
    mkdirSync(path.join(dir, 'data'));
    const password = randomBytes(16).toString('hex');
    // The init container's script as rendered, with its mount path pointed here.
    const script = init.args.join(' ').replaceAll('/run/redis-auth', authDir);
    execFileSync(init.command[0], [...init.command.slice(1), script], { env: { PATH: process.env.PATH, REDIS_PASSWORD: password } });
    expect(statSync(path.join(authDir, 'auth.conf')).mode & 0o077).toBe(0);
    port = await freePort();
    const conf = redisConf(objects)
      .replace(/^dir .*$/m, `dir ${path.join(dir, 'data')}`)
      .replaceAll('/run/redis-auth', authDir)
      .concat(`\nport ${port}\nbind 127.0.0.1\n`);
    writeFileSync(path.join(dir, 'redis.conf'), conf);
    redis = spawn('redis-server', [path.join(dir, 'redis.conf')], { stdio: 'ignore', env: { PATH: process.env.PATH } });
    const cli = (args: string[], env: Record<string, string> = {}) =>
      execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } }).trim();
    // Until redis-server listens, redis-cli exits non-zero ("Connection refused"): keep polling.
    const answersNoAuth = () => {
      try {
        return /NOAUTH/.test(cli(['ping'])) ? true : undefined;
      } catch {
        return undefined;
      }
    };
    await waitFor('redis-server to answer', answersNoAuth, 20_000);
    // The readiness probe's command, with its path pointed here.
    const probe = server.readinessProbe.exec.command.map((a: string) => a.replaceAll('/run/redis-auth', authDir).replace('redis-cli', `redis-cli -p ${port}`));
    expect(() => execFileSync(probe[0], probe.slice(1), { env: { PATH: process.env.PATH } })).not.toThrow();
    expect(cli(['config', 'get', 'maxmemory-policy'], { REDISCLI_AUTH: password })).toBe('maxmemory-policy\nnoeviction');
    expect(cli(['config', 'get', 'appendonly'], { REDISCLI_AUTH: password })).toBe('appendonly\nyes');
    expect(readFileSync(`/proc/${redis.pid}/cmdline`, 'utf8')).not.toContain(password);
    expect(readFileSync(`/proc/${redis.pid}/environ`, 'utf8')).not.toContain(password);
  }, 40_000);

  // The backup and the runbook's redis-cli run a script in the redis container with `kubectl exec`. They read
  // $REDIS_PASSWORD, which only the init container has: redis-cli went without a password and got NOAUTH.
  test('the documented kubectl exec scripts authenticate with what the redis container has', () => {
    expect(port).toBeGreaterThan(0);
    const ops = readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8');
    const scripts = [...ops.matchAll(/exec neurotriage-redis-0 -- sh -c '([^']+)'/g)].map((m) => m[1]);
    expect(scripts.length).toBeGreaterThanOrEqual(2);
    // The container's environment as Kubernetes gives it: its own env entries (none), no Secret.
    const env: Record<string, string> = { PATH: process.env.PATH ?? '' };
    for (const e of server.env ?? []) env[e.name] = e.value;
    for (const script of scripts) {
      const local = script
        .replaceAll('/run/redis-auth', path.join(dir, 'auth'))
        .replaceAll('/data/', `${path.join(dir, 'data')}/`)
        .replace('redis-cli ...', 'redis-cli ping')
        .replace('redis-cli', `redis-cli -p ${port}`);
      const out = execFileSync('sh', ['-c', local], { encoding: 'utf8', env });
      expect({ script, noauth: /NOAUTH|AUTH failed/.test(out) }).toEqual({ script, noauth: false });
      if (/ping$/.test(local)) expect(out.trim()).toBe('PONG');
    }
    expect(statSync(path.join(dir, 'data/backup.rdb')).size).toBeGreaterThan(0);
  }, 20_000);
});
