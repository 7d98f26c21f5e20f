// The DIMSE side: one StoreScp (a dcmjs-dimse Scp) per TCP connection, and the DicomServer that owns the socket
// listener, counts associations and shuts down gracefully. dcmjs-dimse's callback hooks are wrapped here so the
// rest of the listener sees typed async calls:
//  - createStoreWritableStream() hands dcmjs-dimse a Spool, so P-DATA fragments go straight to memory/temp file;
//  - createDatasetFromStoreWritableStream() returns no Dataset at all: nothing is parsed or re-serialised;
//  - cStoreRequest() runs storeInstance() and sends the response only when it resolves. The response starts as a
//    failure and becomes Success only after the instance is durable and recorded;
//  - _processPDataTf() reads whole C-STORE-RQ / C-ECHO-RQ command sets itself (command-set.ts) instead of through
//    dcmjs, and writes a C-STORE's data set PDVs to its spool as views of the socket's reads (storingData()); every
//    other PDU goes the library's way. A PDV on a presentation context we did not accept aborts;
//  - the socket's bytes pass a PduGate (pdu-gate.ts) before dcmjs-dimse buffers them, and a connection must deliver
//    its A-ASSOCIATE-RQ within the ARTIM time; the DicomServer admits connections through a ConnectionGuard.
// Each accepted C-STORE's data set is walked as it arrives (dataset-check.ts) and answered Success only when its
// structure and image attributes check out.
import net from 'node:net';
import tls from 'node:tls';
import { randomUUID } from 'node:crypto';
import { Scp, Dataset as DimseDataset, requests as dimseRequestClasses, responses, Implementation } from 'dcmjs-dimse';
import type { association as dimseAssociation, requests as dimseRequests, Dataset } from 'dcmjs-dimse';
import type { Logger } from '../../shared/logger';
import { statusHex } from '../../shared/dicom-hex';
import { assertUid, instanceStorageKey, isUid } from '../../shared/studies';
import {
  decideAssociation,
  negotiateContext,
  ContextResult,
  type AssociationPolicy,
  type ContextUse,
  type OtherStorage,
} from './association-policy';
import { buildFileMeta } from './part10';
import { MR_STORAGE_CLASSES, STORAGE_TRANSFER_SYNTAXES } from './dicom-uids';
import { checkImage, createDatasetCheck, type DatasetCheck } from './dataset-check';
import { PduGate, PduType, abortPdu, AbortReason, parsePDataTfPieces, readAssociateRqHeader, type AssociateRqHeader, type PduPieces } from './pdu-gate';
import { ConnectionGuard, normaliseAddress } from '../../shared/connection-guard';
import type { RefusalReason } from './connection-refusals';
import { encodeResponsePdu } from './response-pdu';
import { CommandField, NO_DATA_SET, isCommandSet, readCommandSet } from './command-set';
import { InstanceStore, Spool } from './instance-store';
import { StudyAssembler } from './study-assembler';
import {
  BackendUnavailableError,
  DatasetMismatchError,
  MalformedDatasetError,
  OutOfDiskError,
  StoreError,
  SopClassNotOnContextError,
  StoreStatus,
  StudyPurgingError,
  errorLabel,
  refusalCode,
  statusForError,
} from './errors';
import type { ListenerMetrics, RefusalRecordOutcome } from './metrics';

type Association = dimseAssociation.Association;
type PresentationContext = dimseAssociation.PresentationContext;
type CStoreRequest = dimseRequests.CStoreRequest;
type CEchoRequest = dimseRequests.CEchoRequest;
const { CStoreResponse, CEchoResponse } = responses;

/** One PDV of a P-DATA-TF PDU as dcmjs-dimse hands it over (not in its typings), plus its value as pieces. */
interface Pdv {
  getPresentationContextId(): number;
  getValue(): Buffer;
  getValues(): Buffer[];
  isCommand(): boolean;
  isLastFragment(): boolean;
}

/** dcmjs-dimse's Network state that the command fast path reads and sets, as its own _processPDataTf does. */
interface NetworkInternals {
  association: Association;
  /** The command whose data set is being received. */
  dimse: unknown;
  /** Command fragments being gathered. */
  dimseStream: unknown;
  dimseStoreStream: Spool | undefined;
  /** When the last whole PDU arrived (dcmjs-dimse's idle timer reads it). */
  lastPduTime: number;
  _performDimse(context: PresentationContext, command: unknown): void;
  _processPdu(pdu: Buffer): Promise<void>;
}

type PDataTf = { getPdvs(): Pdv[] };
const libraryProcessPDataTf = (Scp.prototype as unknown as { _processPDataTf: (pdu: PDataTf) => Promise<void> })._processPDataTf;

/** Our implementation identity in A-ASSOCIATE-AC and in the File Meta Information of every stored file. */
export const IMPLEMENTATION_CLASS_UID = '2.25.238428061553447711066377442516318693921';
export const IMPLEMENTATION_VERSION_NAME = 'NEUROTRIAGE_01';

export interface ScpSettings {
  policy: AssociationPolicy;
  otherStorage: OtherStorage;
  idleTimeoutMs: number;
  /** ARTIM (PS3.8 9.1.5): time for a new connection to deliver its A-ASSOCIATE-RQ, and for a peer to close after RJ. */
  artimTimeoutMs: number;
  maxPduLength: number;
  completeOnRelease: boolean;
  maxConnections: number;
  maxConnectionsPerPeer: number;
}

export interface ScpDeps {
  settings: ScpSettings;
  store: InstanceStore;
  assembler: StudyAssembler;
  metrics: ListenerMetrics;
  log: Logger;
  server: AssociationBook;
}

