// `npm run bench:ingest`: how fast the listener takes in instances compared with two DCMTK-based SCPs, on this
// machine. The same N instances (small ~10 KB, and realistic 130-520 KB MR slices) go over storescu associations to
// our listener (durable writes before each response: the instance flushed into the listener's write-ahead log, or
// its file and directory flushed while other instances are being flushed; Redis record; study debounce), to Debian's Orthanc (the durable peer: SyncStorageArea true, its default, so each stored file is
// fsynced, plus its SQLite index) and to `storescp -od` (plain writes, no fsync), alternating rounds, every DCMTK
// process (Orthanc included) with TCP_NODELAY=1. storescp and Orthanc cannot bind loopback only, so each runs with
// its storescu inside a private network namespace (`unshare -rn`, loopback up) where nothing else can reach it,
// with its own temp storage; our listener binds 127.0.0.1 as in production. Every SCP's storescu are started by
// one bash script and timed inside it (sendAll), the same way for each: the listener's rounds once spawned its
// storescu from this process, which holds the listener, so their timing carried spawns the others' did not.
// Each round also times the disk alone, three ways (see logFloor and fsyncFloor): the ceiling for any SCP that
// makes each instance durable that way before it answers a synchronous SCU such as storescu.
// Environment: BENCH_SMALL (default 800), BENCH_LARGE (default 240), BENCH_ROUNDS (default 3), BENCH_DIR (where
// both SCPs write; default the OS temp dir. BENCH_DIR=/dev/shm takes the disk out and measures the code path),
// BENCH_TARGETS (comma list of neurotriage, orthanc, storescp, fsync-floor, one-flush-floor, log-floor; default all),
// BENCH_WARMUP (default 1: untimed listener rounds per set before the timed ones, so the listener is measured with
// its code compiled, as a long-running listener is; storescp is native and needs none).
// BENCH_COMPARE=<dist dir of another build> adds that build's listener as a second target, alternating with this
// one round by round in the same process (the disk's speed drifts by minutes here, so a before/after comparison
// needs both in the same run); its node_modules must resolve from that directory (a git worktree, say).
// BENCH_ASSOCIATIONS (default 1): the set is split round-robin over this many storescu associations sent at once,
// to every SCP (storescp then runs with --fork); the fsync floor stays one file after another.
// What every round writes stays until the end of the run: deleting thousands of files makes ext4's inode allocator
// skip the freed inodes for ~30 s (recently_deleted), which charged ~0.5 ms of kernel time to each file the next
// round created, whichever SCP it was, and made rounds depend on what ran before them.
import { closeSync, fdatasyncSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { startRedis } from '../test/helpers/redis';
import { newUid, runTool, writeMrInstance } from '../test/helpers/dcmtk';
import { listFiles } from '../test/listener/harness';
import { connectRedis } from '../shared/redis';
import { createLogger } from '../shared/logger';
import { listenerSettings } from '../services/listener/config';
import { startListener } from '../services/listener/listener';

/** A whole send of one set; generous, since a loaded machine's flushes can take milliseconds each. */
const RUN_TIMEOUT_MS = 10 * 60_000;

const SMALL = Number(process.env.BENCH_SMALL ?? 800);
const LARGE = Number(process.env.BENCH_LARGE ?? 240);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1);
const CALLING_AE = 'BENCH_SCU';
const TARGETS = ['neurotriage', 'orthanc', 'storescp', 'fsync-floor', 'one-flush-floor', 'log-floor'] as const;
type Target = (typeof TARGETS)[number] | 'compare';
const COMPARE = process.env.BENCH_COMPARE;
const ASSOCIATIONS = Math.max(1, Number(process.env.BENCH_ASSOCIATIONS ?? 1));
const SELECTED: Target[] = (process.env.BENCH_TARGETS ?? TARGETS.join(','))
  .split(',')
  .map((t) => t.trim())
  .filter((t): t is Target => (TARGETS as readonly string[]).includes(t));
if (COMPARE && SELECTED.includes('neurotriage')) SELECTED.push('compare');

/** The two functions a round needs from a listener build (this one, or BENCH_COMPARE's). */
interface ListenerBuild {
  startListener: typeof startListener;
  listenerSettings: typeof listenerSettings;
}

