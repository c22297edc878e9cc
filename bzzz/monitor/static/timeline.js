// A task's timeline across agents, Temporal-style: one lane per agent, events in time order.

import {api} from './api.js';
import {h, fill, relTime, badge, extLink, shortPeer, isoTime, STATE_LABELS} from './dom.js';

const CATEGORY = {
  claimed: 'claim', taken_over: 'claim',
  contention_lost: 'contention', claim_abandoned: 'contention', lease_lost: 'contention',
  renewed: 'renewal',
  help_requested: 'help', help_offered: 'help', help_forwarded: 'help', help_declined: 'help',
  help_unanswered: 'help', help_exhausted: 'help', help_dropped: 'help',
  help_handed_over: 'handover', help_adopted: 'handover', help_handoff_received: 'handover',
  help_adopt_failed: 'handover',
  result: 'result', llm_answer: 'result', pull_request: 'result', attempt_failed: 'failure',
  attempt_crashed: 'failure', checkout_failed: 'failure', guardian_refused: 'failure',
  reported: 'report', report_failed: 'failure', report_dropped: 'failure',
  asked: 'input', needs_input: 'input', input_timed_out: 'input',
  egress: 'network', progress: 'progress',
  ci_round: 'ci', ci_green: 'ci', ci_failed: 'failure', waiting: 'input',
};

// One line for a CI event on the task's pull request: the round, what failed, ready or not.
function ciLine(type, d) {
  const parts = [`PR #${d.pr ?? '?'}`];
  if (type === 'ci_round') parts.push(`round ${d.round ?? '?'}`);
  if ((d.failed ?? []).length) parts.push(`failed: ${d.failed.join(', ')}`);
  if (type === 'ci_green') parts.push(d.ready ? 'green, marked ready' : 'green');
  return ` · ${parts.join(' · ')}`;
}

// One line for a task's use of its gateway: hosts, refusals, tokens, a budget stop.
function egressLine(d) {
  const models = Object.values(d.models ?? {});
  const tokens = models.reduce((n, m) => n + Number(m.tokens_in ?? 0) + Number(m.tokens_out ?? 0), 0);
  const parts = [`${(d.hosts ?? []).length} hosts`, `${Number(d.refused_total ?? 0)} refused`];
  if (models.length) parts.push(`${tokens.toLocaleString()} tokens`);
  if (d.budget_exceeded) parts.push('stopped: budget');
  if (d.model_failure) parts.push('model refused');
  return ` · ${parts.join(' · ')}`;
}

// One line for what a coding agent used (the result's usage: bzzz/claim/report.py).
export function usageLine(u) {
  if (!u || typeof u !== 'object') return '';
  const parts = [`${String(u.agent ?? 'agent')} (${String(u.model ?? '?')})`];
  if (u.turns !== undefined) parts.push(`${Number(u.turns) || 0} turns`);
  if (u.tokens_in !== undefined) {
    parts.push(`${(Number(u.tokens_in) || 0).toLocaleString('en')} tokens in, ` +
               `${(Number(u.tokens_out) || 0).toLocaleString('en')} out`);
  }
  if (Number(u.cost) > 0) parts.push(`about $${Number(u.cost).toFixed(Number(u.cost) >= 0.01 ? 2 : 4)}`);
  return ` · ${parts.join(' · ')}`;
}

// The latest `progress` decision: a running agent's steps, shown live above the timeline.
export function latestProgress(events) {
  let last = null;
  for (const e of events) {
    if (String(e.type ?? '') !== 'progress') continue;
    if (!last || (Number(e.ts) || 0) > (Number(last.ts) || 0) ||
        ((Number(e.ts) || 0) === (Number(last.ts) || 0) && Number(e.seq) > Number(last.seq))) {
      last = e;
    }
  }
  return last;
}

function summaryOf(type, d) {
  if (type === 'egress') return h('span', {class: 'muted'}, egressLine(d));
  if (type === 'result' && d.usage) return h('span', {class: 'muted usage'}, usageLine(d.usage));
  if (type === 'progress') {
    const lines = Array.isArray(d.lines) ? d.lines : [];
    return h('span', {class: 'muted'}, ` · ${lines.length} lines${d.final ? ' · final' : ''}`);
  }
  if (category(type) === 'ci' || type === 'ci_failed') return h('span', {class: 'muted'}, ciLine(type, d));
  return null;
}

export function category(type) {
  return CATEGORY[type] || 'other';
}

export class TaskView {
  constructor(app) {
    this.app = app;
    this.head = document.getElementById('task-head');
    this.body = document.getElementById('timeline');
    this.key = null;
    this.generation = 0;
  }

  async open(route) {
    const [owner, name, issue] = route.parts;
    if (!owner || !name || !/^\d+$/.test(issue || '')) {
      fill(this.head, h('p', {class: 'error'}, 'expected #/task/<owner>/<name>/<issue>'));
      fill(this.body);
      this.key = null;
      return;
    }
    this.key = {repo: `${owner}/${name}`, issue: Number(issue)};
    await this.refresh();
  }

