// A service that cannot open its port at start (already in use, an address this host does not have, a port below
// 1024 without the right) is told by a setting, not by a passing fault: restarting it only loops. npm start
// restarted such a service every few seconds forever, each time printing a Node stack, while another npm start (or
// any program) held the port; it now stops on it as on any bad setting, with a line saying what to do.
const REASONS: Record<string, string> = {
  EADDRINUSE: 'the address is already in use, by another neurotriage (npm start, npm run demo) or another program',
  EADDRNOTAVAIL: 'this host has no such address',
  EACCES: 'this user may not listen there (a port below 1024 needs privileges)',
};

/** What to tell the operator of a failed listen() (a bad setting's problem line), or undefined when `err` is not one. */
export function listenFailure(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
  if (typeof e !== 'object' || e === null || e.syscall !== 'listen' || !e.code || !(e.code in REASONS)) return undefined;
  const at = e.port === undefined ? String(e.address) : `${e.address}:${e.port}`;
  const who = e.port === undefined ? '' : ` (ss -ltnp 'sport = :${e.port}' names the process)`;
  return `cannot listen on ${at}: ${REASONS[e.code]}${e.code === 'EADDRINUSE' ? who : ''}; stop that, or set this `
    + 'service\'s address or port setting (the *_HOST and *_PORT settings, README "Settings") to one that is free';
}