/** What the server knows across connections: open associations and whether we are shutting down. */
export interface AssociationBook {
  activeAssociations: number;
  shuttingDown: boolean;
  /** Every C-STORE still being made durable, so shutdown waits for them before closing Redis. */
  inFlight: Set<Promise<unknown>>;
  guard: ConnectionGuard<RefusalReason>;
}

interface PendingStore {
  spool: Spool;
  /** 'refused': a context we did not accept (see createStoreWritableStream). */
  use: ContextUse | 'refused';
  /** The presentation context's abstract syntax: the one SOP class its C-STOREs may carry. */
  abstractSyntaxUID: string;
  transferSyntaxUID: string;
  startedAt: bigint;
  refused: boolean;
  /** The structure walk fed by the spool (stored classes; and a C-STORE whose class is not its context's, for its UIDs). */
  check?: DatasetCheck;
}

/** A C-STORE response's status and, for a failure, its Error Comment (0000,0902; never patient data). */
interface StoreAnswer {
  status: number;
  comment?: string;
}

export type StoreOutcome = 'stored' | 'duplicate' | 'ignored';

/** The verified peer certificate's subject CN (one value; the first when a subject repeats it), else null. */
function certificateCommonName(socket: tls.TLSSocket): string | null {
  if (!socket.authorized) return null;
  const cn = socket.getPeerCertificate()?.subject?.CN as string | string[] | undefined;
  return (Array.isArray(cn) ? cn[0] : cn) ?? null;
}

/** One association: policy at A-ASSOCIATE-RQ, C-ECHO, C-STORE to the store, release and abort. */
export class StoreScp extends Scp {
  private readonly deps: ScpDeps;
  private readonly socket: net.Socket;
  private readonly contextUse = new Map<number, ContextUse>();
  private readonly pendingStores = new WeakMap<object, PendingStore>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly studies = new Set<string>();
  private currentSpool: Spool | undefined;
  private callingAeTitle = '';
  private accepted = false;
  /** The peer's Maximum Length Received from its A-ASSOCIATE-RQ (0: no limit): our responses are split to fit it. */
  private peerMaxPduLength = 0;
  /** Protocol Version and Application Context Name of the A-ASSOCIATE-RQ, which dcmjs-dimse does not expose. */
  private requestHeader: AssociateRqHeader = { protocolVersion: 0, applicationContextName: '' };
  private readonly peer: string;
  private readonly gate: PduGate;
  private readonly artim: NodeJS.Timeout;
  /** A protocol violation was seen: the association is being aborted. */
  private violated = false;
  /** The presentation context of the message being received: that of its last command PDV. */
  private messageContextId: number | undefined;
  /** A command's fragments are being received (its last one has not come). */
  private commandOpen = false;
  private readonly traceId = randomUUID();
  private readonly log: Logger;
  private counts = { stored: 0, duplicate: 0, ignored: 0, failed: 0 };

  constructor(socket: net.Socket, deps: ScpDeps, peer: string) {
    const timeout = deps.settings.idleTimeoutMs;
    // dcmjs-dimse's own "association timeout" is left a little longer than our ARTIM timer, which fires first.
    super(socket, { connectTimeout: timeout, associationTimeout: deps.settings.artimTimeoutMs + 5000, pduTimeout: timeout });
    this.deps = deps;
    this.socket = socket;
    this.peer = peer;
    this.log = deps.log.child({ traceId: this.traceId, peer: socket.remoteAddress });
    this.gate = new PduGate(deps.settings.maxPduLength);
    // dcmjs-dimse only starts its association timer from connectedTime, which a server-side socket never sets.
    const self = this as unknown as { connected: boolean; connectedTime: number };
    self.connected = true;
    self.connectedTime = Date.now();
    // The PDU gate frames the socket's bytes in place of dcmjs-dimse's accumulator (its only 'data' listener).
    socket.removeAllListeners('data');
    socket.on('data', (chunk: Buffer) => {
      if (this.violated) return;
      const { pdus, violation } = this.gate.push(chunk);
      for (const pdu of pdus) this.receivePdu(pdu);
      if (violation) this.protocolAbort(violation.label, violation.reason, violation.detail);
      // A peer that sends requests without reading the responses (C-ECHO-RQ after C-ECHO-RQ) is read no further
      // until it has taken what was written to it: its responses wait in TCP, not in this process's memory.
      if (socket.writableNeedDrain) socket.pause();
    });
    socket.on('drain', () => socket.resume());
    this.artim = setTimeout(() => this.refuse('artim-timeout'), deps.settings.artimTimeoutMs);
    this.artim.unref();
    this.on('networkError', (err: Error) => {
      // A socket error or dcmjs-dimse's own idle timeout ("<AE> -> Connection error: ...", "... Connection timeout")
      // just closes. Anything else is dcmjs-dimse failing to read a PDU the gate framed (an A-ASSOCIATE-RQ whose
      // items overrun it, for one): a protocol error that gets its A-ABORT.
      if ((err as NodeJS.ErrnoException).code || /Connection (error|timeout)/.test(err.message)) {
        this.log.warn({ err: err.message }, 'association network error; closing');
        this.socket.destroy();
      } else {
        this.protocolAbort('invalid-pdu', AbortReason.InvalidPduParameterValue, `PDU could not be read: ${err.message.slice(0, 120)}`);
      }
    });
    this.on('close', () => this.onClose());
  }

