// The worklist page: vanilla JS, no build step. Every value from the API is put in the page with textContent
// (never innerHTML), the token lives in sessionStorage for this tab only, and live updates come from the
// /api/v1/events stream read with fetch() so the token travels in a header, one stream shared by this browser's tabs
// signed in with the same token.
const TOKEN_KEY = 'neurotriage.token';
const $ = (sel, root = document) => root.querySelector(sel);

// drafts: what was typed in a study's "Score a sentence" and "Check a draft report" boxes, kept per study (in this
// tab's memory only) so that a draft typed for one patient never shows in another patient's study.
const state = { token: sessionStorage.getItem(TOKEN_KEY), user: null, queries: [], fresh: new Set(), view: 'worklist', search: null, drafts: new Map(), refreshedAt: 0, down: false };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** Said when the service cannot be reached at all (fetch rejects: network down, service restarting). */
const UNREACHABLE = 'The service did not answer: what is shown may be out of date. It is asked again every minute, and at once when live updates reconnect.';

async function api(path, options = {}) {
  let res;
  try {
    res = await fetch(path, {
      ...options,
      headers: { authorization: `Bearer ${state.token}`, ...(options.body ? { 'content-type': 'application/json' } : {}), ...options.headers },
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, UNREACHABLE);
  }
  if (res.status === 401) {
    signOut('Your session ended: sign in again.');
    throw new ApiError(401, 'not signed in');
  }
  const type = res.headers.get('content-type') || '';
  const body = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) throw new ApiError(res.status, (body && body.detail) || `HTTP ${res.status}`);
  return body;
}

