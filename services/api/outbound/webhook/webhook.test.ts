import { createHmac } from 'node:crypto';
import { buildWebhookPayload, postWebhook, signWebhook, verifyWebhook } from './webhook';
import { PermanentDeliveryError, RetryableDeliveryError } from '../errors';
import { makeResult } from '../../../../test/outbound/helpers/fixtures';

describe('webhook signature', () => {
  const secret = 'sixteen-chars-at-least';
  const body = '{"event":"study.scored"}';

  it('is sha256= HMAC of "<timestamp>.<body>"', () => {
    const expected = createHmac('sha256', secret).update(`1764300000.${body}`).digest('hex');
    expect(signWebhook(secret, '1764300000', body)).toBe(`sha256=${expected}`);
  });

  it('verifies a fresh signature and refuses a changed body, a wrong secret or a stale timestamp', () => {
    const timestamp = '1764300000';
    const signature = signWebhook(secret, timestamp, body);
    const opts = { nowSeconds: 1764300010 };
    expect(verifyWebhook(secret, { signature, timestamp }, body, opts)).toBe(true);
    expect(verifyWebhook(secret, { signature, timestamp }, `${body} `, opts)).toBe(false);
    expect(verifyWebhook('another-secret-value', { signature, timestamp }, body, opts)).toBe(false);
    expect(verifyWebhook(secret, { signature, timestamp }, body, { nowSeconds: 1764300000 + 301 })).toBe(false);
    expect(verifyWebhook(secret, { timestamp }, body, opts)).toBe(false);
  });
});

describe('webhook payload', () => {
  it('says the rule, each flagged finding\'s threshold and whether it set the priority, and the version it corrects', () => {
    const first = buildWebhookPayload(makeResult('STAT', { resultVersion: 1, provisional: { waitingFor: ['DWI'], until: Date.UTC(2026, 0, 1) } }), 'd1');
    expect(first).toMatchObject({ decision: 'flagged: P >= threshold', resultVersion: 1, corrects: null, provisional: { waitingFor: ['DWI'], until: '2026-01-01T00:00:00.000Z' } });
    expect(first.flaggedFindings).toEqual([
      expect.objectContaining({ queryId: 'acute_infarct', probability: 0.93, threshold: 0.5, triggered: true, held: false, statement: 'flagged: P 0.930 >= threshold 0.500; sets the STAT priority' }),
    ]);
    const second = buildWebhookPayload(makeResult('STAT', { resultVersion: 2 }), 'd2', 1);
    expect(second).toMatchObject({ resultVersion: 2, corrects: 1, provisional: null, judgedWith: { querySetVersion: 'test' } });
  });
});

describe('webhook TLS failures', () => {
  const target = { url: new URL('https://pager.example/hook'), secret: 'sixteen-chars-at-least', timeoutMs: 1000, minPriority: 'URGENT' as const };
  // The error Node's fetch throws: a TypeError whose cause carries the socket's or undici's code.
  const failing = (code: string): typeof fetch => async () => {
    throw new TypeError('fetch failed', { cause: Object.assign(new Error('tls'), { code }) });
  };
  const payload = buildWebhookPayload(makeResult('STAT'), 'd1');

  it('takes a certificate that fails verification as permanent, the code in the message', async () => {
    for (const code of ['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID']) {
      const err = await postWebhook(target, payload, { fetch: failing(code) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentDeliveryError);
      expect(err).toMatchObject({ reason: 'tls-certificate', message: expect.stringContaining(code) });
    }
  });

  it('keeps resets, refusals and timeouts during the handshake retryable', async () => {
    for (const code of ['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']) {
      const err = await postWebhook(target, payload, { fetch: failing(code) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RetryableDeliveryError);
      expect(err).toMatchObject({ reason: 'network' });
    }
  });
});
