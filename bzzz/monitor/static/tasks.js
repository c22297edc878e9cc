// The task table, filtered by repository, state and agent; the filters live in the URL.

import {api} from './api.js';
import {h, fill, relTime, badge, extLink, shortPeer, debounce, STATE_LABELS} from './dom.js';
import {routeHash, replaceRoute} from './route.js';
import {taskHref} from './agents.js';

const PAGE = 100;
const FILTERS = ['repo', 'state', 'agent'];

export class TasksView {
  constructor(app) {
    this.app = app;
    this.form = document.getElementById('task-filters');
    this.tbody = document.querySelector('#tasks tbody');
    this.more = document.getElementById('tasks-more');
    this.repos = new Set();
    this.shown = [];
    this.generation = 0;
    const state = this.form.elements.state;
    for (const [value, label] of Object.entries(STATE_LABELS)) {
      state.appendChild(h('option', {value}, label));
    }
    const changed = () => this.filtersChanged();
    this.form.addEventListener('change', changed);
    this.form.elements.repo.addEventListener('input', debounce(changed, 300));
    this.form.addEventListener('submit', (ev) => { ev.preventDefault(); changed(); });
    this.form.addEventListener('reset', () => setTimeout(changed));
    this.more.addEventListener('click', () => this.load(this.shown.length));
  }

  filters() {
    const out = {};
    for (const name of FILTERS) {
      const v = this.form.elements[name].value.trim();
      if (v) out[name] = v;
    }
    return out;
  }

  filtersChanged() {
    replaceRoute(routeHash('tasks', [], this.filters()));
    this.app.route.params = new URLSearchParams(this.filters());
    this.load(0);
  }

  agentsChanged(agents) {
    const select = this.form.elements.agent;
    const want = select.value || this.app.route.params.get('agent') || '';
    const options = [h('option', {value: ''}, 'any')];
    for (const a of agents) {
      options.push(h('option', {value: String(a.peer_id)},
                     `${a.node_id ?? ''} (${shortPeer(String(a.peer_id))})`));
    }
    fill(select, options);
    this.setAgent(want);
  }

  setAgent(value) {
    const select = this.form.elements.agent;
    if (value && ![...select.options].some((o) => o.value === value)) {
      // a node id, or an agent not (yet) in the mesh: keep it selectable
      select.appendChild(h('option', {value}, value));
    }
    select.value = value;
  }

  async open(route) {
    const p = route.params;
    this.form.elements.repo.value = p.get('repo') || '';
    this.form.elements.state.value = STATE_LABELS[p.get('state')] ? p.get('state') : '';
    this.setAgent(p.get('agent') || '');
    await this.load(0);
  }

  refresh() {
    return this.load(0, Math.max(PAGE, this.shown.length));
  }

  onEntry() {
    this.app.refreshTasksSoon();
  }

  async load(offset, limit = PAGE) {
    const generation = ++this.generation;
    let doc;
    try {
      doc = await api.tasks({...this.filters(), limit, offset});
    } catch (err) {
      if (generation === this.generation) {
        fill(document.getElementById('task-total'), h('span', {class: 'error'}, err.message));
      }
      return;
    }
    if (generation !== this.generation) return; // a newer request is on its way
    const tasks = Array.isArray(doc.tasks) ? doc.tasks : [];
    this.shown = offset === 0 ? tasks : this.shown.concat(tasks);
    for (const t of tasks) if (typeof t.repo === 'string') this.repos.add(t.repo);
    fill(document.getElementById('repo-list'),
         [...this.repos].sort().map((r) => h('option', {value: r})));
    const total = Number(doc.total) || 0;
    fill(document.getElementById('task-total'),
         `${total} task${total === 1 ? '' : 's'}${this.shown.length < total ? `, ${this.shown.length} shown` : ''}`);
    fill(this.tbody, this.shown.map((t) => this.row(t)));
    this.more.hidden = this.shown.length >= total;
  }

  row(t) {
    const repo = String(t.repo ?? '');
    const issue = String(t.issue ?? '');
    const state = String(t.state ?? '');
    return h('tr', {dataset: {repo, issue, state}},
      h('td', {class: 'mono'}, h('a', {href: taskHref(repo, issue)}, `${repo}#${issue}`)),
      h('td', {class: 'title'}, String(t.title ?? '')),
      h('td', {}, badge('state', state, STATE_LABELS[state] ?? state)),
      h('td', {title: t.agent ? String(t.agent) : ''},
        t.agent ? h('a', {href: `#/log/${encodeURIComponent(String(t.agent))}`},
                    String(t.node ?? shortPeer(String(t.agent))))
                : h('span', {class: 'muted'}, '—')),
      h('td', {class: 'num'}, String(t.attempt ?? '')),
      h('td', {}, relTime(Number(t.updated))),
      h('td', {}, t.issue_url ? extLink(t.issue_url, `#${issue}`) : '—'),
      h('td', {}, t.pr ? extLink(t.pr_url, `#${t.pr}`) : '—'));
  }
}
