import { deadLetterReason, OUTBOUND_DEAD_LETTER_REASONS } from './metrics';

describe('deadLetterReason', () => {
  it('counts a retryable last failure as retries-exhausted, whatever its code', () => {
    for (const reason of ['ack-timeout', 'ack-AE', 'http-503', 'dimse-0xA700', 'error']) {
      expect(deadLetterReason('hl7', reason, false)).toBe('retries-exhausted');
    }
  });

  it('keeps the permanent codes an administrator acts on and collapses the open families to a class', () => {
    expect(deadLetterReason('hl7', 'ack-AR', true)).toBe('ack-AR');
    expect(deadLetterReason('hl7', 'result-unreadable', true)).toBe('result-unreadable');
    expect(deadLetterReason('sr', 'dimse-0x0122', true)).toBe('dimse-0x0122');
    expect(deadLetterReason('sr', 'dimse-0xA900', true)).toBe('dimse-0xA9xx');
    expect(deadLetterReason('sr', 'dimse-0xC123', true)).toBe('dimse-0xCxxx');
    expect(deadLetterReason('sr', 'dimse-0x0111', true)).toBe('dimse-refused');
    expect(deadLetterReason('sr', 'association-rejected', true)).toBe('association-rejected');
    expect(deadLetterReason('webhook', 'http-404', true)).toBe('http-4xx');
    expect(deadLetterReason('webhook', 'http-301', true)).toBe('http-3xx');
  });

  it('never leaves the closed list (each of its values is exported at 0 from the start)', () => {
    expect(deadLetterReason('webhook', 'ack-AR', true)).toBe('permanent-other');
    expect(deadLetterReason('hl7', 'something-new', true)).toBe('permanent-other');
    expect(deadLetterReason('hl7', 'retries-exhausted', true)).toBe('permanent-other');
    for (const adapter of ['hl7', 'sr', 'webhook'] as const) {
      for (const reason of ['x', 'http-599', 'dimse-0xFFFF', 'dimse-0x0122', 'ack-CR']) {
        expect(OUTBOUND_DEAD_LETTER_REASONS[adapter]).toContain(deadLetterReason(adapter, reason, true));
      }
    }
  });
});