// ---------- formatting ----------
// Never round a probability to a certainty: 0.999 reads ">99%", 0.001 reads "<1%".
const pct = (p) => {
  if (p === null || p === undefined) return '–';
  if (p >= 0.995) return '>99%';
  if (p < 0.005) return '<1%';
  return `${Math.round(p * 100)}%`;
};
// Measured rates (sensitivity, specificity, false-positive rate on a cohort) and sensitivity targets are shown as
// measured: 1 is "100%", 0 is "0%", others in whole percent, or to a tenth where whole percent would read 100% or 0%
// (0.999 is "99.9%"). The never-round-to-certainty rule above (">99%") is for the probabilities of one study.
const rate = (r) => {
  if (r === null || r === undefined) return '–';
  if (r >= 1) return '100%';
  if (r <= 0) return '0%';
  const whole = Math.round(r * 100);
  if (whole > 0 && whole < 100) return `${whole}%`;
  return `${(Math.min(999, Math.max(1, Math.round(r * 1000))) / 10).toFixed(1)}%`;
};
const num = (x, d = 2) => (x === null || x === undefined ? '–' : Number(x).toFixed(d));
// A probability to three decimals, as the API's statements write it: never 0.000 or 1.000 (certainty).
const p3 = (p) => (p === null || p === undefined ? '–' : p < 0.0005 ? '<0.001' : p >= 0.9995 ? '>0.999' : Number(p).toFixed(3));
const label = (id) => id.replace(/[_-]+/g, ' ').replace(/^./, (c) => c.toUpperCase());
// Times are the browser's own time zone, 24 h, the month in letters (never 06/12, which reads two ways); the year
// is written when it is not this year's. A time in another offset than now's (before a change of summer time) says
// its zone ("24 Oct 10:00 BST" under "Arrived (GMT)"), so it never reads an hour off under the column heading.
// whenFull() is the unambiguous form for tooltips: date, time and zone.
function time(ms) {
  const d = new Date(ms);
  const now = new Date();
  const today = now.toDateString() === d.toDateString();
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  const year = d.getFullYear() === now.getFullYear() ? {} : { year: 'numeric' };
  const text = today ? hm : `${d.toLocaleDateString([], { day: '2-digit', month: 'short', ...year })} ${hm}`;
  const zone = zoneAt(d);
  return zone === zoneAt(now) ? text : `${text} ${zone}`;
}
const whenFull = (ms) => new Date(ms).toLocaleString([], { weekday: 'short', day: 'numeric', month: 'long', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short' });
/** The browser's zone at a time, as it names it ("CET", "GMT+1"). */
const zoneAt = (d) => new Intl.DateTimeFormat([], { timeZoneName: 'short' }).formatToParts(d).find((p) => p.type === 'timeZoneName')?.value ?? '';
/** The column headings name the zone times are shown in, as it is now (set again at each refresh: summer time ends). */
const nameZone = () => {
  for (const z of document.querySelectorAll('th .zone')) z.textContent = `(${zoneAt(new Date())})`;
};
/** An arrival time: <time> with its instant, the full date, time and zone as tooltip, and its age below. */
const arrived = (ms) => [el('time', { datetime: new Date(ms).toISOString(), title: whenFull(ms), text: time(ms) }), el('span', { class: 'muted small block', text: ago(ms) })];
function ago(ms) {
  const min = Math.round((Date.now() - ms) / 60000);
  if (min < 1) return 'just now';
  if (min < 60) return `${min} min ago`;
  const h = Math.floor(min / 60);
  return h < 48 ? `${h} h ago` : `${Math.floor(h / 24)} d ago`;
}
const badge = (priority) => el('span', { class: `badge ${priority.toLowerCase()}`, text: priority });

// ---------- session ----------
function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  state.user = null;
  stopLive();
  setLiveNote(null);
  closeStudy();
  state.drafts.clear();
  forgetShown();
  show('login');
  $('#login-error').textContent = message || '';
}

/** Sign-outs so far: a worklist refresh begun before one writes nothing after it. */
let signOuts = 0;

/**
 * What the last user had on screen is not left in the page for the next one at a shared workstation: the worklist
 * (rows, count, unreadable results) and the search (box, results, warning) go with the sign-out, and a refresh or
 * a search still in flight is not shown.
 */
function forgetShown() {
  signOuts++;
  clearTimeout(refreshTimer);
  for (const rows of ['#worklist tbody', '#untriaged tbody']) $(rows).replaceChildren();
  $('#count').textContent = '';
  showUnreadable([]);
  searchToken++;
  dropSearch();
  $('#search-q').value = '';
  $('#search-warning').hidden = true;
}

async function signIn(token) {
  state.token = token;
  const me = await api('/api/v1/me');
  sessionStorage.setItem(TOKEN_KEY, token);
  state.user = me;
  $('#who').textContent = `${me.name} · ${me.role}`;
  // Times on the page are in this browser's zone: the column headings say which.
  nameZone();
  document.body.classList.toggle('is-admin', me.role === 'admin');
  await loadQueries();
  show('worklist');
  await refreshWorklist();
  startLive();
}

// The window title names the view (a browser tab, a screen reader's window list, a bookmark): no study identifiers.
const TITLES = { login: 'Sign in', worklist: 'Worklist', search: 'Search past studies', queries: 'Triage queries' };
const setTitle = (what) => { document.title = `${what} · neurotriage`; };

function show(view) {
  const signedIn = view !== 'login';
  setTitle(TITLES[view]);
  $('#login').hidden = signedIn;
  $('#nav').hidden = !signedIn;
  $('#session').hidden = !signedIn;
  for (const v of ['worklist', 'search', 'queries']) $(`#view-${v}`).hidden = v !== view;
  for (const tab of document.querySelectorAll('.tab')) {
    if (tab.dataset.view === view) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  if (signedIn) state.view = view;
  if (view === 'login') $('#token').focus();
}

// ---------- the decision ----------
// One rule everywhere (API, HL7, webhook, this page): flagged when the calibrated probability P >= the threshold.
// The API sends each finding's decision in words (statement); chips that set the study's priority (triggered) look
// different from findings that are flagged but did not set it, and from findings that are not flagged.
const stateOf = (f) => (f.triggered ? 'triggered' : f.flagged ? 'flagged' : 'unflagged');
const STATE_TEXT = { triggered: 'sets the priority', flagged: 'flagged, does not set the priority', unflagged: 'not flagged' };
function statement(f) {
  if (f.statement) return f.statement;
  if (f.probability === null || f.threshold === null || f.threshold === undefined) return 'not flagged: cannot be flagged (no calibration applies)';
  return f.flagged ? `flagged: P ${p3(f.probability)} >= threshold ${num(f.threshold, 3)}` : `not flagged: P ${p3(f.probability)} < threshold ${num(f.threshold, 3)}`;
}

function chip(f) {
  const state = stateOf(f);
  return el('li', { class: `chip ${state} ${f.priority.toLowerCase()}`, title: statement(f), 'data-state': state },
    state === 'triggered' ? el('span', { class: 'mark', 'aria-hidden': 'true', text: '\u25B2 ' }) : null,
    el('span', { text: label(f.queryId) }), ' ',
    el('span', { class: 'score', text: f.probability !== null ? pct(f.probability) : num(f.similarity) }),
    // The percent is read against its threshold ("7% ≥ 5%"): a low percent that flags is not a weak finding's slip.
    f.probability !== null && f.threshold !== null && f.threshold !== undefined ? el('span', { class: 'thr', text: ` ${f.flagged ? '\u2265' : '<'} ${pct(f.threshold)}` }) : null,
    f.held ? el('span', { class: 'held', text: ` · waits for ${(f.waitingFor || []).join(', ')}` }) : null,
    el('span', { class: 'sr-only', text: ` (${STATE_TEXT[state]})` }),
  );
}

// ---------- worklist ----------
function findingsCell(study) {
  const rank = { triggered: 0, flagged: 1, unflagged: 2 };
  const flagged = study.findings.filter((f) => f.flagged)
    .sort((a, b) => rank[stateOf(a)] - rank[stateOf(b)] || (b.probability ?? b.similarity) - (a.probability ?? a.similarity));
  if (flagged.length === 0) {
    // A routine study is placed among the others by its most probable finding (docs/api.md "Worklist"): say which.
    const top = study.findings.filter((f) => f.probability !== null).sort((a, b) => b.probability - a.probability)[0];
    return el('span', { class: 'muted', text: 'No finding flagged' },
      top ? el('span', { class: 'small block', 'data-role': 'highest', title: 'the most probable finding, which orders this study among the routine ones', text: `highest: ${label(top.queryId)} ${pct(top.probability)}${top.threshold !== null && top.threshold !== undefined ? ` < ${pct(top.threshold)}` : ''}` }) : null);
  }
  return el('ul', { class: 'chips' }, flagged.map(chip));
}

function provisionalTag(r) {
  if (!r.provisional) return null;
  const until = time(r.provisional.until);
  return el('span', { class: 'tag provisional', title: `Waiting for ${r.provisional.waitingFor.join(', ')}: findings scored without them do not raise the priority until ${until}` },
    `PROVISIONAL`, el('span', { class: 'sr-only', text: ` waiting for ${r.provisional.waitingFor.join(', ')} until ${until}` }));
}

function sequencesCell(study) {
  return el('span', { class: 'seqs' },
    study.sequencesUsed.map((s) => el('span', { class: 'seq', text: s })),
    study.sequencesMissing.map((s) => el('span', { class: 'seq missing', title: `${s} missing`, text: s }, el('span', { class: 'sr-only', text: ' (missing)' }))),
  );
}

// The series the model read that lost images (the reason a confidence is below 100 %), were joined into one volume
// (one acquisition received as several series), were post-contrast or had lossy history (lossy-compressed before:
// marked, not scored differently), and the series not read whose instances the listener refused at C-STORE (a
// series refused whole has no sequence).
function seriesNotes(r) {
  const name = (x) => x.sequence === 'unknown' && x.SeriesNumber === undefined
    ? `series …${x.SeriesInstanceUID.slice(-8)}`
    : `${x.sequence}${x.SeriesNumber !== undefined ? ` (series ${x.SeriesNumber})` : ''}`;
  const refusal = (d) => [d.status, d.refusal].filter(Boolean).join(' ');
  const why = (d) => d.reason === 'refused-at-intake' ? `refused at intake (${refusal(d)})` : d.reason;
  const images = (d) => `${d.images} image${d.images === 1 ? '' : 's'}`;
  const used = (r.series ?? []).filter((x) => x.used);
  const leftOut = used.filter((x) => x.dropped?.length)
    .map((x) => `${name(x)}: ${x.dropped.map((d) => `${images(d)} ${why(d)}`).join(', ')}`);
  const refused = (r.series ?? []).filter((x) => !x.used && x.dropped?.some((d) => d.reason === 'refused-at-intake'))
    .map((x) => `${name(x)}: ${x.dropped.filter((d) => d.reason === 'refused-at-intake').map((d) => `${images(d)} (${refusal(d)})`).join(', ')}`);
  const contrast = used.filter((x) => x.contrastEnhanced).map(name);
  const lossy = used.filter((x) => x.lossyCompressed).map(name);
  // Every part names the others: each volume once, its parts in the order the result lists them.
  const joined = new Map();
  for (const x of used.filter((s) => s.joinedWith?.length)) {
    const uids = [x.SeriesInstanceUID, ...x.joinedWith];
    const key = [...uids].sort().join(' ');
    if (joined.has(key)) continue;
    const numbers = used.filter((s) => uids.includes(s.SeriesInstanceUID)).map((s) => s.SeriesNumber ?? '?');
    joined.set(key, `${x.sequence}: series ${numbers.join(' + ')}`);
  }
  return [
    ...(leftOut.length ? [['Images left out', leftOut.join('; ')]] : []),
    ...(refused.length ? [['Refused at intake', `${refused.join('; ')}: not stored, not read`]] : []),
    ...(joined.size ? [['Joined series', `${[...joined.values()].join('; ')} (one acquisition received as several series, read as one volume)`]] : []),
    ...(contrast.length ? [['Post-contrast', `${contrast.join(', ')}: no pre-contrast series of the sequence was received`]] : []),
    ...(lossy.length ? [['Lossy-compressed before', `${lossy.join(', ')}: marked, not scored differently (the models are trained on lossless pixel data)`]] : []),
  ];
}

function row(study) {
  const open = () => openStudy(study.StudyInstanceUID).catch(report);
  const tr = el('tr', { 'data-uid': study.StudyInstanceUID, 'data-priority': study.priority, class: state.fresh.has(study.StudyInstanceUID) ? 'fresh' : null, onclick: open },
    el('td', {}, badge(study.priority), provisionalTag(study)),
    el('td', {}, arrived(study.receivedAt)),
    el('td', {}, el('button', { type: 'button', class: 'link', text: study.AccessionNumber || `…${study.StudyInstanceUID.slice(-12)}`, 'aria-label': `Open study ${study.AccessionNumber || study.StudyInstanceUID}`, onclick: (e) => { e.stopPropagation(); open(); } })),
    el('td', {}, findingsCell(study)),
    el('td', { class: 'num', text: pct(study.abnormalProbability) }),
    el('td', {}, sequencesCell(study)),
    el('td', { text: study.status || 'scored' }),
  );
  return tr;
}

function untriagedRow(s) {
  const open = () => openStudy(s.StudyInstanceUID).catch(report);
  return el('tr', { 'data-uid': s.StudyInstanceUID, onclick: open },
    el('td', {}, el('span', { class: `state ${s.status}`, text: s.status === 'failed' ? 'FAILED' : 'UNSUPPORTED' })),
    el('td', {}, arrived(s.lastReceivedAt)),
    el('td', {}, el('button', { type: 'button', class: 'link', text: s.AccessionNumber || `…${s.StudyInstanceUID.slice(-12)}`, 'aria-label': `Open study ${s.AccessionNumber || s.StudyInstanceUID}`, onclick: (e) => { e.stopPropagation(); open(); } })),
    el('td', { text: s.reason || '–' }),
    el('td', { class: 'num', text: String(s.instances) }),
    isAdmin() ? el('td', {}, scoreAgainButton(s.StudyInstanceUID, s.AccessionNumber)) : null,
  );
}

const isAdmin = () => state.user?.role === 'admin';

/**
 * An administrator's "Score again" (POST …/rescore): once the cause of a failure is fixed, for a result that cannot
 * be read, or for a study an earlier model bundle scored. On the worklist the study then leaves "Not triaged" for
 * "being scored" and the outcome is announced in #rescored (a 409 or 410 detail says why not, e.g. retention deleted
 * the images: send the study again from the PACS). In the study view (`out`: a status element beside the button,
 * since the page's notice lies under the dialog) the outcome is said there.
 */
function scoreAgainButton(uid, accession, out = null, onQueued = null) {
  const name = accession || `…${uid.slice(-12)}`;
  const say = out || $('#rescored');
  const button = el('button', { type: 'button', class: 'quiet', text: 'Score again', 'aria-label': `Score study ${accession || uid} again` });
  button.onclick = async (e) => {
    e.stopPropagation();
    button.disabled = true;
    try {
      await api(`/api/v1/studies/${encodeURIComponent(uid)}/rescore`, { method: 'POST' });
    } catch (err) {
      button.disabled = false;
      say.textContent = '';
      if (!out) return report(err);
      if (err instanceof ApiError && err.status === 401) return;
      say.textContent = err.message;
      say.classList.add('error');
      return;
    }
    button.disabled = false;
    say.textContent = `Study ${name} is queued to be scored again.`;
    say.classList.remove('error');
    onQueued?.();
    // The list after it: a refresh that fails says so in the page's notice and leaves this message standing.
    if (out) return refreshWorklist().catch(report);
    await refreshWorklist().catch(report);
    // Its row has gone from the list: keyboard focus goes to the message rather than to the top of the page.
    if (!button.isConnected) say.focus();
  };
  return button;
}

/** The study view's status, with "Score again" for an administrator once the study's job has ended. */
function statusFact(study) {
  const status = study.status || 'unknown';
  if (!isAdmin() || !['scored', 'failed', 'unsupported'].includes(study.status)) return status;
  const out = el('span', { class: 'small block', role: 'status', 'data-role': 'rescore-outcome' });
  const shown = el('span', { 'data-role': 'study-status', text: status });
  return [shown, ' ', scoreAgainButton(study.StudyInstanceUID, study.result?.AccessionNumber, out, () => { shown.textContent = 'queued'; }), out];
}

const PAGE = 100;
/** The most studies one GET /api/v1/studies returns. */
const STUDIES_LIMIT = 200;
let shown = PAGE;

function worklistQuery(limit, cursor) {
  const form = new FormData($('#filters'));
  const qs = new URLSearchParams({ limit: String(limit) });
  for (const k of ['priority', 'flagged']) if (form.get(k)) qs.set(k, form.get(k));
  if (cursor) qs.set('cursor', cursor);
  return `/api/v1/worklist?${qs}`;
}

/**
 * Replaces a table body's rows (or a list's items), keeping keyboard focus: a control focused in a row before the
 * refresh is focused again in that study's new row (a live worklist rebuilt every minute must not throw the reader
 * back to the page). Rows carry their study's UID in data-uid.
 */
function replaceRows(body, rows) {
  const focused = document.activeElement;
  const uid = focused && body.contains(focused) ? focused.closest('[data-uid]')?.dataset.uid : null;
  const label = focused?.getAttribute?.('aria-label');
  const tag = focused?.tagName;
  body.replaceChildren(...rows);
  if (!uid) return;
  const tr = [...body.children].find((r) => r.dataset.uid === uid);
  const again = tr && ([...tr.querySelectorAll(tag || 'button')].find((e) => e.getAttribute('aria-label') === label) || tr.querySelector('button, a, [tabindex]'));
  again?.focus();
}

async function refreshWorklist() {
  const session = signOuts;
  // Refreshes keep as many studies on screen as the radiologist has asked for, in pages of at most 200.
  let items = [];
  let cursor = null;
  // Studies whose stored result the API cannot read are not rows (no priority to sort by) but must not vanish unseen.
  let unreadable = [];
  do {
    const page = await api(worklistQuery(Math.min(200, shown - items.length), cursor));
    items = items.concat(page.items);
    unreadable = unreadable.concat(page.unreadable || []);
    cursor = page.nextCursor;
  } while (cursor && items.length < shown);
  // Not triaged (the worker's index) and in flight asked apart, so a backlog being scored never pushes a failed
  // or unsupported study out of its list.
  const [untriagedPage, inFlightPage] = await Promise.all([
    api(`/api/v1/studies?status=failed,unsupported&limit=${STUDIES_LIMIT}`),
    api(`/api/v1/studies?status=received,queued,scoring&limit=${STUDIES_LIMIT}`),
  ]);
  if (session !== signOuts) return;
  const page = { items, nextCursor: cursor };
  state.refreshedAt = Date.now();
  nameZone();
  // The service answers again: the "did not answer" notice goes, the list below is current.
  if (state.down) {
    state.down = false;
    $('#notice').hidden = true;
  }
  replaceRows($('#worklist tbody'), page.items.map(row));
  $('#empty').hidden = page.items.length > 0;
  // An empty list with no filter set means nothing is scored yet, not that a filter hides everything.
  const filtered = [...new FormData($('#filters')).values()].some((v) => v !== '');
  $('#empty').textContent = filtered ? 'No studies match these filters.' : 'No studies scored yet.';
  $('#worklist-more').hidden = !page.nextCursor;
  const stat = page.items.filter((i) => i.priority === 'STAT').length;
  const untriaged = untriagedPage.items;
  const inFlight = inFlightPage.items.length;
  const atLimit = (n) => (n >= STUDIES_LIMIT ? `${n}+` : String(n));
  // Rows come STAT first, so the STAT count is whole unless every row shown is STAT and more follow ("100+ STAT").
  // A live region: written only when it says something new, so a screen reader does not announce it every refresh.
  const count = `${page.items.length}${page.nextCursor ? '+' : ''} studies · ${stat}${page.nextCursor && stat === page.items.length ? '+' : ''} STAT${inFlight ? ` · ${atLimit(inFlight)} being scored` : ''}${untriaged.length ? ` · ${atLimit(untriaged.length)} not triaged` : ''}${unreadable.length ? ` · ${unreadable.length} not shown (result unreadable): tell the administrator` : ''}`;
  if ($('#count').textContent !== count) $('#count').textContent = count;
  showUnreadable(unreadable);
  replaceRows($('#untriaged tbody'), untriaged.map(untriagedRow));
  $('#untriaged-actions').hidden = !isAdmin();
  $('#untriaged').hidden = untriaged.length === 0;
}

/**
 * The UIDs of the studies left off the list because their stored result cannot be read, for an administrator to
 * score again; folded away, and kept open or closed across refreshes (the element stays, its list is replaced).
 */
function showUnreadable(uids) {
  const shown = isAdmin() ? uids : [];
  $('#unreadable').hidden = shown.length === 0;
  $('#unreadable-count').textContent = String(shown.length);
  replaceRows($('#unreadable ul'), shown.map((u) => el('li', { 'data-uid': u }, el('code', { text: u }), ' ', scoreAgainButton(u))));
}

let refreshTimer = null;
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  // Bursts of results (a batch from the scanner) become one refresh.
  refreshTimer = setTimeout(() => refreshWorklist().catch(report), 250);
}

// ---------- live updates ----------
// Over HTTP/1.1 a browser keeps at most 6 connections to one host, and a stream holds one for good: with a stream
// per tab, a 7th tab never loaded. The tabs of this browser signed in with the same token share one stream: one tab
// holds it and passes each event and each change of the stream's state to the others on a BroadcastChannel named
// after a hash of the token (never the token); when it signs out, closes, crashes or freezes, another tab takes it
// over. The tabs elect the holder on the channel itself (see leadOnChannel). A tab with another token has another
// name, so it never gets this token's events. Without BroadcastChannel a tab opens a stream of its own.
let live = null;
/** This tab's place among the tabs sharing a stream: { channel, lead, leading, last, heard, live, stale, watchdog, elect }. */
let shared = null;
const canShare = () => typeof BroadcastChannel === 'function';

function setLive(text, ok) {
  const node = $('#live');
  node.textContent = text;
  node.classList.toggle('ok', ok);
}

/** Says why live updates are paused, below the header, or hides the note (null). */
function setLiveNote(text) {
  const node = $('#live-note');
  node.textContent = text || '';
  node.hidden = !text;
}

/**
 * What the stream says, in every tab that shares it: 'live' (open; `gap` when events may have been missed, so the
 * list and the open study are reloaded), 'down' (the header's short state and the note), 'event' (one event) and
 * 'beat' (the stream is alive). The tab holding the stream shows it and passes it on.
 */
function liveSays(message) {
  if (message.type === 'live') {
    setLive('Live', true);
    setLiveNote(null);
    if (message.gap) {
      scheduleRefresh();
      refreshOpenStudy('Reconnected');
    }
  } else if (message.type === 'down') {
    setLive(message.short, false);
    setLiveNote(message.note);
  } else if (message.type === 'event') {
    onEvent(message.event);
  }
  if (!shared?.leading) return;
  if (message.type === 'live' || message.type === 'down') shared.last = { ...message, gap: false };
  shared.channel.postMessage(message);
}

/** A message from the tab holding the stream, in a tab that shares it. */
function fromLeader(mine, message) {
  if (mine.leading || message.type === 'hello') return;
  mine.heard = Date.now();
  // This tab gave the stream up for silent (the holding tab stalled): what it hears now reloads the list.
  const gap = mine.stale;
  mine.stale = false;
  if (message.type === 'live' || message.type === 'down') mine.live = message.type === 'live';
  if (message.type === 'live') return liveSays({ ...message, gap: message.gap || gap });
  if (gap && mine.live) liveSays({ type: 'live', gap: true });
  if (message.type !== 'beat') liveSays(message);
}

function stopLive() {
  if (live) live.abort();
  live = null;
  if (!shared) return;
  clearInterval(shared.watchdog);
  shared.lead.abort();
  shared.channel?.close();
  shared = null;
}

// SHA-256 (FIPS 180-4) in plain JS: crypto.subtle exists only in a secure context, and the name must be the same in
// every tab of the token whichever page made it.
const SHA256_K = [
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
  0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
  0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
  0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
  0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];
function sha256Hex(text) {
  const bytes = new TextEncoder().encode(text);
  // Big-endian words: the bytes, a 1 bit, zeros, and the length in bits in the last word (texts under 512 MiB).
  const words = new Uint32Array(((bytes.length + 8) >> 6) * 16 + 16);
  bytes.forEach((b, i) => { words[i >> 2] |= b << (24 - 8 * (i & 3)); });
  words[bytes.length >> 2] |= 0x80 << (24 - 8 * (bytes.length & 3));
  words[words.length - 1] = bytes.length * 8;
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  const w = new Uint32Array(64);
  let h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
  for (let at = 0; at < words.length; at += 16) {
    for (let t = 0; t < 64; t++) {
      if (t < 16) w[t] = words[at + t];
      else w[t] = (rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >>> 3)) + (rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >>> 10)) + w[t - 7] + w[t - 16];
    }
    let [a, b, c, d, e, f, g, k] = h;
    for (let t = 0; t < 64; t++) {
      const t1 = (k + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[t] + w[t]) | 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      [k, g, f, e, d, c, b, a] = [g, f, e, (d + t1) | 0, c, b, a, (t1 + t2) | 0];
    }
    const out = [a, b, c, d, e, f, g, k];
    h = h.map((v, i) => (v + out[i]) | 0);
  }
  return h.map((v) => (v >>> 0).toString(16).padStart(8, '0')).join('');
}

