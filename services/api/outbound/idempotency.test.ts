import { deliveryKey, derivedUid } from './idempotency';

describe('deliveryKey', () => {
  it('is stable per (study, version) and differs across versions', () => {
    const a = deliveryKey('1.2.3.4', 1764300000000);
    expect(deliveryKey('1.2.3.4', 1764300000000)).toEqual(a);
    const b = deliveryKey('1.2.3.4', 1764300000001);
    expect(b.jobId).not.toBe(a.jobId);
    expect(b.hl7ControlId).not.toBe(a.hl7ControlId);
  });

  it('fits MSH-10 (ST, 20) and BullMQ custom ids (no ":", not an integer)', () => {
    const k = deliveryKey('1.2.840.113619.2.55.3.604688119.969.1268071029.320', 1764300000000);
    expect(k.hl7ControlId).toMatch(/^[0-9A-F]{20}$/);
    expect(k.jobId).not.toContain(':');
    expect(Number.isInteger(Number(k.jobId))).toBe(false);
  });

  it('refuses what is not a UID', () => {
    expect(() => deliveryKey('../etc', 1)).toThrow(/not a DICOM UID/);
  });
});

describe('derivedUid', () => {
  it('is deterministic, a valid 2.25 UID within 64 characters', () => {
    const uid = derivedUid('sr', '1.2.3');
    expect(derivedUid('sr', '1.2.3')).toBe(uid);
    expect(derivedUid('sr', '1.2.4')).not.toBe(uid);
    expect(uid).toMatch(/^2\.25\.[1-9][0-9]*$/);
    expect(uid.length).toBeLessThanOrEqual(64);
  });
});