  /**
   * One complete PDU from the gate, as the pieces it arrived in. P-DATA-TF is read here (its PDVs are views of the
   * pieces, not copies) and goes to _processPDataTf(); every other PDU goes, whole, to dcmjs-dimse's own handling,
   * as its accumulator would have passed it.
   */
  private receivePdu(pieces: PduPieces): void {
    if (this.violated) return;
    const net = this as unknown as NetworkInternals;
    net.lastPduTime = Date.now();
    if (pieces[0][0] !== PduType.PDataTf) {
      const pdu = pieces.length === 1 ? pieces[0] : Buffer.concat(pieces);
      if (pdu[0] === PduType.AssociateRq) this.requestHeader = readAssociateRqHeader(pdu);
      void net._processPdu(pdu);
      return;
    }
    const pdvs = parsePDataTfPieces(pieces);
    if (!pdvs) {
      this.protocolAbort('invalid-pdu', AbortReason.InvalidPduParameterValue, 'P-DATA-TF whose PDV lengths do not add up');
      return;
    }
    void this._processPDataTf({ getPdvs: () => pdvs });
  }

  /** Closes a connection that never became an association (ARTIM expiry) and records why. */
  private refuse(reason: RefusalReason): void {
    if (this.socket.destroyed) return;
    this.deps.server.guard.refused(this.peer, reason);
    this.gate.closing();
    this.socket.destroy();
  }

  /**
   * A protocol violation (PS3.8 9.2, 9.3): A-ABORT from the service provider, then the socket is closed without
   * waiting for the peer, and nothing more it sent is processed.
   */
  private protocolAbort(reason: RefusalReason, abortReason: number, detail: string): void {
    if (this.violated || this.socket.destroyed) return;
    this.violated = true;
    this.gate.closing();
    clearTimeout(this.artim);
    this.deps.server.guard.refused(this.peer, reason, detail);
    void this.currentSpool?.abort();
    const socket = this.socket;
    socket.end(abortPdu(abortReason));
    // end() sends the A-ABORT and a FIN; destroy soon after in case the peer neither reads nor closes.
    setTimeout(() => socket.destroy(), 100).unref();
  }

  override associationRequested(association: Association): void {
    clearTimeout(this.artim);
    if (this.violated || this.socket.destroyed) return;
    this.callingAeTitle = association.getCallingAeTitle();
    const book = this.deps.server;
    const decision = decideAssociation(this.deps.settings.policy, {
      ...this.requestHeader,
      calledAeTitle: association.getCalledAeTitle(),
      callingAeTitle: this.callingAeTitle,
      remoteAddress: this.socket.remoteAddress,
      ...(this.socket instanceof tls.TLSSocket ? { certificateCommonName: certificateCommonName(this.socket) } : {}),
      maxLengthReceived: association.getMaxPduLength(),
      activeAssociations: book.activeAssociations,
      shuttingDown: book.shuttingDown,
    });
    const who = { callingAeTitle: this.callingAeTitle, calledAeTitle: association.getCalledAeTitle() };
    if (!decision.accept) {
      this.deps.metrics.associations.inc({ result: 'rejected', reason: decision.label });
      const extra = decision.label === 'max-length-too-small' ? { maxLengthReceived: association.getMaxPduLength() }
        // The likeliest rejection at a first install (a PACS, or echoscu as ECHOSCU): the line says how to let it in.
        : decision.label === 'calling-ae-not-recognised' ? { fix: 'to admit this sender, add its AE (or AE@host) to DICOM_ALLOWED_CALLING_AES and restart the listener' }
        : {};
      this.log.warn({ ...who, reason: decision.label, ...extra }, 'association rejected');
      this.gate.closing();
      this.sendAssociationReject(decision.result, decision.source, decision.reason);
      // The requestor closes after an A-ASSOCIATE-RJ (PS3.8 9.2.3); close ourselves if it does not (ARTIM).
      setTimeout(() => this.socket.destroy(), this.deps.settings.artimTimeoutMs).unref();
      return;
    }
    // PS3.8 9.3.2.2: at most 128 presentation contexts, each with an odd ID of 1-255. dcmjs-dimse renumbers a
    // duplicate or even ID past 255, which its A-ASSOCIATE-AC cannot encode (it threw and took the process down).
    const proposed = association.getPresentationContexts();
    const badId = proposed.find(({ id }) => !(id >= 1 && id <= 255 && id % 2 === 1));
    if (proposed.length === 0 || proposed.length > 128 || badId) {
      this.protocolAbort('invalid-pdu', AbortReason.InvalidPduParameterValue, proposed.length === 0 ? 'A-ASSOCIATE-RQ without a presentation context' : `A-ASSOCIATE-RQ with ${proposed.length} presentation contexts${badId ? ' and a duplicate, even or out-of-range context ID' : ''} (at most 128, odd IDs 1-255)`);
      return;
    }
    const accepted: string[] = [];
    // MR image contexts we refuse (a big endian or lossy proposal): the sender only sees result 4 in the A-ASSOCIATE-AC
    // and stores nothing, so the site's log must say which syntaxes were proposed. UIDs only, never data.
    const refusedMr: { abstractSyntax: string; transferSyntaxes: string[]; result: string }[] = [];
    for (const { id } of proposed) {
      const context = association.getPresentationContext(id);
      // SCP/SCU role selection is not supported (PS3.7 D.3.3.4): no item in the A-ASSOCIATE-AC, so the default roles
      // hold. dcmjs-dimse would echo the proposed roles back, promising an SCP role we never take.
      const roles = context as unknown as { setUserRole(v: undefined): void; setProviderRole(v: undefined): void };
      roles.setUserRole(undefined);
      roles.setProviderRole(undefined);
      const decided = negotiateContext(context.getAbstractSyntaxUid(), context.getTransferSyntaxUids(), this.deps.settings.otherStorage);
      if ('transferSyntaxUID' in decided) {
        context.setResult(ContextResult.Accept, decided.transferSyntaxUID);
        this.contextUse.set(id, decided.use);
        accepted.push(`${context.getAbstractSyntaxUid()}:${decided.transferSyntaxUID}`);
      } else {
        context.setResult(decided.result);
        if (MR_STORAGE_CLASSES.includes(context.getAbstractSyntaxUid()) && refusedMr.length < 8) {
          refusedMr.push({
            abstractSyntax: context.getAbstractSyntaxUid(),
            transferSyntaxes: context.getTransferSyntaxUids().slice(0, 8).map((ts) => String(ts).slice(0, 64)),
            result: decided.result === ContextResult.RejectTransferSyntaxesNotSupported ? 'transfer-syntaxes-not-supported' : 'abstract-syntax-not-supported',
          });
        }
      }
    }
    this.peerMaxPduLength = association.getMaxPduLength();
    association.setMaxPduLength(this.deps.settings.maxPduLength);
    // One operation at a time (the default window): answer no asynchronous-operations item.
    association.setNegotiateAsyncOps(false);
    this.accepted = true;
    book.activeAssociations += 1;
    this.deps.metrics.associations.inc({ result: 'accepted', reason: '' });
    this.deps.metrics.activeAssociations.set(book.activeAssociations);
    this.log.info({ ...who, contexts: accepted.length, refusedContexts: proposed.length - accepted.length }, 'association accepted');
    if (refusedMr.length > 0) {
      // acceptedMr: another MR context of the association was accepted ('store' is negotiateContext's use for MR).
      this.log.warn({ ...who, refused: refusedMr, acceptedMr: [...this.contextUse.values()].includes('store') }, 'MR presentation contexts refused');
    }
    this.gate.accepted();
    try {
      this.sendAssociationAccept();
    } catch (err) {
      // Whatever else the library cannot encode ends this association, never the process.
      this.protocolAbort('invalid-pdu', AbortReason.InvalidPduParameterValue, `A-ASSOCIATE-AC could not be written: ${(err as Error).message.slice(0, 120)}`);
    }
  }

