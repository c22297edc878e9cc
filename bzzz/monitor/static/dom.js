// DOM helpers. Everything that comes from the API (task titles, log text, node names) is
// untrusted: it only ever becomes text nodes or checked attribute values, never markup.

/** h('a', {href, class: 'x', title}, 'text', child, ...): an element. Strings and numbers
 *  become text nodes; null/undefined/false children are skipped; arrays are flattened. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (/^on/i.test(name)) throw new Error(`h(): event attribute ${name} refused`);
    if (name === 'dataset') Object.assign(el.dataset, value);
    else if (name === 'href') {
      const safe = safeHref(value);
      if (safe !== null) el.setAttribute('href', safe);
    } else el.setAttribute(name, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** An href that is a local route (#...) or an http(s) URL; anything else (javascript:,
 *  data:, ...) is refused with null. */
export function safeHref(value) {
  if (typeof value !== 'string' || value === '') return null;
  if (value.startsWith('#')) return value;
  try {
    const url = new URL(value, location.href);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
  } catch (_) {
    return null;
  }
}

/** A link to an external page (issue, PR) when the URL is safe, else plain text. */
export function extLink(url, text) {
  const safe = safeHref(url);
  if (safe === null || safe.startsWith('#')) return h('span', {}, text);
  return h('a', {href: safe, target: '_blank', rel: 'noopener noreferrer'}, text);
}

/** Replace every child of el. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function shortPeer(peer) {
  if (typeof peer !== 'string') return '';
  return peer.length > 16 ? `${peer.slice(0, 8)}…${peer.slice(-6)}` : peer;
}

/** "3 s ago", "4 min ago", "2 h ago", "5 d ago" (from unix seconds). */
export function ago(ts, now = Date.now() / 1000) {
  if (typeof ts !== 'number' || !isFinite(ts)) return '—';
  const d = Math.max(0, now - ts);
  if (d < 60) return `${Math.floor(d)} s ago`;
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return `${Math.floor(d / 86400)} d ago`;
}

export function isoTime(ts) {
  if (typeof ts !== 'number' || !isFinite(ts)) return '';
  return new Date(ts * 1000).toISOString();
}

/** A <time> element whose relative text the page's ticker keeps current. */
export function relTime(ts) {
  return h('time', {class: 'rel', datetime: isoTime(ts), title: isoTime(ts),
                    dataset: {ts: String(ts)}}, ago(ts));
}

export function tickRelTimes(root = document) {
  const now = Date.now() / 1000;
  for (const el of root.querySelectorAll('time.rel')) {
    const text = ago(Number(el.dataset.ts), now);
    if (el.textContent !== text) el.textContent = text;
  }
}

/** fn debounced by ms. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export const STATE_LABELS = {
  waiting: 'waiting', claimed: 'claimed', running: 'running', needs_input: 'needs input',
  needs_approval: 'needs approval', review: 'in review', done: 'done', failed: 'failed',
  cancelled: 'cancelled',
};

export function badge(kind, value, label) {
  return h('span', {class: `badge ${kind}-${String(value).replace(/[^a-z_]/gi, '')}`,
                    dataset: {[kind]: String(value)}}, label ?? String(value));
}
