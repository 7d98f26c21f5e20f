import type { Redis } from 'ioredis';
import { highestVersionBelow } from './versions-below';
import { previousDelivered, srKeys } from './sr/versions';
import { sentBefore, webhookKeys } from './webhook/sent';

/** Only the one command these read: HGETALL of one hash. */
function fakeRedis(hashes: Record<string, Record<string, string>>): Redis {
  return { hgetall: async (key: string) => hashes[key] ?? {} } as unknown as Redis;
}

describe('highestVersionBelow', () => {
  const redis = fakeRedis({ h: { 1: 'a', 3: 'c', 2: 'b', 5: 'e', 'x': 'not a version', '2.5': 'not an integer' } });

  it('takes the highest integer version below the one given, with its value', async () => {
    expect(await highestVersionBelow(redis, 'h', 5)).toEqual({ version: 3, value: 'c' });
    expect(await highestVersionBelow(redis, 'h', 6)).toEqual({ version: 5, value: 'e' });
    expect(await highestVersionBelow(redis, 'h', 3)).toEqual({ version: 2, value: 'b' });
  });

  it('is undefined with nothing below it, or no hash', async () => {
    expect(await highestVersionBelow(redis, 'h', 1)).toBeUndefined();
    expect(await highestVersionBelow(redis, 'none', 9)).toBeUndefined();
  });

  it('leaves out values the check refuses and takes the next lower one', async () => {
    const notC = (value: string): value is string => value !== 'c';
    expect(await highestVersionBelow(redis, 'h', 5, notC)).toEqual({ version: 2, value: 'b' });
  });
});

describe('the records that use it', () => {
  const uid = '1.2.3.4';

  it('sentBefore: the priority the receiver was sent; a version holding no priority is left out', async () => {
    const redis = fakeRedis({ [webhookKeys.sent(uid)]: { 1: 'STAT', 2: 'ROUTINE', 3: 'garbled' } });
    expect(await sentBefore(redis, uid, 4)).toEqual({ version: 2, priority: 'ROUTINE' });
    expect(await sentBefore(redis, uid, 2)).toEqual({ version: 1, priority: 'STAT' });
    expect(await sentBefore(redis, uid, 1)).toBeUndefined();
  });

  it('previousDelivered: the SR stored for the version below', async () => {
    const redis = fakeRedis({ [srKeys.delivered(uid)]: { 1: '2.25.1', 2: '2.25.2' } });
    expect(await previousDelivered(redis, uid, 3)).toEqual({ version: 2, SOPInstanceUID: '2.25.2' });
    expect(await previousDelivered(redis, uid, 1)).toBeUndefined();
  });
});