  override cEchoRequest(request: CEchoRequest, callback: (response: dimseResponse) => void): void {
    const response = CEchoResponse.fromRequest(request);
    response.setStatus(StoreStatus.Success);
    callback(response);
  }

  override createStoreWritableStream(context: PresentationContext, request: CStoreRequest): Spool {
    // _processPDataTf() aborts on a context we did not accept before any data set reaches here; 'refused' keeps
    // this fail-closed should one get through anyway (the C-STORE then fails, it never answers Success).
    const use = this.contextUse.get(context.getPresentationContextId()) ?? 'refused';
    const transferSyntaxUID = context.getAcceptedTransferSyntaxUid() ?? '';
    const refused = use !== 'store' ? use === 'refused' : this.deps.store.belowWatermark();
    const meta = buildFileMeta({
      MediaStorageSOPClassUID: request.getAffectedSopClassUid() ?? '',
      MediaStorageSOPInstanceUID: request.getAffectedSopInstanceUid() ?? '',
      TransferSyntaxUID: transferSyntaxUID,
      ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
      ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
      SourceApplicationEntityTitle: this.callingAeTitle,
    });
    const keep = use === 'store' && !refused;
    // A C-STORE whose SOP class is not its context's is refused 0122 whatever the data set holds; it is walked all the
    // same (a discarded spool still feeds the walk) so its study and series, read from it, can be recorded for the
    // study's result (recordRefusal). Only in a transfer syntax the walk reads (those accepted for MR); any other
    // (an ignored class's context accepts whatever is proposed first) leaves it unattributed.
    const wrongClass = (request.getAffectedSopClassUid() ?? '') !== context.getAbstractSyntaxUid();
    const walk = keep || (wrongClass && use !== 'refused' && use !== 'verification' && STORAGE_TRANSFER_SYNTAXES.includes(transferSyntaxUID));
    const check = walk ? createDatasetCheck(transferSyntaxUID) : undefined;
    const spool = this.deps.store.openSpool(meta, !keep, check);
    this.pendingStores.set(request, { spool, use, abstractSyntaxUID: context.getAbstractSyntaxUid(), transferSyntaxUID, startedAt: process.hrtime.bigint(), refused, check });
    this.currentSpool = spool;
    return spool;
  }

  override createDatasetFromStoreWritableStream(_writable: unknown, _context: PresentationContext, callback: (dataset: Dataset) => void): void {
    // The bytes stay in the spool; storeInstance() reads only the few header elements it needs.
    callback(undefined as unknown as Dataset);
  }

  override cStoreRequest(request: CStoreRequest, callback: (response: dimseResponse) => void): void {
    const pending = this.pendingStores.get(request);
    this.pendingStores.delete(request);
    if (this.currentSpool === pending?.spool) this.currentSpool = undefined;
    const op = this.runStore(request, pending).then((answer) => {
      const response = CStoreResponse.fromRequest(request);
      response.setStatus(answer.status);
      if (answer.comment) response.setErrorComment(answer.comment);
      if (!this.socket.destroyed) callback(response);
    });
    this.track(op);
  }