/** A name for the token's shared stream: a hash, so the token is never the channel's name. */
const liveName = (token) => `neurotriage.live.${sha256Hex(`neurotriage.live:${token}`)}`;

/** A random id for this tab among those sharing a stream (crypto.randomUUID needs a secure context). */
const tabId = () => [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');

/**
 * The tabs elect the holder on the channel itself, on every page: Web Locks would pick it only in a secure context (the
 * page is also served on plain http:// to a host name, a ward's network), and a frozen holder would keep its lock, so
 * no other tab would take the stream over. The holder says 'lead' every second. A tab that has just opened, heard 'bye'
 * (the holder signed out or closed) or not heard 'lead' for 3 s (the holder crashed or froze) claims the stream, and
 * takes it unless within 0.5 s a holder answers (a holder answers a claim at once, even while the browser throttles its
 * timers in the background) or a tab with a lower id claims too. Two holders at once (a frozen holder back, a holder
 * too busy to answer) both pass on the same events, which is harmless, and last until one hears the other's 'lead': the
 * later claim (its term is higher), or else the lower id, keeps the stream and the other closes its own.
 */
function leadOnChannel(mine, lead) {
  let term = 0;
  let seen = 0;
  let claim = null;
  const say = (type, t = term) => mine.channel.postMessage({ type, from: mine.id, term: t });
  const backOff = () => { clearTimeout(claim); claim = null; };
  const stake = () => {
    if (claim || mine.leading) return;
    const mineTerm = term + 1;
    say('claim', mineTerm);
    claim = setTimeout(() => {
      claim = null;
      if (shared !== mine || mine.lead.signal.aborted || mine.leading) return;
      term = mineTerm;
      say('lead');
      lead();
    }, 500);
  };
  const stepDown = () => {
    mine.leading = false;
    if (live) live.abort();
    live = null;
    // It was the holder: what it showed is what the others heard; told again, it reloads as after a take-over.
    mine.followed = true;
    mine.live = mine.last?.type === 'live';
    mine.heard = Date.now();
  };
  mine.elect = (m) => {
    if (m.type === 'bye') return mine.leading || stake();
    if (m.type === 'claim') {
      if (mine.leading) return say('lead');
      if (claim && m.from < mine.id) backOff();
      return undefined;
    }
    if (mine.leading) {
      if (m.term < term || (m.term === term && m.from > mine.id)) return say('lead');
      stepDown();
    }
    term = Math.max(term, m.term);
    seen = Date.now();
    return backOff();
  };
  const tick = setInterval(() => {
    if (mine.leading) say('lead');
    else if (Date.now() - seen > 3000) stake();
  }, 1000);
  mine.lead.signal.addEventListener('abort', () => {
    clearInterval(tick);
    backOff();
    if (mine.leading) say('bye');
  });
  stake();
}

function startLive() {
  stopLive();
  if (!canShare()) return openStream();
  const mine = { channel: null, lead: new AbortController(), leading: false, last: null, heard: Date.now(), live: false, stale: false, watchdog: null, followed: false, id: tabId(), elect: null };
  shared = mine;
  // Taken over from another tab: events may have been missed between its stream and this one.
  const lead = () => {
    if (shared !== mine) return;
    mine.leading = true;
    openStream(0, mine.followed || mine.stale);
  };
  try {
    mine.channel = new BroadcastChannel(liveName(state.token));
    mine.channel.onmessage = ({ data }) => {
      if (shared !== mine) return undefined;
      if (data.type === 'lead' || data.type === 'claim' || data.type === 'bye') return mine.elect(data);
      // A tab that has just opened asks what the stream's state is; the answer is for it alone.
      if (data.type === 'hello') return mine.leading && mine.last && mine.channel.postMessage({ ...mine.last, to: data.from });
      if (data.to && data.to !== mine.id) return undefined;
      mine.followed = true;
      return fromLeader(mine, data);
    };
    // The holding tab passes on the service's heartbeats: silent 45 s while live, it has stalled (as a stream
    // would). Said here, and the list reloaded when it is heard again or another tab takes the stream over.
    mine.watchdog = setInterval(() => {
      if (mine.leading || !mine.live || mine.stale || Date.now() - mine.heard <= 45000) return;
      mine.stale = true;
      liveSays({ type: 'down', short: 'Reconnecting…', note: null });
    }, 5000);
    mine.channel.postMessage({ type: 'hello', from: mine.id });
    leadOnChannel(mine, lead);
  } catch (err) {
    console.warn('live updates not shared with other tabs', err);
    stopLive();
    openStream();
  }
  return undefined;
}

/** Retry-After in ms (delta-seconds or an HTTP date), 0 when absent or unreadable. */
function retryAfterMs(res) {
  const v = res.headers.get('retry-after');
  if (!v) return 0;
  if (/^\d+$/.test(v.trim())) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : 0;
}

/**
 * What a refused stream means for the reader: the header's short state, a sentence saying why and what happens
 * next, and the least wait before trying again (null: do not try again in this session). The list itself still
 * loads through the ordinary API and refreshes every minute. A 429 names the limit that refused it in the problem's
 * `limit` member (live-streams-per-user, live-streams-per-process, rate), never read from the words of `detail`.
 */
async function liveRefusal(res) {
  const body = (await res.json().catch(() => null)) ?? {};
  const detail = typeof body.detail === 'string' ? body.detail : '';
  const limit = typeof body.limit === 'string' ? body.limit : '';
  const waitMs = retryAfterMs(res);
  const until = `the worklist still refreshes every minute`;
  if (res.status === 429 && limit === 'live-streams-per-user') {
    return { short: 'Live updates paused', waitMs, note: `Live updates are paused: too many worklist tabs or windows are open for ${state.user?.name ?? 'this user'}. They resume shortly after one is closed; until then ${until}.` };
  }
  if (res.status === 429) {
    // Without the member (a proxy's 429, say) the page does not guess which limit it was.
    const why = limit === 'live-streams-per-process' ? 'the service has as many live connections open as it allows'
      : limit === 'rate' ? 'too many requests came from this workstation'
        : 'the service asked to wait';
    return { short: 'Live updates paused', waitMs, note: `Live updates are paused: ${why}. Trying again in ${Math.max(1, Math.round(waitMs / 1000))} s; until then ${until}.` };
  }
  if (res.status === 403) {
    return { short: 'No live updates', waitMs: null, note: `Live updates are not open to this token (${detail || 'forbidden'}); ${until}.` };
  }
  if (res.status === 503) {
    return { short: 'Reconnecting…', waitMs, note: `Live updates are unavailable: the service is busy or restarting${detail ? ` (${detail})` : ''}. Trying again; until then ${until}.` };
  }
  return { short: 'Reconnecting…', waitMs, note: null };
}

/**
 * Opens the stream in this tab, which holds it for the tabs sharing it, and reads it until it ends or is stopped.
 * `gap`: events may have been missed before it opens (a reconnect, a stream taken over from another tab).
 */
async function openStream(attempt = 0, gap = attempt > 0) {
  if (live) live.abort();
  const controller = new AbortController();
  live = controller;
  let refused = null;
  // The service writes at least a heartbeat every 15 s. A stream silent for 45 s is dead without having said so (a
  // laptop that slept, a network change, a proxy that dropped it): it is given up and opened again, which reloads
  // the list, instead of showing "Live" over a list that no longer updates.
  let heard = Date.now();
  let silent = false;
  // The service not reachable at all (stopped, restarting, the network down): said below the header, since the list
  // may be out of date until the stream is back (the minute's refresh would say so only up to a minute later).
  let unreachable = false;
  const watchdog = setInterval(() => {
    if (Date.now() - heard > 45000) {
      silent = true;
      controller.abort();
    }
  }, 5000);
  try {
    const res = await fetch('/api/v1/events', { headers: { authorization: `Bearer ${state.token}`, accept: 'text/event-stream' }, signal: controller.signal })
      .catch((err) => { unreachable = !controller.signal.aborted; throw err; });
    // A token that expired or was revoked: back to sign-in, once, not a retry loop.
    if (res.status === 401) return signOut('Your session ended (the token expired or is no longer accepted): sign in again.');
    if (!res.ok || !res.body) {
      refused = await liveRefusal(res);
      throw new Error(`HTTP ${res.status}`);
    }
    // Results published while no stream was open are not replayed: what is on screen is reloaded (liveSays).
    liveSays({ type: 'live', gap });
    attempt = 0;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      heard = Date.now();
      liveSays({ type: 'beat' });
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = frame.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
        if (data) liveSays({ type: 'event', event: JSON.parse(data) });
      }
    }
  } catch (err) {
    if (controller.signal.aborted && !silent) return;
    if (!refused) console.warn('live updates interrupted', err);
  } finally {
    clearInterval(watchdog);
  }
  if (live !== controller) return;
  liveSays({
    type: 'down',
    short: refused ? refused.short : 'Reconnecting…',
    note: refused?.note ?? (unreachable ? 'Live updates are interrupted: the service did not answer, so what is shown may be out of date. Trying again; the list reloads when they reconnect.' : null),
  });
  if (refused && refused.waitMs === null) return;
  // Never sooner than the service's Retry-After: a refused tab must not ask again every second.
  const delay = Math.max(refused?.waitMs ?? 0, Math.min(30000, 1000 * 2 ** attempt));
  setTimeout(() => { if (live === controller && state.token) openStream(attempt + 1); }, delay);
}

