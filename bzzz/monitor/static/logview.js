// One agent's log, newest first, paged by the API (never everything at once), with a text
// filter, the entry types, and the log's verification state.

import {api} from './api.js';
import {h, fill, relTime, badge, shortPeer, debounce} from './dom.js';
import {routeHash, replaceRoute} from './route.js';
import {category} from './timeline.js';

const PAGE = 200;
const MARK = {verified: '✓ verified', syncing: '↻ syncing', frozen: '❄ frozen — conflicting log',
              failing: '✗ failing verification'};

export class LogView {
  constructor(app) {
    this.app = app;
    this.form = document.getElementById('log-filters');
    this.head = document.getElementById('log-head');
    this.tbody = document.querySelector('#log tbody');
    this.older = document.getElementById('log-older');
    this.peer = '';
    this.entries = [];
    this.generation = 0;
    this.form.addEventListener('submit', (ev) => ev.preventDefault());
    this.form.elements.peer.addEventListener('change', () => {
      location.hash = routeHash('log', [this.form.elements.peer.value], this.params());
    });
    this.form.elements.type.addEventListener('change', () => this.filtersChanged());
    this.form.elements.q.addEventListener('input', debounce(() => this.filtersChanged(), 250));
    this.older.addEventListener('click', () => this.load(true));
  }

  params() {
    const out = {};
    const q = this.form.elements.q.value.trim();
    const type = this.form.elements.type.value;
    if (q) out.q = q;
    if (type) out.type = type;
    return out;
  }

  filtersChanged() {
    replaceRoute(routeHash('log', this.peer ? [this.peer] : [], this.params()));
    this.load(false);
  }

  agentsChanged(agents) {
    const select = this.form.elements.peer;
    const options = agents.map((a) => h('option', {value: String(a.peer_id)},
      `${a.node_id ?? ''} (${shortPeer(String(a.peer_id))})${a.state === 'gone' ? ' — gone' : ''}`));
    fill(select, options);
    this.ensurePeerOption();
    if (this.peer && this.app.route.view === 'log') this.renderHead();
  }

  ensurePeerOption() {
    const select = this.form.elements.peer;
    if (this.peer && ![...select.options].some((o) => o.value === this.peer)) {
      select.appendChild(h('option', {value: this.peer}, shortPeer(this.peer)));
    }
    select.value = this.peer;
  }

  async open(route) {
    const agents = this.app.mesh?.agents || [];
    let peer = route.parts[0] || '';
    if (!peer && agents.length) {
      peer = String(agents[0].peer_id);
      replaceRoute(routeHash('log', [peer], Object.fromEntries(route.params)));
    }
    this.peer = peer;
    this.ensurePeerOption();
    this.form.elements.q.value = route.params.get('q') || '';
    const type = route.params.get('type') || '';
    this.setType(type);
    await this.load(false);
  }

  setType(type) {
    const select = this.form.elements.type;
    if (type && ![...select.options].some((o) => o.value === type)) {
      select.appendChild(h('option', {value: type}, type));
    }
    select.value = type;
  }

  onEntry(doc) {
    // new entries of the agent shown: reload the newest page (unless paging back)
    if (doc.peer_id === this.peer && this.entries.length <= PAGE) this.reloadSoon();
  }

  reloadSoon = debounce(() => this.load(false), 200);

  refresh() {
    return this.load(false);
  }

  async load(older) {
    if (!this.peer) {
      fill(this.head, h('p', {class: 'muted'}, 'No agent to show.'));
      fill(this.tbody);
      return;
    }
    const generation = ++this.generation;
    const params = {...this.params(), limit: PAGE};
    if (older && this.entries.length) params.before = this.entries[this.entries.length - 1].seq;
    let doc;
    try {
      doc = await api.log(this.peer, params);
    } catch (err) {
      if (generation === this.generation) {
        this.doc = null;
        fill(this.head, h('p', {class: 'error'}, `log of ${shortPeer(this.peer)}: ${err.message}`));
        fill(this.tbody);
        this.older.hidden = true;
      }
      return;
    }
    if (generation !== this.generation) return;
    this.doc = doc;
    const entries = Array.isArray(doc.entries) ? doc.entries : [];
    this.entries = older ? this.entries.concat(entries) : entries;
    const select = this.form.elements.type;
    const want = select.value;
    fill(select, h('option', {value: ''}, 'any'),
         (Array.isArray(doc.types) ? doc.types : []).map((t) => h('option', {value: String(t)}, String(t))));
    this.setType(want);
    this.renderHead();
    fill(this.tbody, this.entries.map((e) => this.row(e)));
    this.older.hidden = entries.length < PAGE;
  }

  renderHead() {
    const doc = this.doc || {};
    const agent = (this.app.mesh?.agents || []).find((a) => a.peer_id === this.peer);
    const state = MARK[doc.state] ? doc.state : (agent?.log?.state in MARK ? agent.log.state : 'syncing');
    const error = doc.error ?? agent?.log?.error;  // the monitor may say why, as the mesh does
    fill(this.head,
      h('h2', {}, String(doc.node_id ?? agent?.node_id ?? ''), ' ',
        h('span', {class: 'mono peer', title: this.peer}, shortPeer(this.peer))),
      h('p', {class: `log-mark mark-${state}`, dataset: {log: state}},
        badge('log', state, MARK[state]),
        error ? h('span', {class: 'log-error'}, ` ${String(error)}`) : null),
      h('p', {class: 'muted'}, `${Number(doc.length) || 0} entries · key `,
        h('span', {class: 'mono', title: String(doc.key ?? '')}, shortPeer(String(doc.key ?? ''))),
        ` · ${this.entries.length} shown`));
  }

  row(e) {
    const type = String(e.type ?? '');
    const data = e.data && typeof e.data === 'object' ? e.data : {};
    const where = typeof data.repo === 'string' && data.issue !== undefined
      ? h('a', {href: `#/task/${data.repo.split('/').map(encodeURIComponent).join('/')}/${encodeURIComponent(data.issue)}`},
          `${data.repo}#${data.issue}`) : null;
    const rest = {...data};
    delete rest.type;
    delete rest.repo;
    delete rest.issue;
    let text = JSON.stringify(rest);
    if (text === '{}') text = '';
    return h('tr', {dataset: {seq: String(e.seq ?? ''), type}},
      h('td', {class: 'num mono'}, String(e.seq ?? '')),
      h('td', {}, relTime(Number(e.ts))),
      h('td', {}, h('span', {class: `type cat-${category(type)}`}, type)),
      h('td', {class: 'entry'}, where, where && text ? ' ' : null,
        h('span', {class: 'mono text'}, text.length > 400 ? `${text.slice(0, 400)}…` : text)));
  }
}
