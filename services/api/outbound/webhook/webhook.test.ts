import { createHmac } from 'node:crypto';
import { signWebhook, verifyWebhook } from './webhook';

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