  private async runStore(request: CStoreRequest, pending: PendingStore | undefined): Promise<StoreAnswer> {
    const metrics = this.deps.metrics;
    if (!pending) {
      // A C-STORE without a data set: nothing to store.
      this.counts.failed += 1;
      metrics.instances.inc({ outcome: 'CannotUnderstand' });
      return { status: StoreStatus.CannotUnderstand, comment: 'C-STORE without a data set' };
    }
    let answer: StoreAnswer;
    let outcome: string;
    try {
      outcome = await this.storeInstance(request, pending);
      answer = { status: StoreStatus.Success };
      this.counts[outcome as StoreOutcome] += 1;
    } catch (err) {
      // Not acknowledged: the instance's write-ahead log record, if it has one, is voided before the failure goes out.
      const notVoided = await this.deps.store.unacknowledged(pending.spool);
      if (notVoided) {
        this.log.error({ err: notVoided.message }, 'could not void the write-ahead log record of an unacknowledged instance; a crash before the next checkpoint writes it into the store');
      }
      await pending.spool.abort().catch(() => undefined);
      const status = statusForError(err);
      outcome = errorLabel(err);
      // Our own messages say what is wrong with the structure (tags, lengths, counts); never values.
      // Every failure carries an Error Comment (dicom-conformance.md 5.1): our own message for a StoreError, a
      // generic one otherwise (an unexpected error's text may hold anything).
      // A Redis error's own text names hosts and sockets: the sender gets the cause, not that.
      const comment = err instanceof BackendUnavailableError ? 'Redis not reachable; send again later'
        : err instanceof StoreError ? err.message : 'temporarily unable to store; send again later';
      answer = { status, comment: comment.slice(0, 64) };
      this.counts.failed += 1;
      const level = status === StoreStatus.OutOfResources ? 'error' : 'warn';
      // The sender's field is logged only when it is a UID: a misconfigured sender can put anything there.
      const affected = request.getAffectedSopInstanceUid() ?? '';
      const refusal = await this.recordRefusal(err, status, pending, isUid(affected) ? affected : undefined);
      this.log[level](
        { status: statusHex(status), reason: outcome, err: (err as Error).message, SOPInstanceUID: isUid(affected) ? affected : '(not a UID)', ...refusal },
        'C-STORE failed',
      );
    }
    metrics.instances.inc({ outcome });
    metrics.receivedBytes.inc(pending.spool.bytes);
    metrics.storeDuration.observe({ outcome }, Number(process.hrtime.bigint() - pending.startedAt) / 1e9);
    return answer;
  }

  /**
   * A permanent refusal (refusalCode) of a data set whose study and series UIDs were read before it failed is
   * recorded for the study's result (shared/refusals.ts), before the failure is answered, so a study completed on
   * release already has it. A refusal that cannot be attributed stays in the log line and the metrics only. The
   * answer never depends on this: a Redis error here is logged, not sent.
   */
  private async recordRefusal(err: unknown, status: number, pending: PendingStore, affected: string | undefined): Promise<{ SeriesInstanceUID?: string; refusalRecord: string }> {
    const code = refusalCode(err);
    if (!code) return { refusalRecord: 'not-recorded' };
    const counted = (refusalRecord: RefusalRecordOutcome, SeriesInstanceUID?: string) => {
      this.deps.metrics.refusalRecords.inc({ outcome: refusalRecord });
      return { ...(SeriesInstanceUID ? { SeriesInstanceUID } : {}), refusalRecord };
    };
    const { StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID } = pending.check?.seen() ?? {};
    if (!StudyInstanceUID || !SeriesInstanceUID || !isUid(StudyInstanceUID) || !isUid(SeriesInstanceUID)) return counted('unattributed');
    try {
      const sop = SOPInstanceUID && isUid(SOPInstanceUID) ? SOPInstanceUID : affected;
      const out = await this.deps.assembler.recordRefusal({ StudyInstanceUID, SeriesInstanceUID, ...(sop ? { SOPInstanceUID: sop } : {}), refusal: code, status });
      return counted(out === 1 ? 'counted' : out === 0 ? 'counted-before' : 'record-full', SeriesInstanceUID);
    } catch (recordErr) {
      this.log.warn({ err: (recordErr as Error).message.slice(0, 200) }, 'refused instance not recorded for the study result');
      return counted('error', SeriesInstanceUID);
    }
  }