function onEvent(event) {
  if (event.type === 'scored') {
    state.fresh.add(event.StudyInstanceUID);
    if (current?.StudyInstanceUID === event.StudyInstanceUID) refreshOpenStudy('Result updated');
    setTimeout(() => { state.fresh.delete(event.StudyInstanceUID); document.querySelector(`tr[data-uid="${CSS.escape(event.StudyInstanceUID)}"]`)?.classList.remove('fresh'); }, 15000);
    scheduleRefresh();
  } else if (event.type === 'queries') {
    loadQueries().catch(report);
  }
}

// ---------- key images ----------
// For each flagged finding with a location: its key slice rendered by the API (windowed PNG, fetched with the
// token and shown from a blob URL), the region drawn over it in SVG, and stepping through the series' slices. On a
// neighbouring slice the region is drawn dashed, as the circle where the sphere of the region cuts that slice (an
// ellipse in pixels where rows and columns are spaced differently).
const SVG = 'http://www.w3.org/2000/svg';
/** Pixels of wheel travel per slice: one notch of a mouse wheel (browsers report about 100). */
const WHEEL_NOTCH_PX = 100;
const keyViewers = [];

function keyImagePanel(uid, f) {
  const loc = f.location;
  const img = el('img', { alt: `Key slice for ${label(f.queryId)} (${loc.sequence})` });
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'region');
  svg.setAttribute('aria-hidden', 'true');
  // An ellipse in pixels: the region is round in millimetres, and rows and columns may be spaced differently.
  const mark = document.createElementNS(SVG, 'ellipse');
  svg.append(mark);
  const viewer = el('div', { class: 'viewer' }, img, svg);
  const pos = el('span', { class: 'pos muted small', 'aria-live': 'polite' });
  const status = el('span', { class: 'small' });
  const prev = el('button', { type: 'button', class: 'quiet', text: '‹ Previous', 'aria-label': 'Previous slice' });
  const next = el('button', { type: 'button', class: 'quiet', text: 'Next ›', 'aria-label': 'Next slice' });
  const home = el('button', { type: 'button', class: 'quiet', text: 'Key slice' });
  const figure = el('figure', { class: 'key-image', 'data-query': f.queryId, tabindex: '0', 'aria-label': `${label(f.queryId)} key image; arrow keys or the mouse wheel step through slices, Home and End go to the first and last, K back to the key slice`, 'aria-keyshortcuts': 'ArrowUp ArrowDown ArrowLeft ArrowRight PageUp PageDown Home End K' },
    el('figcaption', {}, el('strong', { text: label(f.queryId) }), el('span', { class: 'muted', text: ` · ${loc.sequence} · region ${Math.round(loc.radiusMm * 2)} mm` })),
    viewer,
    el('div', { class: 'stepper' }, prev, pos, next, home, status),
  );
  const v = { uid, loc, slices: null, index: null, keyIndex: null, url: null, token: 0 };
  keyViewers.push(v);

  function draw(slice) {
    const s = v.slices;
    const [cols, rows] = [s.columns, s.rows];
    svg.setAttribute('viewBox', `0 0 ${cols} ${rows}`);
    svg.setAttribute('preserveAspectRatio', 'none');
    viewer.style.aspectRatio = `${cols * s.pixelSpacing[1]} / ${rows * s.pixelSpacing[0]}`;
    const d = slice.positionMm - s.slices[v.keyIndex].positionMm;
    const r = loc.radiusMm;
    const onKey = v.index === v.keyIndex;
    const cut = Math.sqrt(Math.max(0, r * r - d * d));
    mark.setAttribute('cx', String(loc.point[0]));
    mark.setAttribute('cy', String(loc.point[1]));
    // PixelSpacing is [between rows (down), between columns (across)].
    mark.setAttribute('rx', String((onKey ? r : cut) / s.pixelSpacing[1]));
    mark.setAttribute('ry', String((onKey ? r : cut) / s.pixelSpacing[0]));
    mark.setAttribute('class', onKey ? 'key' : 'near');
    mark.style.display = onKey || cut > 0 ? '' : 'none';
    pos.textContent = `slice ${v.index + 1} of ${s.slices.length}${onKey ? ' (key slice)' : ` (${d > 0 ? '+' : ''}${d.toFixed(1)} mm)`}`;
    prev.disabled = v.index === 0;
    next.disabled = v.index === s.slices.length - 1;
    home.disabled = onKey;
  }

  async function show(index) {
    const s = v.slices;
    v.index = Math.max(0, Math.min(s.slices.length - 1, index));
    const slice = s.slices[v.index];
    const token = ++v.token;
    draw(slice);
    status.textContent = 'Loading…';
    const qs = new URLSearchParams(slice.frame ? { frame: String(slice.frame) } : {});
    const res = await fetch(`/api/v1/studies/${encodeURIComponent(uid)}/images/${encodeURIComponent(slice.SOPInstanceUID)}.png?${qs}`, { headers: { authorization: `Bearer ${state.token}` } });
    if (token !== v.token) return; // a later step already replaced this one
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      status.replaceChildren(el('span', { class: 'error', text: body.detail || `HTTP ${res.status}` }));
      return;
    }
    const url = URL.createObjectURL(await res.blob());
    if (token !== v.token) return URL.revokeObjectURL(url);
    if (v.url) URL.revokeObjectURL(v.url);
    v.url = url;
    img.src = url;
    try {
      await img.decode();
    } catch {
      if (token === v.token) status.replaceChildren(el('span', { class: 'error', text: 'The image could not be shown.' }));
      return;
    }
    if (token !== v.token) return;
    status.textContent = '';
    figure.dataset.slice = String(v.index);
  }

  async function load() {
    const qs = new URLSearchParams({ containing: loc.SOPInstanceUID });
    v.slices = await api(`/api/v1/studies/${encodeURIComponent(uid)}/series/${encodeURIComponent(loc.SeriesInstanceUID)}/slices?${qs}`);
    const at = v.slices.slices.findIndex((s) => s.SOPInstanceUID === loc.SOPInstanceUID && (s.frame ?? undefined) === (loc.frame ?? undefined));
    v.keyIndex = at >= 0 ? at : Math.min(loc.sliceIndex, v.slices.slices.length - 1);
    await show(v.keyIndex);
  }

  const step = (by) => v.slices && show(v.index + by).catch(report);
  prev.addEventListener('click', () => step(-1));
  next.addEventListener('click', () => step(1));
  home.addEventListener('click', () => v.slices && show(v.keyIndex).catch(report));
  // The mouse wheel over the image steps slices, as in a PACS viewer: one slice per notch (a trackpad's small deltas
  // are summed to a notch's worth), without scrolling the page under it.
  let wheel = 0;
  viewer.addEventListener('wheel', (e) => {
    if (!v.slices || e.ctrlKey || e.deltaY === 0) return; // Ctrl+wheel stays the browser's zoom
    e.preventDefault();
    wheel += e.deltaMode === 0 ? e.deltaY / WHEEL_NOTCH_PX : Math.sign(e.deltaY);
    const by = Math.trunc(wheel);
    if (by === 0) return;
    wheel -= by;
    step(Math.sign(by));
  }, { passive: false });
  figure.addEventListener('keydown', (e) => {
    const by = { ArrowUp: -1, ArrowLeft: -1, PageUp: -1, ArrowDown: 1, ArrowRight: 1, PageDown: 1 }[e.key];
    // Home and End: the first and last slice of the series; K: back to the key slice (as the button).
    const to = !v.slices ? null : e.key === 'Home' ? 0 : e.key === 'End' ? v.slices.slices.length - 1 : e.key === 'k' || e.key === 'K' ? v.keyIndex : null;
    if (by) {
      e.preventDefault();
      step(by);
    } else if (to !== null && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      show(to).catch(report);
    }
  });
  load().catch((err) => status.replaceChildren(el('span', { class: 'error', text: err.message })));
  return figure;
}