async function loadBuild(dist: string): Promise<ListenerBuild> {
  const listener = (await import(path.resolve(dist, 'services/listener/listener.js'))) as Pick<ListenerBuild, 'startListener'>;
  const config = (await import(path.resolve(dist, 'services/listener/config.js'))) as Pick<ListenerBuild, 'listenerSettings'>;
  return { startListener: listener.startListener, listenerSettings: config.listenerSettings };
}

interface Round {
  target: Target;
  set: string;
  instances: number;
  seconds: number;
  /** CPU seconds of this process (the listener) during the round; neurotriage only. */
  cpuSeconds?: number;
  /** Of which in the kernel (writes, fsyncs, sockets). */
  systemSeconds?: number;
  /** CPU seconds of the whole machine (every process and the kernel: SCP, storescu, Redis, disk) during the round. */
  machineSeconds?: number;
}

interface Timed {
  seconds: number;
  cpuSeconds?: number;
  systemSeconds?: number;
  machineSeconds?: number;
}

/**
 * The machine's busy CPU time so far, in clock ticks (USER_HZ, 100 a second on Linux), from the `cpu` line of
 * /proc/stat: user, nice, system, irq, softirq and steal; not idle or iowait. Undefined where there is no /proc.
 */
function busyTicks(statLine: string): number | undefined {
  const f = statLine.trim().split(/\s+/);
  if (f[0] !== 'cpu' || f.length < 9) return undefined;
  const [user, nice, system, , , irq, softirq, steal] = f.slice(1, 9).map(Number);
  return user + nice + system + irq + softirq + steal;
}
const TICK_SECONDS = 0.01;
/** The machine's busy CPU seconds between two `cpu` lines of /proc/stat; undefined when either is missing. */
function busySeconds(fromLine: string | undefined, toLine: string | undefined): number | undefined {
  const [from, to] = [fromLine, toLine].map((line) => (line === undefined ? undefined : busyTicks(line)));
  return from === undefined || to === undefined ? undefined : (to - from) * TICK_SECONDS;
}

function makeSet(dir: string, n: number, sizes: number[]): { files: string[]; bytes: number } {
  mkdirSync(dir, { recursive: true });
  const study = newUid();
  const series = [newUid(), newUid(), newUid(), newUid()];
  const files: string[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const side = sizes[i % sizes.length];
    const file = path.join(dir, `${String(i).padStart(5, '0')}.dcm`);
    writeMrInstance(file, { StudyInstanceUID: study, SeriesInstanceUID: series[i % series.length], InstanceNumber: i + 1, rows: side, columns: side, seed: i });
    bytes += statSync(file).size;
    files.push(file);
  }
  return { files, bytes };
}


let runs = 0;

async function roundOurs(files: string[], work: string, redisUrl: string, build: ListenerBuild): Promise<Timed> {
  const dataDir = path.join(work, `nt-${(runs += 1)}`);
  const settings = build.listenerSettings({
    REDIS_URL: redisUrl,
    DATA_DIR: dataDir,
    DICOM_PORT: 0,
    METRICS_PORT: 0,
    DICOM_ALLOWED_CALLING_AES: CALLING_AE,
    DISK_MIN_FREE_MB: 64,
    LOG_LEVEL: 'silent',
  });
  const listener = await build.startListener({ settings, log: createLogger('listener', 'silent') });
  try {
    // The listener runs in this process, so its CPU is this process's during the round (one bash spawned, which
    // starts the storescu: the same launcher as the other SCPs' rounds, timed inside it like theirs).
    const cpu0 = process.cpuUsage();
    const timed = await sendAll(files, [], settings.DICOM_AE_TITLE, listener.port, 'neurotriage');
    const cpu = process.cpuUsage(cpu0);
    const stored = listFiles(path.join(dataDir, 'store')).length;
    if (stored !== files.length) throw new Error(`neurotriage stored ${stored} of ${files.length}`);
    return { ...timed, cpuSeconds: (cpu.user + cpu.system) / 1e6, systemSeconds: cpu.system / 1e6 };
  } finally {
    await listener.close();
  }
}