  /** Spool -> header check -> durable file -> arrival record -> study schedule. Throws a StoreError on failure. */
  private async storeInstance(request: CStoreRequest, pending: PendingStore): Promise<StoreOutcome> {
    const { spool } = pending;
    await spool.done;
    if (pending.use === 'refused') throw new MalformedDatasetError('C-STORE on a presentation context not accepted');
    if (pending.use === 'verification') throw new MalformedDatasetError('C-STORE on the Verification context');
    // The context was negotiated for one SOP class (PS3.8 7.1.1.13): a CT sent on the MR context must not be stored
    // and scored, nor an MR sent on an ignored class's context acknowledged and dropped.
    if (request.getAffectedSopClassUid() !== pending.abstractSyntaxUID) {
      // The walk finishes first (a deflated data set inflates asynchronously), so recordRefusal sees its UIDs; its
      // verdict does not matter here.
      await pending.check?.finish().catch(() => undefined);
      throw new SopClassNotOnContextError('Affected SOP Class UID is not the context\'s abstract syntax');
    }
    if (pending.use === 'ignore') return 'ignored';
    if (pending.refused) throw new OutOfDiskError('free disk below DISK_MIN_FREE_MB');
    const header = await (pending.check as DatasetCheck).finish();
    const affectedClass = request.getAffectedSopClassUid();
    const affectedInstance = request.getAffectedSopInstanceUid();
    // Missing identifiers are a malformed data set (C000), told apart from identifiers that differ (A900).
    if (!header.SOPClassUID) throw new MalformedDatasetError('SOPClassUID (0008,0016) missing');
    if (!header.SOPInstanceUID) throw new MalformedDatasetError('SOPInstanceUID (0008,0018) missing');
    if (header.SOPClassUID !== affectedClass) throw new DatasetMismatchError('SOPClassUID differs from the affected SOP Class UID');
    if (header.SOPInstanceUID !== affectedInstance) throw new DatasetMismatchError('SOPInstanceUID differs from the affected SOP Instance UID');
    let storageKey: string;
    try {
      storageKey = instanceStorageKey(
        assertUid(header.StudyInstanceUID ?? '', 'StudyInstanceUID'),
        assertUid(header.SeriesInstanceUID ?? '', 'SeriesInstanceUID'),
        assertUid(header.SOPInstanceUID ?? '', 'SOPInstanceUID'),
      );
    } catch (err) {
      throw new MalformedDatasetError((err as Error).message);
    }
    checkImage(header, pending.transferSyntaxUID, affectedClass);
    const StudyInstanceUID = header.StudyInstanceUID as string;
    const SOPInstanceUID = header.SOPInstanceUID as string;
    const assembler = this.deps.assembler;
    // A duplicate has its file in the store already: a local stat decides the common case without a Redis round
    // trip, and Redis (the record of what was acknowledged) confirms the rare one.
    if (this.deps.store.isStored(storageKey) && (await assembler.isRecorded(StudyInstanceUID, SOPInstanceUID))) {
      await spool.removeTemp();
      // Make sure a job still exists if an earlier attempt recorded the instance but failed to schedule.
      if (await assembler.isPending(StudyInstanceUID)) await assembler.schedule(StudyInstanceUID, this.traceId, 'duplicate');
      return 'duplicate';
    }
    const store = this.deps.store;
    await store.prepare(spool, storageKey);
    await store.place(spool, storageKey);
    // The file is fsynced and named; only its directory entry is not yet durable. The arrival record goes to Redis
    // during that fsync instead of after it, and Success still waits for both. A crash in between can leave a record
    // without its file: the duplicate check above looks at the file first, so a resend is stored again (and, with
    // fileWritten, scored), and nothing that reads the record needs the file to exist (the worker reads the folder).
    const [synced, recorded] = await Promise.allSettled([
      store.syncPlaced(spool, storageKey),
      assembler.recordArrival({
        StudyInstanceUID,
        SOPInstanceUID,
        storageKey,
        bytes: spool.bytes,
        AccessionNumber: header.AccessionNumber,
        fileWritten: true,
      }),
    ]);
    if (synced.status === 'rejected') throw synced.reason;
    if (recorded.status === 'rejected') {
      // Retention is deleting the study: the file just placed is not acknowledged, so it does not stay either.
      if (recorded.reason instanceof StudyPurgingError) await store.remove(storageKey);
      throw recorded.reason;
    }
    this.studies.add(StudyInstanceUID);
    // Not awaited: the pending set just recorded makes the schedule survive a crash (see scheduleInBackground).
    assembler.scheduleInBackground(StudyInstanceUID, this.traceId);
    // An earlier copy was recorded (by another association just now, or before a crash that lost its file).
    if (!recorded.value) return 'duplicate';
    this.log.debug({ StudyInstanceUID, SeriesInstanceUID: header.SeriesInstanceUID, SOPInstanceUID, bytes: spool.bytes }, 'instance stored');
    return 'stored';
  }

  override associationReleaseRequested(): void {
    const release = async () => {
      // Every response goes out before the release response (PS3.8 7.2).
      await Promise.allSettled([...this.inFlight]);
      this.sendAssociationReleaseResponse();
      this.log.info({ callingAeTitle: this.callingAeTitle, ...this.counts, studies: this.studies.size }, 'association released');
      if (this.deps.settings.completeOnRelease) {
        for (const uid of this.studies) {
          await this.deps.assembler.settled(uid);
          await this.deps.assembler.schedule(uid, this.traceId, 'release', 0).catch((err: Error) => {
            this.log.error({ StudyInstanceUID: uid, err: err.message }, 'could not complete study on release; it completes after the quiet period');
          });
        }
      }
    };
    this.track(release());
  }

  override abort(source: number, reason: number): void {
    this.log.warn({ callingAeTitle: this.callingAeTitle, source, reason, ...this.counts }, 'association aborted by peer');
    void this.currentSpool?.abort();
    this.socket.destroy();
  }

  /** Ends the association from our side (shutdown timeout): A-ABORT, then close. */
  abortFromProvider(): void {
    if (!this.socket.destroyed) {
      this.sendAbort(2, 0);
      this.socket.destroy();
    }
  }

