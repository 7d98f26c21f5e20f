// Worker metrics: the flag counts and the time-to-result histogram's resolution.
// neurotriage_worker_flags_total: every query a study was scored against has a series, at 0 when nothing flagged
// it, so a query that stops flagging (after a worker restart, in a new pod) is a rate of 0 the flag-rate drift
// alert can compare with its baseline, not a series that is simply absent.
import { countFlags, createWorkerMetrics } from './metrics';

test('countFlags: flagged findings count 1, the others create their series at 0', async () => {
  const m = createWorkerMetrics();
  countFlags(m.flags, [
    { queryId: 'acute_infarct', priority: 'STAT', flagged: false },
    { queryId: 'mass', priority: 'URGENT', flagged: true },
  ]);
  const values = (await m.flags.get()).values.map((v) => [v.labels.query, v.labels.priority, v.value]);
  expect(values).toEqual(expect.arrayContaining([['acute_infarct', 'STAT', 0], ['mass', 'URGENT', 1]]));
  expect(values).toHaveLength(2);
  const text = await m.registry.metrics();
  expect(text).toContain('neurotriage_worker_flags_total{query="acute_infarct",priority="STAT"} 0');
});

test('time to result: studies scored a second or two apart within the first 10 s fall in different buckets', async () => {
  // With bounds 5 and 10 only, 6.2 s and 8.7 s were one bucket, and p50 and p95 both read an interpolated value.
  const m = createWorkerMetrics();
  m.timeToResult.observe({ priority: 'STAT' }, 6.2);
  m.timeToResult.observe({ priority: 'STAT' }, 8.7);
  const text = await m.registry.getSingleMetricAsString('neurotriage_worker_time_to_result_seconds');
  expect(text).toContain('neurotriage_worker_time_to_result_seconds_bucket{le="6",priority="STAT"} 0');
  expect(text).toContain('neurotriage_worker_time_to_result_seconds_bucket{le="7",priority="STAT"} 1');
  expect(text).toContain('neurotriage_worker_time_to_result_seconds_bucket{le="9",priority="STAT"} 2');
});