/**
 * Sends the files to an SCP at 127.0.0.1:`port` from one bash script: round-robin shares, one storescu each, all
 * at once, timed (and the machine's CPU read) inside the script from the first storescu's start to the last one's
 * exit. `before` and `after` are script lines run untimed around it (an SCP's start and stop). Every SCP's round
 * goes through here, so no SCP's timing includes a launcher the others' do not.
 */
async function sendAll(files: string[], before: string[], aet: string, port: number, what: string, after: string[] = [], wrap: string[] = []): Promise<Timed> {
  const script = [
    ...before,
    `n=${ASSOCIATIONS}; i=0; declare -a share; for f in "$@"; do share[$((i % n))]+="$f"$'\\n'; i=$((i + 1)); done`,
    't0=$(date +%s%N); s0=$(head -1 /proc/stat)',
    'pids=(); for k in $(seq 0 $((n - 1))); do mapfile -t files < <(printf %s "${share[$k]}"); ' +
      `storescu -aet ${CALLING_AE} -aec ${aet} 127.0.0.1 ${port} "\${files[@]}" & pids+=($!); done`,
    'rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done',
    't1=$(date +%s%N); s1=$(head -1 /proc/stat)',
    ...after,
    'echo "ELAPSED_NS=$((t1-t0)) RC=$rc"; echo "STAT0=$s0"; echo "STAT1=$s1"',
  ].join('\n');
  const [tool, ...args] = [...wrap, 'bash', '-c', script, 'bench', ...files];
  const r = await runTool(tool, args, RUN_TIMEOUT_MS);
  const m = /ELAPSED_NS=(\d+) RC=(\d+)/.exec(r.stdout);
  if (!m || m[2] !== '0') throw new Error(`storescu -> ${what} failed: ${r.stdout.slice(-300)} ${r.stderr.slice(-500)}`);
  const stat = (name: string) => new RegExp(`^${name}=(.*)$`, 'm').exec(r.stdout)?.[1];
  return { seconds: Number(m[1]) / 1e9, machineSeconds: busySeconds(stat('STAT0'), stat('STAT1')) };
}

/**
 * An SCP started by `start` (a shell command line, listening on port 11112 as AE `aet`) and storescu together in a
 * private network namespace; the timing brackets the storescu associations only, not the SCP's start.
 */
function roundInNamespace(files: string[], start: string, aet: string, what: string): Promise<Timed> {
  const before = [
    'ip link set lo up',
    `${start} & SCP=$!`,
    'for i in $(seq 1 500); do (echo > /dev/tcp/127.0.0.1/11112) 2>/dev/null && break; sleep 0.02; done',
  ];
  return sendAll(files, before, aet, 11112, what, ['kill $SCP; wait $SCP 2>/dev/null'], ['unshare', '-rn']);
}

async function roundDcmtk(files: string[], work: string): Promise<Timed> {
  const od = path.join(work, `scp-${(runs += 1)}`);
  mkdirSync(od, { recursive: true });
  const timed = await roundInNamespace(files, `storescp ${ASSOCIATIONS > 1 ? '--fork ' : ''}-od "${od}" -aet STORESCP 11112`, 'STORESCP', 'storescp');
  const stored = listFiles(od).length;
  if (stored !== files.length) throw new Error(`storescp stored ${stored} of ${files.length}`);
  return timed;
}

/**
 * Debian's Orthanc as it ships: SyncStorageArea true (each file fsynced before the C-STORE response), SQLite index,
 * its own storage and index under the round's directory, DICOM only (no HTTP server, no plugins).
 */
async function roundOrthanc(files: string[], work: string): Promise<Timed> {
  const dir = path.join(work, `orthanc-${(runs += 1)}`);
  mkdirSync(path.join(dir, 'storage'), { recursive: true });
  mkdirSync(path.join(dir, 'index'), { recursive: true });
  const config = {
    Name: 'bench',
    StorageDirectory: path.join(dir, 'storage'),
    IndexDirectory: path.join(dir, 'index'),
    StorageCompression: false,
    SyncStorageArea: true,
    Plugins: [],
    HttpServerEnabled: false,
    DicomServerEnabled: true,
    DicomAet: 'ORTHANC',
    DicomPort: 11112,
    DicomCheckCalledAet: true,
    DicomAlwaysAllowStore: true,
    SaveJobs: false,
    StableAge: 3600,
  };
  writeFileSync(path.join(dir, 'orthanc.json'), JSON.stringify(config));
  const timed = await roundInNamespace(files, `Orthanc "${path.join(dir, 'orthanc.json')}" 2>"${path.join(dir, 'log')}"`, 'ORTHANC', 'Orthanc');
  const stored = listFiles(path.join(dir, 'storage')).length;
  if (stored !== files.length) throw new Error(`Orthanc stored ${stored} of ${files.length}`);
  return timed;
}