/** Forgets the shown key images and frees their blob URLs; a slice still loading is dropped when it arrives. */
function releaseKeyViewers() {
  for (const v of keyViewers.splice(0)) {
    v.token += 1;
    if (v.url) URL.revokeObjectURL(v.url);
    v.url = null;
  }
}

function keyImages(uid, result) {
  releaseKeyViewers();
  const located = result.findings.filter((f) => f.flagged && f.location);
  if (located.length === 0) return [];
  return [el('section', { class: 'key-images', 'aria-label': 'Key images' }, el('h3', { text: 'Where: key images' }), located.map((f) => keyImagePanel(uid, f)))];
}

// ---------- study view ----------
let current = null;
function dl(pairs) {
  return el('dl', { class: 'facts' }, pairs.map(([k, v]) => [el('dt', { text: k }), el('dd', {}, v)]));
}

function judgedWithText(r) {
  const j = r.judgedWith;
  if (!j) return 'not recorded (result written before this was kept)';
  const classes = Object.entries(j.classThresholds || {}).map(([c, t]) => `${c} threshold ${num(t, 3)}`);
  return `query set ${j.querySetVersion}${classes.length ? ` · ${classes.join(' · ')}` : ' · each query\'s own threshold'}`;
}

function findingsTable(r) {
  const seqs = [...new Set(r.findings.flatMap((f) => Object.keys(f.bySequence)))];
  const rank = { triggered: 0, flagged: 1, unflagged: 2 };
  const sorted = [...r.findings].sort((a, b) => rank[stateOf(a)] - rank[stateOf(b)] || (b.probability ?? b.similarity) - (a.probability ?? a.similarity));
  // In its own scrolling box: on a narrow window its P, threshold and per-sequence columns would otherwise push the
  // whole study view sideways, its heading and Close button with them.
  return el('div', { class: 'table-scroll' }, el('table', { class: 'findings' },
    el('caption', { class: 'sr-only', text: 'Findings' }),
    el('thead', {}, el('tr', {},
      el('th', { scope: 'col', text: 'Finding' }), el('th', { scope: 'col', text: 'Decision' }),
      el('th', { scope: 'col', class: 'num', text: 'P' }), el('th', { scope: 'col', class: 'num', text: 'Threshold' }),
      el('th', { scope: 'col', class: 'num', text: 'Similarity' }), seqs.map((s) => el('th', { scope: 'col', class: 'num', text: s })))),
    el('tbody', {}, sorted.map((f) => el('tr', { class: stateOf(f), 'data-query': f.queryId },
      el('th', { scope: 'row' }, el('span', { class: 'block', text: label(f.queryId) }), el('span', { class: 'muted small', text: f.text })),
      el('td', {},
        el('span', { class: `state-chip ${stateOf(f)} ${f.priority.toLowerCase()}`, text: stateOf(f) === 'triggered' ? `\u25B2 sets ${f.priority}` : stateOf(f) === 'flagged' ? `flagged (${f.priority})` : 'not flagged' }),
        el('span', { class: 'muted small block statement', text: statement(f) }),
        f.fallback ? el('span', { class: 'muted small block', text: `scored without ${(f.waitingFor || []).join(', ') || 'its own sequences'} (not in the study)` }) : null),
      el('td', { class: 'num', text: pct(f.probability) }),
      el('td', { class: 'num', text: f.threshold === null || f.threshold === undefined ? '–' : num(f.threshold, 3) }),
      el('td', { class: 'num', text: num(f.similarity, 3) }),
      seqs.map((s) => el('td', { class: 'num', text: num(f.bySequence[s], 3) })),
    ))),
  ));
}

// The RIS's report of the study (GET …/report, audited there), read-only: its text is put in as text, line breaks
// kept. A 404 is "none yet"; any other failure is said in its place and the study still opens.
const REPORT_STATUS = { F: 'Final report', C: 'Corrected report', P: 'Preliminary report (a final one replaces it)', X: 'Cancelled by the RIS (withdrawn; not used for calibration)' };
async function readStudyReport(uid) {
  try {
    return { report: await api(`/api/v1/studies/${encodeURIComponent(uid)}/report`) };
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { none: true };
    if (err.name === 'AbortError') throw err;
    return { error: err.message };
  }
}

