// Who may associate and what they may send: the called AE title, the calling-AE allow-list (optionally pinned to a
// peer address), the association limit, and per presentation context the SOP class and transfer syntax we accept.
// Pure functions over plain values, so every rule is unit-tested without a socket. Defaults fail closed: an empty
// allow-list rejects every calling AE.
import {
  MR_STORAGE_CLASSES,
  SopClass,
  STORAGE_TRANSFER_SYNTAXES,
  VERIFICATION_TRANSFER_SYNTAXES,
} from './dicom-uids';
import { normaliseAddress } from '../../shared/connection-guard';
import { isUid } from '../../shared/studies';

/** A-ASSOCIATE-RJ fields (PS3.8 9.3.4). */
export const RejectResult = { Permanent: 1, Transient: 2 } as const;
export const RejectSource = { ServiceUser: 1, ServiceProviderAcse: 2, ServiceProviderPresentation: 3 } as const;
export const RejectReason = {
  /** source 1 */
  NoReasonGiven: 1,
  ApplicationContextNotSupported: 2,
  CallingAeNotRecognized: 3,
  CalledAeNotRecognized: 7,
  /** source 2 */
  ProtocolVersionNotSupported: 2,
  /** source 3 */
  TemporaryCongestion: 1,
  LocalLimitExceeded: 2,
} as const;

/** Presentation context results (PS3.8 9.3.3.2). */
export const ContextResult = {
  Accept: 0,
  RejectUser: 1,
  RejectNoReason: 2,
  RejectAbstractSyntaxNotSupported: 3,
  RejectTransferSyntaxesNotSupported: 4,
} as const;

export type RejectLabel =
  | 'protocol-version-not-supported'
  | 'application-context-not-supported'
  | 'max-length-too-small'
  | 'called-ae-not-recognised'
  | 'calling-ae-not-recognised'
  | 'calling-ae-not-in-certificate'
  | 'local-limit-exceeded'
  | 'shutting-down';

export type AssociationDecision =
  | { accept: true }
  | { accept: false; result: number; source: number; reason: number; label: RejectLabel };

export interface AllowedPeer {
  aeTitle: string;
  /** Peer IP address the AE must connect from; undefined means any address. */
  host?: string;
}

export interface AllowList {
  anyone: boolean;
  peers: AllowedPeer[];
}

/**
 * Parses DICOM_ALLOWED_CALLING_AES: comma-separated "AE" or "AE@address" entries, "*" for anybody, empty for
 * nobody. Addresses are IP literals compared with the socket's peer address (no DNS at association time).
 */
export function parseAllowList(raw: string): AllowList {
  const entries = raw.split(',').map((e) => e.trim()).filter((e) => e.length > 0);
  const peers: AllowedPeer[] = [];
  let anyone = false;
  for (const entry of entries) {
    if (entry === '*') {
      anyone = true;
      continue;
    }
    const at = entry.lastIndexOf('@');
    const aeTitle = (at >= 0 ? entry.slice(0, at) : entry).trim();
    const host = at >= 0 ? normaliseAddress(entry.slice(at + 1).trim()) : undefined;
    if (!/^[ -~]{1,16}$/.test(aeTitle) || aeTitle.includes('\\')) {
      throw new Error(`DICOM_ALLOWED_CALLING_AES: "${entry}" is not a valid AE title (1-16 printable characters)`);
    }
    if (host !== undefined && host.length === 0) throw new Error(`DICOM_ALLOWED_CALLING_AES: "${entry}" has an empty address`);
    peers.push({ aeTitle, host });
  }
  return { anyone, peers };
}

/** "::ffff:10.0.0.5" (an IPv4 peer on a dual-stack socket) and "10.0.0.5" are the same peer. */
export function isCallingAeAllowed(list: AllowList, callingAeTitle: string, remoteAddress: string | undefined): boolean {
  if (list.anyone) return true;
  const address = remoteAddress === undefined ? undefined : normaliseAddress(remoteAddress);
  return list.peers.some((p) => p.aeTitle === callingAeTitle && (p.host === undefined || p.host === address));
}

export interface AssociationPolicy {
  calledAeTitle: string;
  allowList: AllowList;
  maxAssociations: number;
  /** On TLS connections the calling AE title must equal the client certificate's common name (DICOM_TLS_AE_FROM_CERT). */
  aeFromCertificate?: boolean;
}

export interface AssociationRequestFacts {
  /** The A-ASSOCIATE-RQ's Protocol Version field; bit 0 is DICOM UL version 1, the only one there is. */
  protocolVersion: number;
  applicationContextName: string;
  calledAeTitle: string;
  callingAeTitle: string;
  remoteAddress: string | undefined;
  /** On a TLS connection: the verified client certificate's common name, or null without one. Absent: plain TCP. */
  certificateCommonName?: string | null;
  /** The requestor's Maximum Length Received (PS3.8 D.1: the largest P-DATA-TF variable field it takes; 0: no limit). */
  maxLengthReceived: number;
  /** Associations already accepted and still open. */
  activeAssociations: number;
  shuttingDown: boolean;
}

/**
 * The smallest non-zero Maximum Length Received we can honour: a PDV item's header (4-byte length, context ID,
 * message control header) is 6 bytes, so a P-DATA-TF no longer than 6 carries no byte of a message.
 */
export const MIN_MAX_LENGTH_RECEIVED = 7;

/** The DICOM Application Context Name (PS3.7 A.2.1). */
export const DICOM_APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

