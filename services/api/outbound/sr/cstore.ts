// C-STORE of one in-memory dataset to a PACS with dcmjs-dimse's Client, wrapped in a typed async call with an
// overall timeout and TCP no-delay. DIMSE statuses and association outcomes map to retryable or permanent errors.
import { Client, Dataset, Implementation, constants, requests, type association } from 'dcmjs-dimse';
import type { SrTarget } from '../config';
import { PermanentDeliveryError, RetryableDeliveryError } from '../errors';
import type { NaturalDataset } from './dcmjs';
import { statusHex } from '../../../../shared/dicom-hex';
import { PduLengthWatch } from './pdu-watch';

const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';

export interface StoreOutcome {
  status: number;
  /** True for the B0xx warning statuses (stored, with coercion or elements discarded). */
  warning: boolean;
}


/** PS3.4 B.2.3 / PS3.7 C: which failure statuses are worth retrying. */
export function classifyStoreStatus(status: number): StoreOutcome | RetryableDeliveryError | PermanentDeliveryError {
  const hex = statusHex(status);
  if (status === constants.Status.Success) return { status, warning: false };
  if ((status & 0xf000) === 0xb000) return { status, warning: true };
  // A7xx out of resources, 0110 processing failure, 0213 resource limitation: the PACS may recover.
  if ((status & 0xff00) === 0xa700 || status === 0x0110 || status === 0x0213) {
    return new RetryableDeliveryError(`C-STORE failed with status ${hex}`, `dimse-${hex}`);
  }
  // A9xx data set does not match SOP class, Cxxx cannot understand, 0122 SOP class not supported, 0124 not authorised...
  return new PermanentDeliveryError(`C-STORE refused with status ${hex}`, `dimse-${hex}`);
}

interface ClientInternals {
  network?: { socket?: { setNoDelay(noDelay: boolean): unknown; destroy(): unknown; destroyed: boolean; on(event: 'data', listener: (chunk: Buffer) => void): unknown } };
}

export function cStore(elements: NaturalDataset, target: SrTarget): Promise<StoreOutcome> {
  return new Promise<StoreOutcome>((resolve, reject) => {
    const client = new Client();
    const request = new requests.CStoreRequest(new Dataset(elements, EXPLICIT_VR_LITTLE_ENDIAN));
    let outcome: StoreOutcome | Error | undefined;
    let settled = false;
    /** The association's socket, once send() has made it. */
    const held: { socket?: NonNullable<ClientInternals['network']>['socket'] } = {};
    const finish = (value: StoreOutcome | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // dcmjs-dimse only end()s the socket after a timeout, an error or a rejection: a PACS that has stopped
      // answering never closes its side, and the socket stayed open for good (one more per retry). Destroyed once
      // the library has done with it (an A-ABORT sent just before goes out first).
      setImmediate(() => {
        if (held.socket && !held.socket.destroyed) held.socket.destroy();
      });
      if (value instanceof Error) reject(value);
      else resolve(value);
    };
    // Once the PACS has answered the C-STORE, that answer is the outcome: a release that then times out or a
    // connection dropped instead of an A-RELEASE-RP does not undo a stored SR, and retrying it would store it twice.
    const timer = setTimeout(() => {
      finish(outcome ?? new RetryableDeliveryError(`C-STORE did not finish within ${target.timeoutMs} ms`, 'timeout'));
      try {
        client.abort();
      } catch {
        // no association yet: nothing to abort
      }
    }, target.timeoutMs);

    request.on('response', (response: { getStatus(): number }) => {
      const status = response.getStatus();
      if (status === constants.Status.Pending) return;
      outcome = classifyStoreStatus(status);
    });
    // A PACS that does not store the class refuses its presentation context in the A-ASSOCIATE-AC (PS3.8 9.3.3.2);
    // dcmjs-dimse then skips the request and releases, which read as "no response" and was retried, SR and all,
    // until the attempts ran out. The same answer comes on every retry: permanent, naming the class and result.
    client.on('associationAccepted', (association: association.Association) => {
      if (association.getAcceptedPresentationContextFromRequest(request)) return;
      const sopClass = String(elements.SOPClassUID);
      const context = association.getPresentationContexts().map((c) => c.context).find((c) => c.getAbstractSyntaxUid() === sopClass);
      const result = context ? `result ${context.getResult()}, ${context.getResultDescription()}` : 'no result';
      finish(new PermanentDeliveryError(`the PACS refused the presentation context for SOP class ${sopClass} (${result}): it does not store this class`, 'context-rejected'));
      try {
        client.abort();
      } catch {
        // already closing
      }
    });
    client.on('associationRejected', (r: { result: number; reason: number }) => {
      const why = `association rejected (result ${r.result}, reason ${r.reason})`;
      finish(
        r.result === constants.RejectResult.Permanent
          ? new PermanentDeliveryError(`${why}: check SR_TARGET's AE title and the PACS's allowed AEs`, 'association-rejected')
          : new RetryableDeliveryError(why, 'association-rejected-transient'),
      );
    });
    client.on('networkError', (err: Error) => {
      finish(outcome ?? new RetryableDeliveryError(`C-STORE network error (${(err as NodeJS.ErrnoException).code ?? 'error'})`, 'network', { cause: err }));
    });
    client.on('closed', () => {
      finish(outcome ?? new RetryableDeliveryError('association closed without a C-STORE response', 'no-response'));
    });

    client.addRequest(request);
    client.send(target.host, target.port, target.callingAe, target.calledAe, {
      connectTimeout: target.timeoutMs,
      associationTimeout: target.timeoutMs,
      pduTimeout: target.timeoutMs,
      // A short linger: we send one instance per association.
      associationLingerTimeout: 0,
      logDatasets: false,
      logCommandDatasets: false,
    });
    // dcmjs-dimse opens the socket inside send() and offers no option for TCP_NODELAY; the socket exists (not yet
    // connected) once send() returns, and Node applies no-delay when the connection comes up.
    held.socket = (client as unknown as ClientInternals).network?.socket;
    held.socket?.setNoDelay(true);
    // The PACS's PDU headers checked as they arrive (pdu-watch.ts): one claiming more than the sender can take
    // ends the attempt at once, before dcmjs-dimse has buffered its body.
    const watch = new PduLengthWatch(Implementation.getMaxPduLength());
    held.socket?.on('data', (chunk) => {
      if (settled) return;
      const problem = watch.feed(chunk);
      if (problem) finish(outcome ?? new RetryableDeliveryError(`the PACS sent ${problem}`, 'pdu-too-long'));
    });
  });
}
