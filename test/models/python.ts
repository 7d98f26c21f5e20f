// Runs the training recipe's Python (/usr/bin/python3: Debian's torch + onnx) from tests.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

export const TRAINING_DIR = path.resolve(__dirname, '..', '..', 'onnx-models', 'training');
export const PYTHON = process.env.NEUROTRIAGE_PYTHON ?? '/usr/bin/python3';

export function python(script: string, args: string[], input?: string): string {
  return execFileSync(PYTHON, [path.join(TRAINING_DIR, script), ...args], {
    input,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONWARNINGS: 'ignore' },
  });
}
