import { EventEmitter } from 'node:events';
import type { Worker } from 'bullmq';
import { handleWorkerErrors } from './write-refusals';

/** What handleWorkerErrors uses of a BullMQ worker: its events, pause and resume. */
function fakeWorker() {
  const w = Object.assign(new EventEmitter(), { paused: 0, resumed: 0 }) as EventEmitter & { paused: number; resumed: number; pause(): Promise<void>; resume(): Promise<void> };
  w.pause = async () => void (w.paused += 1);
  w.resume = async () => void (w.resumed += 1);
  return w;
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

test('a refused write pauses the worker once per pause, logs once, and resumes after the pause', () => {
  const w = fakeWorker();
  const seen: [string, string | undefined][] = [];
  handleWorkerErrors(w as unknown as Worker, (err, refusal) => void seen.push([err.message, refusal]), 1000);
  for (let i = 0; i < 1000; i++) w.emit('error', new Error('MISCONF Errors writing to the AOF file: No space left on device'));
  w.emit('error', new Error('OOM command not allowed when used memory > maxmemory'));
  expect(seen).toEqual([['MISCONF Errors writing to the AOF file: No space left on device', 'Redis cannot write to its disk (MISCONF) and refuses writes']]);
  expect([w.paused, w.resumed]).toEqual([1, 0]);
  jest.advanceTimersByTime(1000);
  expect(w.resumed).toBe(1);
  w.emit('error', new Error('READONLY You can\'t write against a read only replica.'));
  expect(seen).toHaveLength(2);
  expect(w.paused).toBe(2);
  // Any other error is passed on every time and pauses nothing.
  w.emit('error', new Error('boom'));
  w.emit('error', new Error('boom'));
  expect(seen.slice(2)).toEqual([['boom', undefined], ['boom', undefined]]);
  expect(w.paused).toBe(2);
});

test('a worker closing during a pause is not resumed', () => {
  const w = fakeWorker();
  handleWorkerErrors(w as unknown as Worker, () => undefined, 1000);
  w.emit('error', new Error('MISCONF Errors writing to the AOF file'));
  w.emit('closing', 'closing');
  jest.advanceTimersByTime(5000);
  expect(w.resumed).toBe(0);
  w.emit('error', new Error('MISCONF Errors writing to the AOF file'));
  expect(w.paused).toBe(1);
});

test('current() names the refusal from the first refused write until two pauses and the longest wait for a job pass without another', () => {
  const w = fakeWorker();
  const refusals = handleWorkerErrors(w as unknown as Worker, () => undefined, 1000, 2000);
  expect(refusals.current()).toBeUndefined();
  w.emit('error', new Error('boom'));
  expect(refusals.current()).toBeUndefined();
  w.emit('error', new Error('OOM command not allowed when used memory > maxmemory'));
  expect(refusals.current()).toBe('Redis is out of memory (maxmemory) and refuses writes');
  // Resumed after the pause, the fetch meets the refusal again: still refusing across the resume.
  jest.advanceTimersByTime(1000);
  w.emit('error', new Error('OOM command not allowed when used memory > maxmemory'));
  // An idle worker waits for a job before it asks Redis again: a pause and that wait without a refusal is not enough.
  jest.advanceTimersByTime(3500);
  expect(refusals.current()).toBe('Redis is out of memory (maxmemory) and refuses writes');
  // Two pauses and the wait with no refused write: Redis takes writes again.
  jest.advanceTimersByTime(600);
  expect(refusals.current()).toBeUndefined();
});
