// Sends a corpus over one association (raw bytes, through dul-client.ts) and records each C-STORE's status. One
// presentation context per (SOP class, transfer syntax) pair in the corpus, plus Verification for a closing
// C-ECHO. Should the SCP abort or close, the rest are sent on a new association and the loss is recorded: the
// fuzz test asserts it never happens.
import { DulClient, type ProposedContext } from './dul-client';
import type { CorpusInstance } from './corpus';

export interface FuzzTarget {
  host: string;
  port: number;
  callingAe: string;
  calledAe: string;
}

export interface SendResult {
  id: string;
  /** DIMSE status, or -1 when the association ended before the response. */
  status: number;
  errorComment?: string;
}

export interface CorpusRun {
  results: SendResult[];
  /** Associations that ended (abort or close) while the corpus was being sent. */
  associationsLost: number;
  /** The C-ECHO status on the association after the last instance. */
  echoStatus: number;
}

const VERIFICATION = '1.2.840.10008.1.1';

function contextsFor(instances: CorpusInstance[]): { contexts: ProposedContext[]; idOf: Map<string, number> } {
  const idOf = new Map<string, number>();
  const contexts: ProposedContext[] = [{ id: 1, abstractSyntaxUID: VERIFICATION, transferSyntaxUIDs: ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2'] }];
  for (const i of instances) {
    const key = `${i.SOPClassUID}|${i.transferSyntaxUID}`;
    if (idOf.has(key)) continue;
    const id = 1 + 2 * contexts.length;
    idOf.set(key, id);
    contexts.push({ id, abstractSyntaxUID: i.SOPClassUID, transferSyntaxUIDs: [i.transferSyntaxUID] });
  }
  return { contexts, idOf };
}

async function open(target: FuzzTarget, contexts: ProposedContext[]): Promise<DulClient> {
  const client = new DulClient(target.host, target.port);
  const outcome = await client.associate(target.callingAe, target.calledAe, contexts);
  if (outcome.kind !== 'accepted') {
    client.destroy();
    throw new Error(`association not accepted: ${outcome.kind}`);
  }
  for (const c of contexts) {
    if (outcome.contexts.get(c.id)?.result !== 0) {
      client.destroy();
      throw new Error(`presentation context ${c.abstractSyntaxUID} / ${c.transferSyntaxUIDs[0]} not accepted`);
    }
  }
  return client;
}

export async function sendCorpus(instances: CorpusInstance[], target: FuzzTarget): Promise<CorpusRun> {
  const { contexts, idOf } = contextsFor(instances);
  let client = await open(target, contexts);
  const results: SendResult[] = [];
  let associationsLost = 0;
  for (const instance of instances) {
    const contextId = idOf.get(`${instance.SOPClassUID}|${instance.transferSyntaxUID}`) as number;
    try {
      const answer = await client.store(contextId, instance.SOPClassUID, instance.SOPInstanceUID, instance.dataset);
      results.push({ id: instance.id, ...answer });
    } catch {
      results.push({ id: instance.id, status: -1 });
      associationsLost += 1;
      client.destroy();
      client = await open(target, contexts);
    }
  }
  const echo = await client.echo(1).catch(() => ({ status: -1 }));
  await client.release().catch(() => false);
  return { results, associationsLost, echoStatus: echo.status };
}