/** AE titles are compared without their space padding (PS3.5 6.2: leading and trailing spaces are insignificant). */
export function decideAssociation(policy: AssociationPolicy, facts: AssociationRequestFacts): AssociationDecision {
  // PS3.8 9.3.2: a receiver of version 1 tests only bit 0 of the Protocol Version.
  if ((facts.protocolVersion & 1) === 0) {
    return reject(RejectResult.Permanent, RejectSource.ServiceProviderAcse, RejectReason.ProtocolVersionNotSupported, 'protocol-version-not-supported');
  }
  // PS3.7 A.2.1: the DICOM Application Context is the only one defined (DCMTK's storescp refuses others the same way).
  if (facts.applicationContextName !== DICOM_APPLICATION_CONTEXT) {
    return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.ApplicationContextNotSupported, 'application-context-not-supported');
  }
  // PS3.8 D.1: 0 means no limit, and it sets no minimum; but under 7 no response could be sent within it (DCMTK
  // accepts such an association and then fails every send, "receiver's max PDU size ... is illegal"). Refused up front
  // instead, permanently: nothing to retry until the peer is configured otherwise.
  if (facts.maxLengthReceived > 0 && facts.maxLengthReceived < MIN_MAX_LENGTH_RECEIVED) {
    return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.NoReasonGiven, 'max-length-too-small');
  }
  if (facts.calledAeTitle.trim() !== policy.calledAeTitle.trim()) {
    return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized, 'called-ae-not-recognised');
  }
  if (!isCallingAeAllowed(policy.allowList, facts.callingAeTitle.trim(), facts.remoteAddress)) {
    return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized, 'calling-ae-not-recognised');
  }
  if (policy.aeFromCertificate && facts.certificateCommonName !== undefined && facts.certificateCommonName?.trim() !== facts.callingAeTitle.trim()) {
    return reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized, 'calling-ae-not-in-certificate');
  }
  if (facts.shuttingDown) {
    return reject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReason.TemporaryCongestion, 'shutting-down');
  }
  if (facts.activeAssociations >= policy.maxAssociations) {
    return reject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, RejectReason.LocalLimitExceeded, 'local-limit-exceeded');
  }
  return { accept: true };
}

function reject(result: number, source: number, reason: number, label: RejectLabel): AssociationDecision {
  return { accept: false, result, source, reason, label };
}

/**
 * Storage classes other than MR (an SR or a CT of the same study, a vendor's private class): "accept-and-ignore" (the default) answers their
 * C-STOREs Success without storing, so a PACS sending a whole study succeeds; "reject" refuses their contexts.
 */
export type OtherStorage = 'reject' | 'accept-and-ignore';

/** What an accepted context's C-STOREs do: store and score, or answer Success and drop (other storage classes). */
export type ContextUse = 'verification' | 'store' | 'ignore';

export type ContextDecision =
  | { result: typeof ContextResult.Accept; transferSyntaxUID: string; use: ContextUse }
  | { result: number };

/** Storage SOP classes live under this root (PS3.4 Annex B, PS3.6 Annex A). */
const STORAGE_ROOT = '1.2.840.10008.5.1.4.1.1.';
/** Every standard UID is under this root; a SOP class outside it is a vendor's private one. */
const DICOM_ROOT = '1.2.840.10008.';

/**
 * A class whose instances a PACS may hold in an MR study beside the images: a standard storage class, or a vendor's
 * private class (Siemens CSA Non-Image, Philips and GE private storage), which a PACS sending the whole study
 * proposes like any other.
 */
function isOtherStorage(abstractSyntaxUID: string): boolean {
  return abstractSyntaxUID.startsWith(STORAGE_ROOT) || (!abstractSyntaxUID.startsWith(DICOM_ROOT) && isUid(abstractSyntaxUID) && abstractSyntaxUID.includes('.'));
}

/**
 * Accepts a presentation context when its abstract syntax is one we serve and one of its proposed transfer syntaxes
 * is one we take; among several, the SCU's own order of preference wins (PS3.8 9.3.2.2).
 */
export function negotiateContext(abstractSyntaxUID: string, proposed: readonly string[], otherStorage: OtherStorage): ContextDecision {
  let use: ContextUse;
  let acceptable: readonly string[];
  if (abstractSyntaxUID === SopClass.Verification) {
    use = 'verification';
    acceptable = VERIFICATION_TRANSFER_SYNTAXES;
  } else if (MR_STORAGE_CLASSES.includes(abstractSyntaxUID)) {
    use = 'store';
    acceptable = STORAGE_TRANSFER_SYNTAXES;
  } else if (otherStorage === 'accept-and-ignore' && isOtherStorage(abstractSyntaxUID)) {
    // Nothing of an ignored instance is read or kept, so any transfer syntax will do: a study with a lossy
    // secondary capture or a big endian SR is still accepted whole.
    if (proposed.length === 0) return { result: ContextResult.RejectTransferSyntaxesNotSupported };
    return { result: ContextResult.Accept, transferSyntaxUID: proposed[0], use: 'ignore' };
  } else {
    return { result: ContextResult.RejectAbstractSyntaxNotSupported };
  }
  const chosen = proposed.find((ts) => acceptable.includes(ts));
  if (chosen === undefined) return { result: ContextResult.RejectTransferSyntaxesNotSupported };
  return { result: ContextResult.Accept, transferSyntaxUID: chosen, use };
}