function reportSection(got) {
  const r = got.report;
  const body = r
    ? [
      el('p', { class: 'muted small', 'data-role': 'report-meta' },
        `${REPORT_STATUS[r.status] || `Report (status ${r.status})`} · received `,
        el('time', { datetime: new Date(r.receivedAt).toISOString(), title: whenFull(r.receivedAt), text: time(r.receivedAt) }),
        ` (${ago(r.receivedAt)}) · ${r.source === 'hl7' ? 'from the RIS over HL7' : 'filed through the API'}`),
      el('pre', { class: 'report-text', 'data-role': 'report-text', text: r.text }),
    ]
    : got.none ? [el('p', { class: 'muted', text: 'No report yet: none has been received for this study.' })]
      : [el('p', { class: 'error', text: `The report could not be read: ${got.error}` })];
  return el('section', { class: 'report', 'data-role': 'report', 'aria-label': 'Report' }, el('h3', { text: 'Report' }), body);
}

/** Re-reads the open study (its result changed, or live updates were interrupted) and says so in the view. */
function refreshOpenStudy(why) {
  if (!current || !$('#study').open) return;
  const uid = current.StudyInstanceUID;
  openStudy(uid, `${why} at ${time(Date.now())}`).catch(report);
}

function closeStudy() {
  const dialog = $('#study');
  if (dialog.open) dialog.close();
  releaseKeyViewers();
  $('#study-title').textContent = 'Study';
  $('#study-body').replaceChildren();
  for (const id of ['#adhoc-text', '#check-text']) $(id).value = '';
  $('#adhoc-result').textContent = '';
  $('#check-result').replaceChildren();
  current = null;
}

function keepDraft() {
  if (current) state.drafts.set(current.StudyInstanceUID, { adhoc: $('#adhoc-text').value, check: $('#check-text').value });
}

async function openStudy(uid, note) {
  const [study, studyReport] = await Promise.all([api(`/api/v1/studies/${encodeURIComponent(uid)}`), readStudyReport(uid)]);
  const sameStudy = current?.StudyInstanceUID === uid;
  current = study;
  // Each study has its own drafts: another study's text is never shown here.
  const draft = state.drafts.get(uid);
  $('#adhoc-text').value = draft?.adhoc ?? '';
  $('#check-text').value = draft?.check ?? '';
  const r = study.result;
  $('#study-title').replaceChildren(r ? badge(r.priority) : '', ' ', r ? provisionalTag(r) || '' : '', ' ', `Study ${r?.AccessionNumber || ''}`);
  const version = r?.resultVersion ?? 1;
  const parts = [
    dl([
      ['Status', statusFact(study)],
      ['StudyInstanceUID', el('code', { text: uid })],
      ...(study.progress.instances !== undefined ? [['Instances', String(study.progress.instances)]] : []),
      ...(study.reason ? [['Reason', study.reason]] : []),
      // Scored on a first part, then the whole study failed: the earlier result stays (a STAT is not withdrawn).
      ...(r && (study.status === 'failed' || study.status === 'unsupported') ? [['Result', `scored before the study ${study.status}: the instances that arrived afterwards are not in it`]] : []),
      ...(r ? [
        ['Received', `${whenFull(r.receivedAt)} (${ago(r.receivedAt)})`],
        ['Scored', `${whenFull(r.scoredAt)} · ${Math.round(r.timingsMs.total)} ms`],
        ['Result', version > 1 ? `version ${version}, a correction of version ${version - 1}` : 'version 1'],
        ...(r.provisional ? [['Provisional', `waiting for ${r.provisional.waitingFor.join(', ')} until ${time(r.provisional.until)}: findings scored without them do not raise the priority`]] : []),
        ...(r.incomplete ? [['Final without', `${r.incomplete.missing.join(', ')}: the wait ended ${time(r.incomplete.waitedUntil)}; judged on what the study has`]] : []),
        ['Decision', `${r.priority}${r.priorityProbability !== null && r.priorityProbability !== undefined ? ` at P ${pct(r.priorityProbability)}` : ''} · flagged when P \u2265 threshold`],
        ['Abnormal', pct(r.abnormalProbability)],
        ['Confidence', `${Math.round(r.confidence * 100)}% of the model's sequences`],
        ['Sequences', sequencesCell(r)],
        ...seriesNotes(r),
        ['Model', `${r.model.bundleId} ${r.model.version} on ${r.provider}`],
        ['Judged with', judgedWithText(r)],
      ] : []),
    ]),
  ];
  if (r) parts.push(findingsTable(r));
  parts.push(reportSection(studyReport));
  if (r) parts.push(...keyImages(uid, r));
  if (note && sameStudy) parts.unshift(el('p', { class: 'updated', role: 'status', text: `${note}: showing result version ${version}.` }));
  $('#study-body').replaceChildren(...parts);
  $('#adhoc-result').textContent = '';
  $('#check-result').replaceChildren();
  for (const f of ['#adhoc-form', '#check-form']) for (const c of $(f).elements) c.disabled = !r;
  const dialog = $('#study');
  if (!dialog.open) dialog.showModal();
  setTitle(r ? `${r.priority} study` : 'Study');
}

async function adhocScore(event) {
  event.preventDefault();
  const text = $('#adhoc-text').value.trim();
  const res = await api(`/api/v1/studies/${encodeURIComponent(current.StudyInstanceUID)}/score`, { method: 'POST', body: JSON.stringify({ text }) });
  const bySeq = Object.entries(res.bySequence).map(([s, v]) => `${s} ${num(v, 3)}`).join(' · ');
  $('#adhoc-result').textContent = `Similarity ${num(res.similarity, 3)}${bySeq ? ` (${bySeq})` : ''}${res.warning ? `. ${res.warning}` : ''}`;
}

async function checkDraft(event) {
  event.preventDefault();
  const report = $('#check-text').value;
  const res = await api(`/api/v1/studies/${encodeURIComponent(current.StudyInstanceUID)}/report-check`, { method: 'POST', body: JSON.stringify({ report }) });
  const out = [];
  // Sentences not read (a report over 200 sentences) and sentences whose query cannot be judged on this study.
  if (res.warnings.length) out.push(el('ul', { class: 'issues', 'data-role': 'check-warnings' }, res.warnings.map((w) => el('li', { class: 'warning', text: w }))));
  // The report sentence the check read as denying the finding (or the closest one), so the reader can judge it.
  const because = (g) => (g.closestSentence === null || g.closestSentence === undefined ? null
    : el('span', { class: 'muted small block' }, 'closest sentence: ', el('q', { text: res.sentences[g.closestSentence]?.text ?? '' }), ` (similarity ${num(g.closestSimilarity, 2)})`));
  const gap = (g) => el('li', {}, badge(g.priority), ' ', el('strong', { text: label(g.queryId) }), el('span', { class: 'muted', text: ` (images: ${g.probability !== null ? `P ${pct(g.probability)}` : `similarity ${num(g.similarity, 3)}, no probability`})` }), because(g));
  if (res.notMentioned.length) out.push(el('h4', { text: 'Suggested by the images, not in the report' }), el('ul', { class: 'issues' }, res.notMentioned.map(gap)));
  if (res.contradicted.length) out.push(el('h4', { text: 'Suggested by the images, stated absent in the report' }), el('ul', { class: 'issues' }, res.contradicted.map(gap)));
  if (res.unsupported.length) {
    out.push(el('h4', { text: 'Stated in the report, not supported by the images' }), el('ul', { class: 'issues' }, res.unsupported.map((i) => {
      const s = res.sentences[i];
      // The threshold is a probability: the sentence's probability under the query's calibration is what it is
      // compared with, not the raw image score.
      const p = s.probability !== null && s.probability !== undefined ? `P ${p3(s.probability)} < threshold ${num(s.threshold, 3)}` : `image score ${num(s.imageScore, 3)}, no probability`;
      return el('li', {}, el('q', { text: s.text }), el('span', { class: 'muted', text: ` (${label(s.matchedQueryId)}: ${p})` }));
    })));
  }
  const discrepancies = res.notMentioned.length + res.contradicted.length + res.unsupported.length;
  if (discrepancies === 0) out.push(el('p', { class: 'ok', text: `No discrepancy found in ${res.sentences.length} sentences${res.truncated ? ` read (of ${res.truncated.sentences})` : ''}.` }));
  $('#check-result').replaceChildren(...out);
  $('#check-result').scrollIntoView({ block: 'nearest' });
}

// ---------- search ----------
// "More results" asks for the next page of the search shown (state.search.q), not of whatever the box holds now: a
// text edited since would otherwise append another search's studies under the first one's.
// The results shown are held (state.search.items) and the list is built from them: showSearch() writes it again each
// minute, as the worklist is refreshed, so a time on screen across a change of summer time says its zone as time()
// writes it now, without asking the search again.
let searchToken = 0;
async function runSearch(offset = 0, q = $('#search-q').value.trim()) {
  const warning = $('#search-warning');
  // Only the last search asked is shown: an earlier one answered later must not replace it.
  const token = ++searchToken;
  // Spaces pass the box's minlength but are no search: said beside the box, not as the API's schema error.
  if (q.length < 3) {
    warning.textContent = 'Describe the finding in at least 3 characters.';
    warning.hidden = false;
    warning.classList.add('refused');
    dropSearch();
    $('#search-q').focus();
    return;
  }
  const res = await api(`/api/v1/search?${new URLSearchParams({ q, limit: '20', offset: String(offset) })}`);
  if (token !== searchToken) return;
  warning.textContent = res.warning || '';
  warning.hidden = !res.warning;
  warning.classList.toggle('refused', res.language.verdict === 'refused');
  const items = offset === 0 ? res.items : [...(state.search?.items ?? []), ...res.items];
  state.search = { q, next: offset + res.items.length, total: res.total, refused: res.language.verdict === 'refused', items };
  $('#search-more').hidden = state.search.next >= res.total;
  showSearch();
}