/**
 * The disk's cost of one durable instance alone: write a temp file, fdatasync, rename, fsync the directory, in
 * sequence as a synchronous SCU forces. No SCP that makes each instance durable this way before answering can beat
 * 1 / this on one association, whatever its protocol code does. `oneFlush`: Orthanc's cost instead (one fsync of
 * the file, no rename or directory fsync), the floor of an SCP that flushes once per instance.
 */
function fsyncFloor(work: string, n: number, bytes: number, oneFlush = false): Timed {
  const dir = path.join(work, `floor-${(runs += 1)}`);
  mkdirSync(dir, { recursive: true });
  const data = Buffer.alloc(bytes, 7);
  const dirFd = openSync(dir, 'r');
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    if (oneFlush) {
      // What Orthanc does per file with SyncStorageArea: write it under its final name and fsync it, nothing more.
      const fd = openSync(path.join(dir, `${i}.dcm`), 'wx');
      writeSync(fd, data);
      fsyncSync(fd);
      closeSync(fd);
      continue;
    }
    const tmp = path.join(dir, `${i}.part`);
    const fd = openSync(tmp, 'wx');
    writeSync(fd, data);
    fdatasyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path.join(dir, `${i}.dcm`));
    fsyncSync(dirFd);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  closeSync(dirFd);
  return { seconds };
}


/**
 * The disk's cost of the listener's write-ahead log alone: each instance written at the next block of a file whose
 * blocks were all written and flushed beforehand (untimed), then fdatasync, one after another. No file system
 * metadata changes, so no journal commit: the floor of an SCP that flushes once per instance into such a log.
 */
function logFloor(work: string, n: number, bytes: number): Timed {
  const file = path.join(work, `log-floor-${(runs += 1)}`);
  const block = 4096;
  const stride = Math.ceil(bytes / block) * block;
  const fd = openSync(file, 'w');
  const zeros = Buffer.alloc(1 << 20);
  for (let at = 0; at < n * stride; at += zeros.length) writeSync(fd, zeros, 0, Math.min(zeros.length, n * stride - at), at);
  fsyncSync(fd);
  const data = Buffer.alloc(bytes, 7);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    writeSync(fd, data, 0, bytes, i * stride);
    fdatasyncSync(fd);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  closeSync(fd);
  return { seconds };
}

