import { PermanentDeliveryError, RetryableDeliveryError } from '../errors';
import { classifyStoreStatus } from './cstore';

describe('classifyStoreStatus', () => {
  it('accepts success and warnings', () => {
    expect(classifyStoreStatus(0x0000)).toEqual({ status: 0, warning: false });
    expect(classifyStoreStatus(0xb000)).toEqual({ status: 0xb000, warning: true });
  });

  it('retries out-of-resources and processing failures, refuses the rest for good', () => {
    expect(classifyStoreStatus(0xa700)).toBeInstanceOf(RetryableDeliveryError);
    expect(classifyStoreStatus(0x0110)).toBeInstanceOf(RetryableDeliveryError);
    const refused = classifyStoreStatus(0xa900);
    expect(refused).toBeInstanceOf(PermanentDeliveryError);
    expect((refused as PermanentDeliveryError).reason).toBe('dimse-0xA900');
    expect(classifyStoreStatus(0x0122)).toBeInstanceOf(PermanentDeliveryError);
  });
});
