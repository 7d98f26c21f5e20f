// ONNX Runtime sessions with an ordered list of execution providers ('cuda' then 'cpu' by default): each is tried
// in turn and the one that created the session is returned, so callers can log and report what actually runs.
// The CUDA provider needs libonnxruntime_providers_cuda.so beside the onnxruntime-node binding (see
// docs/gpu.md); when it is absent we skip 'cuda' without asking ONNX Runtime, which would print an error.
import { existsSync } from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { ModelBundleError } from './errors';

export type ExecutionProvider = 'cuda' | 'cpu';

export interface ModelSession {
  session: ort.InferenceSession;
  provider: ExecutionProvider;
  /** Why earlier providers in the list were not used (empty when the first one worked). */
  fallbacks: string[];
}

export function cudaProviderLibrary(): string {
  const binding = path.dirname(require.resolve('onnxruntime-node'));
  return path.join(binding, '..', 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so');
}

export async function createSession(file: string, providers: readonly ExecutionProvider[], threads?: number): Promise<ModelSession> {
  const fallbacks: string[] = [];
  for (const provider of providers) {
    if (provider === 'cuda' && !existsSync(cudaProviderLibrary())) {
      fallbacks.push('cuda: provider library not installed');
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(file, {
        executionProviders: [provider],
        logSeverityLevel: 3,
        ...(threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
      });
      return { session, provider, fallbacks };
    } catch (err) {
      fallbacks.push(`${provider}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new ModelBundleError(`cannot create an ONNX Runtime session for ${path.basename(file)}: ${fallbacks.join('; ')}`);
}
