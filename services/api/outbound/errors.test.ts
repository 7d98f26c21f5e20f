import { asDeliveryError, PermanentDeliveryError, reasonOf, RetryableDeliveryError, safeMessage } from './errors';

describe('delivery errors', () => {
  it('keep our own messages and reasons', () => {
    const e = new PermanentDeliveryError('RIS answered AR', 'ack-AR');
    expect(safeMessage(e)).toBe('RIS answered AR');
    expect(asDeliveryError(e)).toBe(e);
    expect(reasonOf(e)).toBe('ack-AR');
  });

  it('reduce a library error to its name and code, so quoted data never reaches logs or Redis', () => {
    const lib = Object.assign(new TypeError('invalid value "Doe^John" for PN'), { code: 'EBADVAL' });
    expect(safeMessage(lib)).toBe('unexpected TypeError (EBADVAL)');
    const wrapped = asDeliveryError(lib);
    expect(wrapped).toBeInstanceOf(RetryableDeliveryError);
    expect(wrapped.message).not.toContain('Doe');
    expect(reasonOf(wrapped)).toBe('error');
  });
});
