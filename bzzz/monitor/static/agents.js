// The task counts bar and the agents table (Buildkite-style).

import {h, fill, shortPeer, relTime, badge, STATE_LABELS} from './dom.js';

const COUNT_ORDER = ['waiting', 'claimed', 'running', 'needs_input', 'needs_approval',
                     'review', 'done', 'failed'];

export function renderCounts(el, counts, app) {
  const route = () => app.route;
  fill(el, COUNT_ORDER.map((state) => {
    const n = Number(counts[state]) || 0;
    const active = route().view === 'tasks' && route().params.get('state') === state;
    return h('a', {class: `count state-${state}${active ? ' active' : ''}`,
                   href: `#/tasks?state=${state}`, dataset: {state, count: String(n)}},
             h('span', {class: 'n'}, String(n)), h('span', {class: 'label'}, STATE_LABELS[state]));
  }));
}

const LOG_LABEL = {verified: '✓ verified', syncing: '↻ syncing', frozen: '❄ frozen',
                   failing: '✗ failing'};

export function taskHref(repo, issue) {
  const [owner, name] = String(repo).split('/');
  return `#/task/${encodeURIComponent(owner)}/${encodeURIComponent(name ?? '')}/${encodeURIComponent(issue)}`;
}

export function renderAgents(tbody, agents, app) {
  const sorted = [...agents].sort((a, b) =>
    (a.state === 'gone') - (b.state === 'gone') ||
    String(a.node_id).localeCompare(String(b.node_id), undefined, {numeric: true}));
  fill(tbody, sorted.map((a) => agentRow(a, app)));
}

function agentRow(a, app) {
  const peer = String(a.peer_id ?? '');
  const gone = a.state === 'gone';
  const running = Number(a.load?.running) || 0;
  const max = Number(a.load?.max) || 0;
  const ratio = max > 0 ? Math.min(1, running / max) : 0;
  const log = a.log || {};
  const logState = LOG_LABEL[log.state] ? log.state : 'syncing';
  const caps = Array.isArray(a.capabilities) ? a.capabilities : [];
  const models = Array.isArray(a.models) ? a.models : [];
  const presets = Array.isArray(a.presets) ? a.presets.slice(0, 16) : [];
  const tasks = Array.isArray(a.tasks) ? a.tasks : [];
  const length = Number(log.length) || 0;
  const replicated = Number(log.replicated ?? length) || 0;
  return h('tr', {class: gone ? 'agent gone' : 'agent', dataset: {peer, state: gone ? 'gone' : 'up'}},
    h('td', {class: 'node'},
      h('span', {class: `state-dot ${gone ? 'gone' : 'up'}`, title: gone ? 'gone' : 'up'}),
      h('a', {href: `#/log/${encodeURIComponent(peer)}`, title: 'open its log'},
        String(a.node_id ?? '—'))),
    h('td', {class: 'peer mono', title: peer}, shortPeer(peer)),
    h('td', {}, String(a.version ?? '')),
    h('td', {class: 'caps'},
      caps.map((c) => h('span', {class: 'chip'}, String(c))),
      models.map((m) => h('span', {class: 'chip model', title: 'model'}, String(m))),
      presets.map((p) => h('span', {class: 'chip preset', title: 'coding agent: CLI version, model, route'},
                           String(p)))),
    h('td', {class: 'current'}, tasks.length ? tasks.map((t) =>
      h('a', {class: 'task-link', href: taskHref(t.repo, t.issue)}, `${t.repo}#${t.issue}`))
      : h('span', {class: 'muted'}, 'idle')),
    h('td', {class: 'load', title: `${running} running of ${max}`},
      h('span', {class: 'bar'}, h('span', {class: 'fill', style: `width:${Math.round(ratio * 100)}%`})),
      ` ${running}/${max}`),
    h('td', {}, relTime(Number(a.last_seen))),
    h('td', {class: 'num', title: `${replicated} of ${length} replicated`},
      replicated === length ? String(length) : `${replicated}/${length}`),
    h('td', {class: 'verify', title: log.error ? String(log.error) : ''},
      badge('log', logState, LOG_LABEL[logState]),
      log.error ? h('span', {class: 'log-error'}, String(log.error)) : null));
}
