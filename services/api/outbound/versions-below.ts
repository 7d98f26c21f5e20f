// The per-study records of which result versions a peer got, each a Redis hash of result version -> what was
// delivered for it (sr/versions.ts: the SR stored; webhook/sent.ts: the priority the receiver was sent). A later
// version names the highest of them below it: the SR its Predecessor Documents Sequence names, the version a
// webhook corrects.
import type { Redis } from 'ioredis';

/**
 * The highest version below `version` in the hash at `key`, with its value, if any. Fields that are not integers
 * are left out, and so are values `valid` refuses: the next lower version with a value it accepts is taken then.
 */
export async function highestVersionBelow<T extends string = string>(
  redis: Redis,
  key: string,
  version: number,
  valid: (value: string) => value is T = (_value): _value is T => true,
): Promise<{ version: number; value: T } | undefined> {
  const all = await redis.hgetall(key);
  let best: { version: number; value: T } | undefined;
  for (const [field, value] of Object.entries(all)) {
    const n = Number(field);
    if (Number.isInteger(n) && n < version && (!best || n > best.version) && valid(value)) best = { version: n, value };
  }
  return best;
}
