// The tests' one polling wait: a real server, process or browser settles in its own time, so a test asks again
// until what it waits for is there, and fails naming it past a deadline.

/** What a probe gives while the thing waited for is not there yet. */
type NotYet = undefined | null | false;

/**
 * Calls `probe` every `everyMs` until it gives a value (anything but undefined, null or false) and returns that
 * value; past `timeoutMs` it throws "timed out after N ms waiting for <what>".
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | NotYet> | T | NotYet, timeoutMs = 30_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