  onEntry(doc) {
    if (this.key && doc.repo === this.key.repo && Number(doc.issue) === this.key.issue) {
      this.refresh();
    }
  }

  async refresh() {
    if (!this.key) return;
    const generation = ++this.generation;
    let doc;
    try {
      doc = await api.task(this.key.repo, this.key.issue);
    } catch (err) {
      if (generation === this.generation) {
        fill(this.head, h('h2', {}, `${this.key.repo}#${this.key.issue}`),
             h('p', {class: 'error'}, err.message));
        fill(this.body);
      }
      return;
    }
    if (generation !== this.generation) return;
    const events = Array.isArray(doc.timeline) ? doc.timeline : [];
    this.renderHead(doc.task || {});
    this.renderTranscript(latestProgress(events));
    this.renderTimeline(events);
  }

  renderHead(t) {
    const state = String(t.state ?? '');
    fill(this.head,
      h('h2', {}, `${t.repo ?? this.key.repo}#${t.issue ?? this.key.issue} `,
        h('span', {class: 'title'}, String(t.title ?? ''))),
      h('p', {class: 'facts'},
        badge('state', state, STATE_LABELS[state] ?? state),
        ' attempt ', String(t.attempt ?? '—'),
        ' · agent ', t.agent ? h('a', {href: `#/log/${encodeURIComponent(String(t.agent))}`},
                                 String(t.node ?? shortPeer(String(t.agent)))) : '—',
        ' · updated ', relTime(Number(t.updated)),
        ' · ', t.issue_url ? extLink(t.issue_url, 'issue') : 'issue',
        t.pr ? [' · ', extLink(t.pr_url, `PR #${t.pr}`)] : null));
  }

  // The agent's transcript as its latest progress decision has it (live while it runs).
  renderTranscript(e) {
    if (!e) return;
    const d = e.data ?? {};
    const lines = (Array.isArray(d.lines) ? d.lines : []).slice(-40).map((l) => String(l));
    this.head.appendChild(h('section', {id: 'transcript', class: 'transcript',
                                        dataset: {final: d.final ? '1' : '0'}},
      h('h3', {}, d.final ? 'Transcript (final)' : 'Transcript (live)',
        h('span', {class: 'muted'}, ` · ${String(e.node_id ?? '')} · +${Number(d.elapsed) || 0} s`)),
      h('pre', {class: 'mono'}, lines.join('\n'))));
  }

  renderTimeline(events) {
    if (!events.length) {
      fill(this.body, h('p', {class: 'muted'}, 'No decisions about this task yet.'));
      return;
    }
    const sorted = [...events].sort((a, b) => (Number(a.ts) - Number(b.ts)) ||
                                              (Number(a.seq) - Number(b.seq)));
    const lanes = [];
    const laneOf = new Map();
    for (const e of sorted) {
      const peer = String(e.peer_id ?? '');
      if (!laneOf.has(peer)) {
        laneOf.set(peer, lanes.length);
        lanes.push({peer, node: String(e.node_id ?? '') || shortPeer(peer)});
      }
    }
    const t0 = Number(sorted[0].ts) || 0;
    const grid = h('div', {class: 'timeline', role: 'table',
                           style: `grid-template-columns: 5.5em repeat(${lanes.length}, minmax(9em, 1fr))`});
    grid.appendChild(h('div', {class: 'tl-head tl-time', role: 'columnheader'}, 'time'));
    lanes.forEach((lane, i) => grid.appendChild(
      h('div', {class: 'tl-head', role: 'columnheader', title: lane.peer,
                style: `grid-column:${i + 2}`},
        h('a', {href: `#/log/${encodeURIComponent(lane.peer)}`}, lane.node))));
    sorted.forEach((e, row) => {
      const lane = laneOf.get(String(e.peer_id ?? ''));
      const type = String(e.type ?? '');
      const dt = (Number(e.ts) || 0) - t0;
      const r = row + 2;
      grid.appendChild(h('div', {class: 'tl-time mono', title: isoTime(Number(e.ts)),
                                 style: `grid-row:${r};grid-column:1`}, `+${dt.toFixed(1)} s`));
      for (let i = 0; i < lanes.length; i++) {
        if (i !== lane) grid.appendChild(h('div', {class: 'tl-lane', style: `grid-row:${r};grid-column:${i + 2}`}));
      }
      const details = h('details', {class: `tl-event cat-${category(type)}`,
                                    style: `grid-row:${r};grid-column:${lane + 2}`,
                                    dataset: {type, category: category(type)}},
        h('summary', {}, type, h('span', {class: 'seq'}, ` #${e.seq ?? ''}`),
          summaryOf(type, e.data ?? {})),
        h('pre', {}, JSON.stringify(e.data ?? {}, null, 1)));
      grid.appendChild(details);
    });
    fill(this.body, grid);
  }
}
