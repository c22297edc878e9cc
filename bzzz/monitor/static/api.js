// The monitor's HTTP API (docs/monitor-api.md), same origin only.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

async function errorOf(resp) {
  let message = `${resp.status} ${resp.statusText}`.trim();
  try {
    const doc = await resp.json();
    if (doc && typeof doc.error === 'string') message = `${resp.status}: ${doc.error}`;
  } catch (_) { /* not JSON: keep the status line */ }
  return new ApiError(resp.status, message);
}

// A monitor listening beyond loopback wants its viewer token (monitor.viewer_token_file) for
// every read: asked for once, kept in this browser's localStorage, sent as Authorization:
// Bearer, and as the bzzz_viewer cookie (path /api/v1/events, SameSite=Strict) for the event
// stream, since EventSource sends no headers.
const VIEWER = 'bzzz.monitor.viewer';

export function viewerToken() {
  try {
    return localStorage.getItem(VIEWER) || '';
  } catch (_) {
    return '';
  }
}

function setCookie(token) {
  document.cookie = token
    ? `bzzz_viewer=${encodeURIComponent(token)}; path=/api/v1/events; SameSite=Strict`
    : 'bzzz_viewer=; path=/api/v1/events; SameSite=Strict; max-age=0';
}

export function setViewerToken(token) {
  try {
    if (token) localStorage.setItem(VIEWER, token);
    else localStorage.removeItem(VIEWER);
  } catch (_) { /* storage disabled: asked for again on the next load */ }
  setCookie(token);
}

let asking = null;

/** One question for every read that was refused at once; true when a token was given. */
function askViewer() {
  if (!asking) {
    asking = Promise.resolve().then(() => {
      const given = window.prompt('This monitor needs its viewer token to show the mesh ' +
                                  '(monitor.viewer_token_file):');
      const token = (given || '').trim();
      if (token) setViewerToken(token);
      return Boolean(token);
    }).finally(() => { setTimeout(() => { asking = null; }, 0); });
  }
  return asking;
}

export function readHeaders() {
  const token = viewerToken();
  return token ? {accept: 'application/json', authorization: `Bearer ${token}`}
    : {accept: 'application/json'};
}

export async function getJSON(path, params, signal) {
  for (let tries = 0; ; tries += 1) {
    const resp = await fetch(path + query(params), {headers: readHeaders(), signal,
                                                    cache: 'no-store'});
    if (resp.status === 401 && tries < 3 && await askViewer()) continue;
    if (!resp.ok) throw await errorOf(resp);
    return resp.json();
  }
}

const seg = encodeURIComponent;

export const api = {
  mesh: (signal) => getJSON('/api/v1/mesh', null, signal),
  tasks: (filters, signal) => getJSON('/api/v1/tasks', filters, signal),
  task: (repo, issue, signal) => {
    const [owner, name] = String(repo).split('/');
    return getJSON(`/api/v1/tasks/${seg(owner)}/${seg(name)}/${seg(issue)}`, null, signal);
  },
  log: (peer, params, signal) => getJSON(`/api/v1/agents/${seg(peer)}/log`, params, signal),
  async createTask(body, token) {
    const resp = await fetch('/api/v1/tasks', {
      method: 'POST', cache: 'no-store',
      headers: {'content-type': 'application/json', authorization: `Bearer ${token}`},
      body: JSON.stringify(body),
    });
    if (!resp.ok) throw await errorOf(resp);
    return resp.json();
  },
};

/** Follow /api/v1/events: handlers.mesh(doc), handlers.entry(doc), handlers.status(text)
 *  ('live' | 'reconnecting'), handlers.reopened() after a reconnect. EventSource retries by
 *  itself; when it gives up (the server answered with an error), a new one is opened after a
 *  growing delay. */
export function follow(handlers) {
  let source = null;
  let delay = 500;
  let everOpened = false;
  let lost = false;

  const parse = (ev) => {
    try {
      return JSON.parse(ev.data);
    } catch (_) {
      return null;
    }
  };

  function open() {
    setCookie(viewerToken());
    source = new EventSource('/api/v1/events');
    source.addEventListener('open', () => {
      delay = 500;
      handlers.status?.('live');
      if (everOpened && lost) handlers.reopened?.();
      everOpened = true;
      lost = false;
    });
    source.addEventListener('error', () => {
      lost = true;
      handlers.status?.('reconnecting');
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 15000);
      }
    });
    source.addEventListener('mesh', (ev) => {
      const doc = parse(ev);
      if (doc) handlers.mesh?.(doc);
    });
    source.addEventListener('entry', (ev) => {
      const doc = parse(ev);
      if (doc) handlers.entry?.(doc);
    });
  }

  open();
  return {close: () => source?.close()};
}
