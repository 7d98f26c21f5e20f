// The Kubernetes manifests, rendered per overlay with `kubectl kustomize` and validated offline: schemas and
// misspelt keys (manifests.ts), then what the services need from them: settings every service accepts, the
// Secrets they read, probes, limits and hardening, PDBs, NetworkPolicies that let the data path through, KEDA on
// the real queue, GPU scheduling, and scraping.
import { loadConfig, loadSection } from '../../shared/config';
import { STUDY_QUEUE } from '../../shared/studies';
import { loadListenerSettings } from '../../services/listener/config';
import { loadWorkerConfig } from '../../services/worker/config';
import { ApiSettingsSchema, API_DEFAULTS } from '../../services/api/settings';
import { OutboundSettingsSchema, OUTBOUND_DEFAULTS } from '../../services/api/outbound/config';
import { RetentionSettingsSchema, RETENTION_DEFAULTS } from '../../tools/retention';
import { ConfigSchema } from '../../shared/config';
import { WorkerConfigSchema } from '../../services/worker/config';
import { ListenerSectionSchema } from '../../services/listener/config';
import { byKind, find, matches, podTemplates, renderKustomize, typeCheck, validateRuntime, type K8sObject } from './manifests';

const OVERLAYS = ['overlays/cpu', 'overlays/gpu', 'overlays/external-redis'] as const;
const rendered = new Map<string, K8sObject[]>();
const render = (dir: string) => {
  if (!rendered.has(dir)) rendered.set(dir, renderKustomize(`k8s/${dir}`));
  return rendered.get(dir)!;
};

/** Keys any service, or the retention job, reads; TZ etc. are the runtime's, not ours. */
const KNOWN_SETTINGS = new Set(
  [ConfigSchema, WorkerConfigSchema, ListenerSectionSchema, ApiSettingsSchema, OutboundSettingsSchema, RetentionSettingsSchema]
    .flatMap((s) => Object.keys(s.properties)),
);

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
      }
    }
    expect(loadSection(RetentionSettingsSchema, RETENTION_DEFAULTS, config.data).RETENTION_DAYS).toBeGreaterThan(0);
  });

  test('containers have requests, limits, probes and a hardened security context; pods run as non-root', () => {
    for (const { owner, spec } of podTemplates(render(overlay))) {
      expect({ owner, nonRoot: spec.securityContext?.runAsNonRoot, seccomp: spec.securityContext?.seccompProfile?.type }).toEqual({ owner, nonRoot: true, seccomp: 'RuntimeDefault' });
      expect({ owner, token: spec.automountServiceAccountToken }).toEqual({ owner, token: false });
      for (const c of spec.containers) {
        const what = `${owner}/${c.name}`;
        for (const r of ['cpu', 'memory']) {
          expect({ what, r, request: Boolean(c.resources?.requests?.[r]), limit: Boolean(c.resources?.limits?.[r]) }).toEqual({ what, r, request: true, limit: true });
        }
        expect({ what, sc: c.securityContext }).toMatchObject({ what, sc: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } } });
        if (!owner.startsWith('CronJob')) {
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
    expect(policies.some((p) => p.metadata.name === 'allow-dns' && Object.keys(p.spec.podSelector).length === 0)).toBe(true);
  });

  test('the PACS-facing Service keeps the client address (AE@host policies and ipBlocks need it)', () => {
    const svc = find(render(overlay), 'Service', 'neurotriage-dicom');
    expect(svc.spec.type).toBe('LoadBalancer');
    expect(svc.spec.externalTrafficPolicy).toBe('Local');
  });

  test('KEDA scales the worker Deployment on the studies queue\'s BullMQ wait list', () => {
    const objects = render(overlay);
    const so = find(objects, 'ScaledObject', 'neurotriage-worker');
    expect(so.spec.scaleTargetRef.name).toBe(find(objects, 'Deployment', 'neurotriage-worker').metadata.name);
    expect(so.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
    const trigger = so.spec.triggers[0];
    expect(trigger.type).toBe('redis');
    expect(trigger.metadata.listName).toBe(`bull:${STUDY_QUEUE}:wait`);
    expect(find(objects, 'TriggerAuthentication', trigger.authenticationRef.name).spec.secretTargetRef.map((r: { parameter: string }) => r.parameter)).toEqual(
      expect.arrayContaining(['address', 'password']),
    );
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
  expect(c.image).toMatch(/-gpu$/);
  expect(c.env.find((e: { name: string }) => e.name === 'EXECUTION_PROVIDERS').value).toMatch(/^cuda,/);
  expect(worker.tolerations).toEqual(expect.arrayContaining([expect.objectContaining({ key: 'nvidia.com/gpu' })]));
  expect(worker.nodeSelector).toBeDefined();
  const cpu = find(render('overlays/cpu'), 'Deployment', 'neurotriage-worker').spec.template.spec.containers[0];
  expect(cpu.resources.limits['nvidia.com/gpu']).toBeUndefined();
  expect(cpu.image).not.toMatch(/-gpu$/);
});

test('Redis: a StatefulSet with AOF, noeviction and a volume in-cluster; none with external-redis', () => {
  const sts = find(render('overlays/cpu'), 'StatefulSet', 'neurotriage-redis');
  const args = sts.spec.template.spec.containers[0].args.join(' ');
  expect(args).toMatch(/--appendonly yes/);
  expect(args).toMatch(/--maxmemory-policy noeviction/);
  expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBeDefined();
  const external = render('overlays/external-redis');
  expect(byKind(external, 'StatefulSet')).toEqual([]);
  const egress = find(external, 'NetworkPolicy', 'allow-redis-egress').spec.egress;
  expect(egress.every((r: { to: { ipBlock?: unknown }[] }) => r.to.every((t) => t.ipBlock))).toBe(true);
});