function searchItem(i) {
  return el('li', { 'data-uid': i.StudyInstanceUID },
    el('button', { type: 'button', class: 'result', onclick: () => openStudy(i.StudyInstanceUID).catch(report) },
      badge(i.priority), el('span', { text: i.AccessionNumber || i.StudyInstanceUID }), el('time', { class: 'muted', datetime: new Date(i.receivedAt).toISOString(), title: whenFull(i.receivedAt), text: time(i.receivedAt) }), el('span', { class: 'score', title: `search score, not a probability: cos(study, text) ${num(i.similarity, 3)} minus the normal-study sentence's; below 0 the study looks more like a normal study than like the text`, text: `score ${i.score > 0 ? '+' : i.score < 0 ? '\u2212' : ''}${num(Math.abs(i.score), 3)}` })),
  );
}

/** No search on screen: its results go, with "More results" and what they were of. */
function dropSearch() {
  state.search = null;
  $('#search-results').replaceChildren();
  $('#search-more').hidden = true;
}

/** The search's results from those held; the focus stays on the result it was on. */
function showSearch() {
  if (!state.search) return;
  const { items, total, refused } = state.search;
  replaceRows($('#search-results'), total === 0 && !refused ? [el('li', { class: 'muted', text: 'No scored studies to search yet.' })] : items.map(searchItem));
}

// ---------- triage queries ----------
let editing = null;
const STATE_LABEL = { calibrated: 'calibrated', uncalibrated: 'not calibrated', 'stale-text': 'not calibrated (text changed)', 'stale-bundle': 'not calibrated (other model bundle)' };

function calibrationCell(q) {
  const c = q.calibration;
  const parts = [el('span', { class: `cal ${q.calibrationState}`, text: STATE_LABEL[q.calibrationState] })];
  if (c && q.calibrationState === 'calibrated') {
    const on = c.method === 'report-pseudo-labels' ? `calibrated on ${c.studies} past studies of this site` : `the bundle's calibration cohort${c.studies ? ` (${c.studies} studies)` : ''}`;
    // Judged by its class's study-level threshold, its own estimate describes a threshold that does not flag.
    const estimate = q.judgedBy === 'class' ? `at its own threshold (not the one in use) sensitivity ${rate(c.estimated.sensitivity)}, specificity ${rate(c.estimated.specificity)}` : `estimated sensitivity ${rate(c.estimated.sensitivity)}, specificity ${rate(c.estimated.specificity)}`;
    parts.push(el('span', { class: 'muted small block', text: `${on}; ${estimate}; ${c.calibratedAt ? whenFull(Date.parse(c.calibratedAt)) : ''}` }));
  }
  if (q.warning) parts.push(el('span', { class: 'warning small block', role: 'note', text: q.warning }));
  return parts;
}

function operatingPointsTable(rows, inUse, caption, fpLabel) {
  const marked = rows.findIndex((r) => inUse !== null && Math.abs(r.threshold - inUse) < 1e-12);
  return el('table', { class: 'points' },
    el('caption', { text: caption }),
    el('thead', {}, el('tr', {}, el('th', { scope: 'col', class: 'num', text: 'Sensitivity' }), el('th', { scope: 'col', class: 'num', text: fpLabel }), el('th', { scope: 'col', class: 'num', text: 'Threshold' }), el('th', { scope: 'col', text: '' }))),
    el('tbody', {}, rows.map((r, i) => el('tr', { class: i === marked ? 'in-use' : null },
      el('td', { class: 'num', text: rate(r.sensitivity) }), el('td', { class: 'num', text: rate(r.falsePositiveRate) }), el('td', { class: 'num', text: num(r.threshold, 3) }),
      el('td', { text: i === marked ? '\u25C0 in use' : '' }),
    ))),
  );
}

function queryRow(q, admin, disabled) {
  const own = q.calibration && q.calibrationState === 'calibrated' ? q.calibration.operatingPoints : [];
  const mark = q.judgedBy === 'query' ? q.thresholdInUse : null;
  const actions = [];
  if (admin && !disabled) {
    actions.push(el('button', { type: 'button', class: 'quiet', text: 'Edit', 'aria-label': `Edit ${q.id}`, onclick: () => editQuery(q) }));
    if (q.origin === 'site' && q.bundleDefault) actions.push(el('button', { type: 'button', class: 'quiet', text: 'Revert to bundle', 'aria-label': `Revert ${q.id} to the bundle's default`, onclick: () => restoreQuery(q).catch(report) }));
    if (q.origin === 'site' && q.calibrationState !== 'calibrated') actions.push(el('button', { type: 'button', class: 'quiet', text: 'Calibrate', 'aria-label': `Calibrate ${q.id} from reports`, onclick: () => calibrateQuery(q).catch(report) }));
    actions.push(el('button', { type: 'button', class: 'quiet danger', text: q.origin === 'site' ? 'Delete' : 'Turn off', 'aria-label': `${q.origin === 'site' ? 'Delete' : 'Turn off'} ${q.id}`, onclick: () => deleteQuery(q) }));
  }
  if (admin && disabled) actions.push(el('button', { type: 'button', class: 'quiet', text: 'Turn on', 'aria-label': `Turn on ${q.id}`, onclick: () => restoreQuery(q).catch(report) }));
  return el('tr', { 'data-id': q.id, class: disabled ? 'disabled' : q.warning ? 'cannot-flag' : null },
    el('td', {}, el('code', { text: q.id }), el('span', { class: 'muted small block', text: q.origin === 'site' ? (q.bundleDefault ? 'site edit of a bundle query' : 'site query') : 'bundle default' })),
    el('td', {}, el('span', { class: 'block', text: q.text }), q.negativeText ? el('span', { class: 'muted small block', text: `versus: ${q.negativeText}` }) : null,
      q.sequences ? el('span', { class: 'muted small', text: `on: ${q.sequences.join(', ')}` }) : null,
      own.length ? el('details', { class: 'points' }, el('summary', { text: 'Operating points' }), operatingPointsTable(
        own,
        // A query judged by its class's threshold uses none of its own rows: nothing is marked in use here.
        q.judgedBy === 'class' ? null : mark ?? q.calibration.threshold,
        `${q.id}: sensitivity against false-positive rate on ${q.calibration.method === 'report-pseudo-labels' ? 'pseudo-labelled past studies' : 'the calibration cohort'}${q.judgedBy === 'class' ? `; studies are judged with the ${q.priority} class threshold (the study-level table above), not with these` : ''}`,
        'False-positive rate')) : null),
    el('td', {}, badge(q.priority)),
    el('td', {}, calibrationCell(q)),
    el('td', { class: 'num' }, el('span', { text: q.thresholdInUse === null ? '–' : num(q.thresholdInUse, 3) }),
      q.judgedBy ? el('span', { class: 'muted small block', text: q.judgedBy === 'class' ? `${q.priority} class threshold${q.judgedAtSensitivity !== null ? `, for ${rate(q.judgedAtSensitivity)} study-level sensitivity` : ''}` : `own, for ${rate(q.targetSensitivity)} sensitivity` }) : null),
    el('td', { class: 'actions' }, actions),
  );
}

async function loadDecision() {
  const box = $('#decision');
  try {
    const d = await api('/api/v1/decision');
    const parts = [el('p', { class: 'muted small', text: d.rule })];
    for (const [cls, c] of Object.entries(d.classes)) {
      parts.push(operatingPointsTable(c.table, c.thresholdInUse,
        `${cls}: sensitivity for studies with a ${cls} finding against false-${cls} rate (${c.positives} with, ${c.negatives} without, calibration cohort); ${c.chosenSensitivity !== null ? `the site chose ${rate(c.chosenSensitivity)}` : `bundle default ${rate(c.targetSensitivity)}`}`,
        `False-${cls} rate`));
    }
    for (const n of d.notes) parts.push(el('p', { class: 'muted small', text: n }));
    box.replaceChildren(...parts);
  } catch (err) {
    box.replaceChildren(el('p', { class: 'muted', text: `Decision tables unavailable: ${err.message}` }));
  }
}

async function loadQueries() {
  const res = await api('/api/v1/queries');
  state.queries = res.queries;
  $('#queries-version').textContent = `version ${res.version}${res.bundle ? ` · bundle ${res.bundle.bundleId} ${res.bundle.version}` : ''}`;
  const admin = state.user?.role === 'admin';
  const warnings = $('#queries-warnings');
  warnings.replaceChildren(...[...res.warnings, ...res.problems].map((w) => el('li', { text: w })));
  warnings.hidden = res.warnings.length + res.problems.length === 0;
  $('#queries tbody').replaceChildren(...res.queries.map((q) => queryRow(q, admin, false)));
  $('#queries-disabled').hidden = res.disabled.length === 0;
  $('#queries-disabled tbody').replaceChildren(...res.disabled.map((q) => queryRow(q, admin, true)));
  $('#query-form').hidden = !admin;
  const filter = $('#flagged-filter');
  const chosen = filter.value;
  filter.replaceChildren(el('option', { value: '', text: 'Any' }), ...res.queries.map((q) => el('option', { value: q.id, text: label(q.id) })));
  filter.value = res.queries.some((q) => q.id === chosen) ? chosen : '';
  if (state.view === 'queries') loadDecision().catch(report);
}