  /**
   * dcmjs-dimse's P-DATA-TF handler, taken over for the PDUs every instance starts with: one PDV holding a whole
   * C-STORE-RQ or C-ECHO-RQ command set, with no command or data set of the library's in progress. The command is
   * read by readCommandSet() into the same request object the library would build (dcmjs-dimse's own class, its
   * command data set naturalised the same way) and the library's state is left exactly as its handler leaves it.
   * Fragmented commands, data set PDVs and anything readCommandSet() does not know go to the library unchanged.
   */
  _processPDataTf(pdu: PDataTf): Promise<void> {
    const pdvs = pdu.getPdvs();
    // A PDV on a presentation context we did not accept is a protocol error (PS3.8 9.3.5): abort, never answer.
    for (const p of pdvs) {
      if (!this.contextUse.has(p.getPresentationContextId())) {
        this.protocolAbort('unaccepted-context', AbortReason.UnexpectedPduParameter, `PDV on presentation context ${p.getPresentationContextId()}, not accepted`);
        return Promise.resolve();
      }
    }
    const net = this as unknown as NetworkInternals;
    // PS3.7 9.3 / PS3.8 9.3.5: a data set follows its command, and a command follows the previous one's data set.
    // Anything else would be handed to dcmjs as a command or a data set it is not (and its warnings print values).
    // One P-DATA-TF may carry a command and the start of its data set (dcm4che packs them): the state advances PDV
    // by PDV as the library's own loop does.
    let awaitingData = net.dimse !== undefined;
    // The last whole command PDV of this PDU as readCommandSet reads it (undefined: not one it knows).
    let command: ReturnType<typeof readCommandSet>;
    for (const p of pdvs) {
      const order = p.isCommand()
        ? (awaitingData || net.dimseStoreStream !== undefined ? 'a command PDV while the previous command\'s data set is awaited' : null)
        : (!awaitingData ? 'a data set PDV with no command before it' : null);
      if (order) {
        this.protocolAbort('dimse-violation', AbortReason.UnexpectedPduParameter, order);
        return Promise.resolve();
      }
      // PS3.8 9.3.5 / PS3.7 9.3: every fragment of a message, command and data set, is on one presentation context.
      // A data set fragment follows its command (checked above), so it must be on the last command PDV's context; a
      // command fragment on that of the command fragments before it. The spool would take a switched fragment into
      // the instance under the first context's transfer syntax and SOP class.
      const contextId = p.getPresentationContextId();
      if ((p.isCommand() ? this.commandOpen : true) && contextId !== this.messageContextId) {
        this.protocolAbort('dimse-violation', AbortReason.UnexpectedPduParameter, `${p.isCommand() ? 'command' : 'data set'} fragment on presentation context ${contextId} inside a message on context ${this.messageContextId}`);
        return Promise.resolve();
      }
      if (p.isCommand()) {
        this.messageContextId = contextId;
        this.commandOpen = !p.isLastFragment();
      }
      if (p.isCommand() && p.isLastFragment()) {
        // A command the fast reader does not know (fragmented, C-FIND, Move Originator): the library decides.
        command = readCommandSet(p.getValue());
        awaitingData = command === undefined || command.CommandDataSetType !== NO_DATA_SET;
      } else if (!p.isCommand() && p.isLastFragment()) {
        awaitingData = false;
      }
    }
    try {
      if (this.storingData(pdvs)) return Promise.resolve();
    } catch (err) {
      // As dcmjs-dimse's handler does with an error reading a DIMSE message: the association's error path.
      (this as unknown as NodeJS.EventEmitter).emit('networkError', err);
      return Promise.resolve();
    }
    const pdv = pdvs.length === 1 ? pdvs[0] : undefined;
    if (pdv && pdv.isCommand() && pdv.isLastFragment() && net.dimse === undefined && net.dimseStream === undefined) {
      // This PDU's one PDV, a whole command: read in the loop above.
      const elements = command;
      if (elements === undefined && !isCommandSet(pdv.getValue())) {
        this.protocolAbort('dimse-violation', AbortReason.InvalidPduParameterValue, `command set of ${pdv.getValue().byteLength} bytes could not be read`);
        return Promise.resolve();
      }
      if (elements?.CommandField === CommandField.CStoreRequest && this.contextUse.get(pdv.getPresentationContextId()) === 'verification') {
        this.protocolAbort('dimse-violation', AbortReason.UnexpectedPduParameter, `C-STORE-RQ on presentation context ${pdv.getPresentationContextId()}, accepted for Verification`);
        return Promise.resolve();
      }
      const hasDataSet = elements !== undefined && elements.CommandDataSetType !== NO_DATA_SET;
      const context = net.association?.getPresentationContext(pdv.getPresentationContextId());
      if (context && elements?.CommandField === CommandField.CStoreRequest && hasDataSet) {
        const request = new dimseRequestClasses.CStoreRequest(undefined as unknown as DimseDataset);
        request.setCommandDataset(new DimseDataset(elements));
        net.dimse = request;
        net.dimseStoreStream = undefined;
        return Promise.resolve();
      }
      if (context && elements?.CommandField === CommandField.CEchoRequest && !hasDataSet) {
        const request = new dimseRequestClasses.CEchoRequest();
        request.setCommandDataset(new DimseDataset(elements));
        net._performDimse(context, request);
        return Promise.resolve();
      }
    }
    return libraryProcessPDataTf.call(this, pdu);
  }

  /**
   * The data set PDVs of the C-STORE-RQ in progress, written to its spool piece by piece (views of the socket's
   * chunks) as dcmjs-dimse's handler would write them whole, and its state advanced the same way: spool created at
   * the first fragment, ended at the last, then the request performed. False (nothing done) for anything else.
   */
  private storingData(pdvs: Pdv[]): boolean {
    const net = this as unknown as NetworkInternals;
    const request = net.dimse as CStoreRequest | undefined;
    if (!request || !(request instanceof dimseRequestClasses.CStoreRequest)) return false;
    for (const p of pdvs) if (p.isCommand()) return false;
    for (const p of pdvs) {
      const context = net.association.getPresentationContext(p.getPresentationContextId());
      if (!net.dimseStoreStream) {
        net.dimseStream = undefined;
        net.dimseStoreStream = this.createStoreWritableStream(context, request);
      }
      const spool = net.dimseStoreStream;
      for (const piece of p.getValues()) spool.write(piece);
      if (p.isLastFragment()) {
        spool.end();
        this.createDatasetFromStoreWritableStream(spool, context, (dataset) => {
          request.setDataset(dataset);
          net._performDimse(context, request);
          net.dimseStream = undefined;
          net.dimseStoreStream = undefined;
          net.dimse = undefined;
        });
      }
    }
    return true;
  }