function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const work = path.join(process.env.BENCH_DIR ?? tmpdir(), `nt-bench-ingest-${process.pid}`);
  mkdirSync(work, { recursive: true });
  const redis = await startRedis();
  const admin = connectRedis(redis.url, 'worker');
  const sets = [
    { name: 'small (64x64, ~9 KB)', ...makeSet(path.join(work, 'small'), SMALL, [64]) },
    { name: 'realistic (256-512 px, 130-520 KB)', ...makeSet(path.join(work, 'large'), LARGE, [256, 320, 384, 448, 512]) },
  ];
  const rounds: Round[] = [];
  const builds: Partial<Record<Target, ListenerBuild>> = { neurotriage: { startListener, listenerSettings } };
  if (COMPARE) builds.compare = await loadBuild(COMPARE);
  try {
    const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
    console.log(`${new Date().toISOString()} load average ${load()}; ${ASSOCIATIONS} storescu association(s) at once`);
    for (const set of sets) {
      console.log(`${set.name}: ${set.files.length} instances, ${(set.bytes / set.files.length / 1024).toFixed(0)} KB mean`);
      for (const target of SELECTED) {
        const build = builds[target];
        for (let i = 0; build && i < WARMUP; i++) {
          await admin.flushall();
          await roundOurs(set.files, work, redis.url, build);
        }
      }
      for (let i = 0; i < ROUNDS; i++) {
        // Alternate which goes first so page cache and CPU frequency favour neither.
        const order: Target[] =
          i % 2 === 0
            ? ['neurotriage', 'compare', 'orthanc', 'storescp', 'fsync-floor', 'one-flush-floor', 'log-floor']
            : ['orthanc', 'storescp', 'compare', 'neurotriage', 'log-floor', 'one-flush-floor', 'fsync-floor'];
        for (const target of order.filter((t) => SELECTED.includes(t))) {
          await admin.flushall();
          const build = builds[target];
          const timed = build
            ? await roundOurs(set.files, work, redis.url, build)
            : target === 'storescp'
              ? await roundDcmtk(set.files, work)
              : target === 'orthanc'
                ? await roundOrthanc(set.files, work)
                : target === 'log-floor'
                  ? logFloor(work, set.files.length, Math.round(set.bytes / set.files.length))
                  : fsyncFloor(work, set.files.length, Math.round(set.bytes / set.files.length), target === 'one-flush-floor');
          rounds.push({ target, set: set.name, instances: set.files.length, ...timed });
          const perInstance = (sec = 0) => ((sec * 1000) / set.files.length).toFixed(2);
          const cpu = timed.cpuSeconds === undefined ? '' : `   listener CPU ${perInstance(timed.cpuSeconds)} ms/instance (${perInstance(timed.systemSeconds)} in the kernel)`;
          const machine = timed.machineSeconds === undefined ? '' : `   machine CPU ${perInstance(timed.machineSeconds)} ms/instance`;
          console.log(`  round ${i + 1} ${target.padEnd(11)} ${(set.files.length / timed.seconds).toFixed(0).padStart(6)} instances/s${machine}${cpu}`);
        }
      }
    }
    console.log(`\nmedian over rounds (instances/s), ${ASSOCIATIONS} association(s); floors = the disk alone, one file after another:`);
    console.log('  fsync floor: temp file + fdatasync + rename + directory fsync (without the log); one-flush floor: file + fsync (Orthanc\'s);');
    console.log('  log floor: write into a preallocated log + fdatasync (with the log, DICOM_WAL_MB)');
    console.log('set                                  neurotriage    Orthanc  vs Orthanc   storescp  vs storescp   fsync floor  one-flush floor  log floor   listener CPU ms/instance');
    for (const set of sets) {
      const of = (target: Target) => rounds.filter((r) => r.set === set.name && r.target === target);
      const rate = (target: Target) => median(of(target).map((r) => r.instances / r.seconds));
      const ours = rate('neurotriage');
      const orthanc = rate('orthanc');
      const theirs = rate('storescp');
      const cpu = median(of('neurotriage').map((r) => ((r.cpuSeconds ?? NaN) * 1000) / r.instances));
      console.log(
        `${set.name.padEnd(36)} ${ours.toFixed(0).padStart(11)} ${orthanc.toFixed(0).padStart(10)} ${(ours / orthanc).toFixed(2).padStart(10)}x ${theirs.toFixed(0).padStart(10)} ${(ours / theirs).toFixed(2).padStart(11)}x ${rate('fsync-floor').toFixed(0).padStart(13)} ${rate('one-flush-floor').toFixed(0).padStart(16)} ${rate('log-floor').toFixed(0).padStart(10)} ${cpu.toFixed(2).padStart(14)}`,
      );
      if (COMPARE) {
        const other = rate('compare');
        const otherCpu = median(of('compare').map((r) => ((r.cpuSeconds ?? NaN) * 1000) / r.instances));
        console.log(`  BENCH_COMPARE build: ${other.toFixed(0)} instances/s, listener CPU ${otherCpu.toFixed(2)} ms/instance; this build ${(ours / other).toFixed(2)}x of it`);
      }
      const machine = (target: Target) => median(of(target).map((r) => ((r.machineSeconds ?? NaN) * 1000) / r.instances));
      const machines = (['neurotriage', 'orthanc', 'storescp'] as Target[]).filter((t) => of(t).length > 0).map((t) => `${t} ${machine(t).toFixed(2)}`);
      if (machines.length > 0) console.log(`  machine CPU ms/instance (every process and the kernel, SCU included): ${machines.join(', ')}`);
    }
    console.log(`\n${new Date().toISOString()} load average ${load()}`);
    console.log(`written under ${work}`);
    console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}`);
  } finally {
    admin.disconnect();
    await redis.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