function editQuery(q) {
  editing = q;
  const form = $('#query-form');
  form.elements.id.value = q.id;
  form.elements.id.readOnly = true;
  form.elements.text.value = q.text;
  form.elements.negativeText.value = q.negativeText || '';
  form.elements.priority.value = q.priority;
  // A query judged by its class's threshold does not use its own target: the field stays empty (the edit keeps it),
  // and says the class target it is judged at; a value typed here gives the edited query its own threshold.
  const classJudged = q.judgedBy === 'class';
  form.elements.targetSensitivity.value = classJudged ? '' : String(q.targetSensitivity);
  form.elements.targetSensitivity.placeholder = classJudged && q.judgedAtSensitivity !== null ? `${q.priority} class: ${q.judgedAtSensitivity}` : '0.95';
  form.elements.targetSensitivity.title = classJudged ? `Judged by the ${q.priority} class threshold, chosen for ${rate(q.judgedAtSensitivity)} study-level sensitivity; leave empty to keep it, or set one to give this query its own threshold` : '';
  $('#query-form-title').textContent = `Edit ${q.id}`;
  $('#query-save').textContent = 'Save changes';
  $('#query-cancel').hidden = false;
  $('#query-result').replaceChildren();
  form.elements.text.focus();
}

function resetQueryForm() {
  editing = null;
  const form = $('#query-form');
  form.reset();
  form.elements.id.readOnly = false;
  form.elements.targetSensitivity.placeholder = '0.95';
  form.elements.targetSensitivity.title = '';
  $('#query-form-title').textContent = 'Add a query';
  $('#query-save').textContent = 'Add query';
  $('#query-cancel').hidden = true;
  $('#query-error').textContent = '';
}

/** What the service said about a saved query: how well the model knows its words, and its calibration. */
function saveOutcome(out) {
  const notes = [];
  for (const [field, check] of Object.entries(out.language)) {
    if (check && check.verdict !== 'ok') for (const r of check.reasons) notes.push(el('li', { class: 'warning', text: `${field === 'text' ? 'Sentence' : 'Contrast sentence'}: ${r}` }));
    if (check && check.closeness !== null) notes.push(el('li', { class: 'muted', text: `${field === 'text' ? 'Sentence' : 'Contrast sentence'}: closest to the model's language at similarity ${num(check.closeness, 2)}` }));
  }
  notes.push(el('li', { class: out.calibration.state === 'calibrated' ? 'ok' : 'warning', text: `Calibration: ${STATE_LABEL[out.calibration.state]}: ${out.calibration.detail}` }));
  return el('ul', { class: 'issues' }, notes);
}

async function saveQuery(event) {
  event.preventDefault();
  const form = event.target;
  const body = { text: form.elements.text.value.trim(), priority: form.elements.priority.value };
  if (form.elements.negativeText.value.trim()) body.negativeText = form.elements.negativeText.value.trim();
  if (form.elements.targetSensitivity.value) body.targetSensitivity = Number(form.elements.targetSensitivity.value);
  // Editing keeps the sequences the finding is read on; the service decides whether the calibration still applies.
  if (editing?.sequences) body.sequences = editing.sequences;
  // The outcome of an earlier save must not stand beside this one's error.
  $('#query-result').replaceChildren();
  $('#query-error').textContent = '';
  try {
    const out = editing
      ? await api(`/api/v1/queries/${encodeURIComponent(editing.id)}`, { method: 'PUT', body: JSON.stringify(body) })
      : await api('/api/v1/queries', { method: 'POST', body: JSON.stringify({ id: form.elements.id.value.trim(), ...body }) });
    resetQueryForm();
    $('#query-result').replaceChildren(el('p', { text: `${out.query.id}: ${out.action.replace('-', ' ')}.` }), saveOutcome(out));
    await loadQueries();
  } catch (err) {
    $('#query-error').textContent = err.message;
  }
}

async function deleteQuery(q) {
  const what = q.origin === 'site'
    ? (q.bundleDefault ? `Delete the site's version of "${q.id}"? The bundle's default comes back.` : `Delete the triage query "${q.id}"? Studies scored from now on will not be checked for it.`)
    : `Turn off the bundle's query "${q.id}"? Studies scored from now on will not be checked for it until it is turned on again.`;
  if (!confirm(what)) return;
  await api(`/api/v1/queries/${encodeURIComponent(q.id)}`, { method: 'DELETE' });
  await loadQueries();
}

async function restoreQuery(q) {
  await api(`/api/v1/queries/${encodeURIComponent(q.id)}/restore`, { method: 'POST' });
  await loadQueries();
}

async function calibrateQuery(q) {
  const out = await api(`/api/v1/queries/${encodeURIComponent(q.id)}/calibrate`, { method: 'POST' });
  $('#query-result').replaceChildren(el('p', { text: `${q.id}: ${STATE_LABEL[out.calibration.state]}: ${out.calibration.detail}` }));
  await loadQueries();
}

// ---------- wiring ----------
let noticeTimer = null;
function report(err) {
  if (err instanceof ApiError && err.status === 401) return;
  console.error(err);
  const node = $('#notice');
  node.textContent = err.message;
  node.hidden = false;
  clearTimeout(noticeTimer);
  // The service unreachable or unavailable: the notice stays until a refresh succeeds, so a list that may be out of
  // date is never shown without saying so; other errors fade after 10 s.
  state.down = err instanceof ApiError && (err.status === 0 || err.status === 502 || err.status === 503 || err.status === 504);
  if (!state.down) noticeTimer = setTimeout(() => { node.hidden = true; }, 10000);
}

const guard = (fn) => (event) => fn(event).catch(report);

$('#login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('#token').value.trim();
  // Once in, focus goes to the worklist's heading (the sign-in form it was on is gone).
  signIn(token).then(() => {
    const title = $('#worklist-title');
    title.setAttribute('tabindex', '-1');
    title.focus();
  }, (err) => {
    state.token = null;
    $('#login-error').textContent = err.status === 401 || err.message === 'not signed in' ? 'That token was not accepted.' : err.message;
    show('login');
  });
});
$('#logout').addEventListener('click', () => signOut(''));
for (const tab of document.querySelectorAll('.tab')) {
  tab.addEventListener('click', () => {
    show(tab.dataset.view);
    if (tab.dataset.view === 'worklist') refreshWorklist().catch(report);
    if (tab.dataset.view === 'queries') loadQueries().catch(report);
    if (tab.dataset.view === 'search') {
      showSearch();
      $('#search-q').focus();
    }
  });
}
$('#filters').addEventListener('change', () => { shown = PAGE; refreshWorklist().catch(report); });
$('#worklist-more').addEventListener('click', () => { shown += PAGE; refreshWorklist().catch(report); });
$('#study-close').addEventListener('click', () => $('#study').close());
// Closed by its button, Escape or a sign-out: the title is the view's again, and the key images' blobs are freed.
$('#study').addEventListener('close', () => {
  releaseKeyViewers();
  setTitle(TITLES[state.token ? state.view : 'login']);
  // The browser gives focus back to the control that opened the study; when a live refresh rebuilt the list
  // meanwhile, that control is gone and the keyboard would start again at the top of the page: the study's row.
  const uid = current?.StudyInstanceUID;
  const at = document.activeElement;
  const lost = !at || at === document.body || $('#study').contains(at);
  if (uid && lost) document.querySelector(`.view:not([hidden]) tr[data-uid="${CSS.escape(uid)}"] button`)?.focus();
});
for (const id of ['#adhoc-text', '#check-text']) $(id).addEventListener('input', keepDraft);
// Inside the modal dialog, errors are shown where the radiologist is looking, not behind the backdrop.
const inline = (fn, target) => (event) => fn(event).catch((err) => {
  if (err instanceof ApiError && err.status === 401) return;
  $(target).replaceChildren(el('span', { class: 'error', text: err.message }));
});
$('#adhoc-form').addEventListener('submit', inline(adhocScore, '#adhoc-result'));
$('#check-form').addEventListener('submit', inline(checkDraft, '#check-result'));
$('#search-form').addEventListener('submit', guard((e) => { e.preventDefault(); return runSearch(0); }));
$('#search-more').addEventListener('click', () => state.search && runSearch(state.search.next, state.search.q).catch(report));
$('#query-form').addEventListener('submit', saveQuery);
$('#query-cancel').addEventListener('click', resetQueryForm);
// Relative times ("12 min ago") stay true on a screen left open all shift, and times follow a change of summer time:
// the worklist is asked again, search results are written again from those held. Not under an open study, whose
// closing gives focus back to the row that opened it.
setInterval(() => {
  if (!state.user || $('#study').open) return;
  if (state.view === 'worklist') refreshWorklist().catch(report);
  if (state.view === 'search') showSearch();
}, 60000);
// A tab brought back after it slept (a background tab's timers are throttled, a laptop was closed) shows what it
// had: the worklist refreshed at once when that is more than a minute old, search results written again.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState !== 'visible' || !state.user || $('#study').open) return;
  if (state.view === 'search') showSearch();
  if (state.view === 'worklist' && Date.now() - (state.refreshedAt ?? 0) > 60000) refreshWorklist().catch(report);
});

// A tab that closes or goes into the back-forward cache gives up at once the stream it holds for other tabs (it says
// 'bye' on the channel), and takes its part again when it comes back from that cache.
addEventListener('pagehide', () => stopLive());
addEventListener('pageshow', (e) => { if (e.persisted && state.user) startLive(); });

// At load only a refused token (401: api() signs out) ends the session; an unreachable or busy service keeps it and
// tries again.
function resume(delayMs = 0) {
  setTimeout(() => signIn(state.token).catch((err) => {
    if (!state.token || (err instanceof ApiError && err.status === 401)) return;
    show('login');
    $('#login-error').textContent = `The service did not answer (${err.message}); trying again in 10 s.`;
    resume(10000);
  }), delayMs);
}
if (state.token) resume();
else show('login');