  /**
   * dcmjs-dimse's internal send hook, overridden for the two responses we send per instance: encoded directly
   * (response-pdu.ts) instead of through dcmjs. Anything else goes the library's way.
   */
  _sendDimse(dimse: { context: PresentationContext; command: unknown }): void {
    const command = dimse.command;
    if (command instanceof CStoreResponse || command instanceof CEchoResponse) {
      const isStore = command instanceof CStoreResponse;
      const pdu = encodeResponsePdu({
        presentationContextId: dimse.context.getPresentationContextId(),
        CommandField: isStore ? 0x8001 : 0x8030,
        MessageIDBeingRespondedTo: command.getMessageIdBeingRespondedTo(),
        Status: command.getStatus(),
        AffectedSOPClassUID: command.getAffectedSopClassUid() ?? '',
        AffectedSOPInstanceUID: isStore ? (command.getAffectedSopInstanceUid() ?? '') : undefined,
        ErrorComment: command.getErrorComment() || undefined,
      }, this.peerMaxPduLength);
      if (!this.socket.destroyed) this.socket.write(pdu);
      return;
    }
    librarySendDimse.call(this, dimse);
  }

  private track(op: Promise<unknown>): void {
    const guarded = op.catch((err: Error) => this.log.error({ err: err.message }, 'unexpected association error'));
    this.inFlight.add(guarded);
    this.deps.server.inFlight.add(guarded);
    void guarded.finally(() => {
      this.inFlight.delete(guarded);
      this.deps.server.inFlight.delete(guarded);
    });
  }

  private onClose(): void {
    clearTimeout(this.artim);
    // A fragment stream cut off by the peer never reaches cStoreRequest: remove its temp file.
    void this.currentSpool?.abort();
    this.currentSpool = undefined;
    if (this.accepted) {
      this.accepted = false;
      this.deps.server.activeAssociations -= 1;
      this.deps.metrics.activeAssociations.set(this.deps.server.activeAssociations);
    }
  }
}

type dimseResponse = InstanceType<typeof CStoreResponse> | InstanceType<typeof CEchoResponse>;

const librarySendDimse = (Scp.prototype as unknown as { _sendDimse: (dimse: unknown) => void })._sendDimse;

export interface DicomServerOptions {
  host: string;
  port: number;
  scp: Omit<ScpDeps, 'server'>;
  /** DICOM over TLS on this port (the association then runs on the TLS socket, unchanged). */
  tls?: tls.TlsOptions;
}

/**
 * The TCP side: our own net.Server, or tls.Server for DICOM TLS (dcmjs-dimse's binds every interface and hides the
 * port), no-delay sockets. Each server counts its own associations against DICOM_MAX_ASSOCIATIONS and admits
 * connections through its ConnectionGuard (per-peer and total limits), so nothing is dropped silently.
 */
export class DicomServer implements AssociationBook {
  activeAssociations = 0;
  shuttingDown = false;
  readonly inFlight = new Set<Promise<unknown>>();
  readonly guard: ConnectionGuard<RefusalReason>;
  private readonly connections = new Set<{ socket: net.Socket; scp: StoreScp }>();
  private readonly server: net.Server;

  constructor(private readonly options: DicomServerOptions) {
    const settings = options.scp.settings;
    this.guard = new ConnectionGuard<RefusalReason>({
      maxConnections: settings.maxConnections,
      maxConnectionsPerPeer: settings.maxConnectionsPerPeer,
      refused: options.scp.metrics.refusedConnections,
      log: options.scp.log,
    });
    Implementation.setImplementationClassUid(IMPLEMENTATION_CLASS_UID);
    Implementation.setImplementationVersion(IMPLEMENTATION_VERSION_NAME);
    // A TLS peer must finish its handshake within the ARTIM time too (Node's default is two minutes).
    this.server = options.tls
      ? tls.createServer({ ...options.tls, handshakeTimeout: settings.artimTimeoutMs }, (socket) => this.onConnection(socket))
      : net.createServer((socket) => this.onConnection(socket));
    // Admission on the raw TCP connection, before any TLS handshake: first among the 'connection' listeners.
    this.server.prependListener('connection', (raw: net.Socket) => this.admit(raw));
    // A failed handshake (no or untrusted client certificate, plain DICOM on the TLS port) never reaches the SCP.
    this.server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      options.scp.metrics.associations.inc({ result: 'rejected', reason: 'tls-handshake' });
      options.scp.log.warn({ peer: socket.remoteAddress, err: err.message }, 'DICOM TLS handshake failed');
      // Node leaves the socket open after a handshake timeout: close it, as after any failed handshake.
      socket.destroy();
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Takes or refuses a slot for a new TCP connection (ConnectionGuard); the slot is given back when it closes. */
  private admit(raw: net.Socket): void {
    raw.on('error', () => undefined);
    const { peer, refused } = this.shuttingDown ? { peer: normaliseAddress(raw.remoteAddress ?? 'unknown'), refused: 'shutting-down' as const } : this.guard.admit(raw.remoteAddress);
    if (refused) {
      this.guard.refused(peer, refused);
      raw.destroy();
      return;
    }
    raw.once('close', () => this.guard.release(peer));
  }

  /** A connection admitted (and, on the TLS port, past its handshake) gets its association. */
  private onConnection(socket: net.Socket): void {
    if (socket.destroyed) return;
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    const scp = new StoreScp(socket, { ...this.options.scp, server: this }, normaliseAddress(socket.remoteAddress ?? 'unknown'));
    const entry = { socket, scp };
    this.connections.add(entry);
    socket.once('close', () => this.connections.delete(entry));
  }

  /** Stops accepting, lets open associations finish for up to `timeoutMs`, then aborts what is left. */
  async close(timeoutMs: number): Promise<void> {
    this.shuttingDown = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const deadline = Date.now() + timeoutMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const { scp } of this.connections) scp.abortFromProvider();
    await Promise.allSettled([...this.inFlight]);
    await closed;
    this.guard.flush();
  }
}
