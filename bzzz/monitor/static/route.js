// The view and its filters, kept in the URL's hash so that a link reproduces the view.

/** The route in the hash: {view, parts, params}. */
export function parseRoute(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, '');
  const cut = raw.indexOf('?');
  const path = cut < 0 ? raw : raw.slice(0, cut);
  const search = cut < 0 ? '' : raw.slice(cut + 1);
  const parts = path.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch (_) {
      return p;
    }
  });
  const view = ['mesh', 'tasks', 'task', 'log', 'new'].includes(parts[0]) ? parts[0] : 'mesh';
  return {view, parts: parts.slice(1), params: new URLSearchParams(search)};
}

export function routeHash(view, parts = [], params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const path = [view, ...parts.map((p) => encodeURIComponent(String(p)))].join('/');
  const s = q.toString();
  return `#/${path}${s ? `?${s}` : ''}`;
}

/** Change the URL without adding history (filters as they are typed). */
export function replaceRoute(hash) {
  if (location.hash !== hash) history.replaceState(null, '', hash);
}
