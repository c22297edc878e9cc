// The Mesh Visualizer: one page, views chosen by the URL's hash (#/mesh, #/tasks?..,
// #/task/<owner>/<name>/<issue>, #/log/<peer>?q=..&type=.., #/new), kept live by the
// monitor's server-sent events. No build step; no data from the API ever becomes markup.

import {api, follow} from './api.js';
import {h, fill, debounce, tickRelTimes} from './dom.js';
import {MeshGraph} from './graph.js';
import {renderAgents, renderCounts} from './agents.js';
import {TasksView} from './tasks.js';
import {TaskView} from './timeline.js';
import {LogView} from './logview.js';
import {NewTaskForm} from './newtask.js';
import {parseRoute, routeHash} from './route.js';

const $ = (sel) => document.querySelector(sel);

class App {
  constructor() {
    this.mesh = null;
    this.route = parseRoute();
    this.graph = new MeshGraph($('#graph'), {
      onSelect: (peer) => { location.hash = routeHash('log', [peer]); },
    });
    this.tasks = new TasksView(this);
    this.task = new TaskView(this);
    this.log = new LogView(this);
    this.form = new NewTaskForm(this);
    this.refreshTasksSoon = debounce(() => this.tasks.refresh(), 150);
    window.addEventListener('hashchange', () => this.show());
    window.addEventListener('resize', debounce(() => this.graph.resize(), 200));
    setInterval(() => tickRelTimes(), 1000);
  }

  async start() {
    const t0 = performance.now();
    this.stream = follow({
      mesh: (doc) => this.onMesh(doc),
      entry: (doc) => this.onEntry(doc),
      status: (s) => {
        const el = $('#live');
        el.dataset.status = s;
        el.textContent = s;
      },
      reopened: () => this.resync(),
    });
    try {
      // the boot script's early read when it worked, else a read of our own
      const early = await window.bzzzBoot?.mesh;
      performance.mark('bzzz-mesh');
      this.onMesh(early || await api.mesh());
    } catch (err) {
      this.problem(`mesh: ${err.message}`);
    }
    performance.mark('bzzz-mesh-rendered');
    await this.show();
    // counted once the frame with everything in it has been painted
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
    window.bzzzFirstRender = performance.now();
    window.bzzzFirstRenderSince = performance.now() - t0;
    document.documentElement.dataset.ready = '1';
  }

  problem(text) {
    fill($('#summary'), h('span', {class: 'error'}, text));
  }

  async resync() {
    try {
      this.onMesh(await api.mesh());
    } catch (err) {
      this.problem(`mesh: ${err.message}`);
    }
    await this.current()?.refresh?.();
  }

  onMesh(doc) {
    if (!doc || typeof doc !== 'object') return;
    const before = this.mesh;
    this.mesh = doc;
    const agents = Array.isArray(doc.agents) ? doc.agents : [];
    const up = agents.filter((a) => a.state !== 'gone').length;
    fill($('#summary'), `${up}/${agents.length} agents up · ${Number(doc.entries) || 0} entries`);
    const mon = doc.monitor || {};
    fill($('#monitor-info'), `monitor ${mon.node_id ?? ''} · ${mon.version ?? ''}`);
    fill($('#agent-count'), `(${agents.length})`);
    renderCounts($('#counts'), doc.counts || {}, this);
    renderAgents($('#agents tbody'), agents, this);
    this.tasks.agentsChanged(agents);
    this.log.agentsChanged(agents);
    if (this.route.view === 'mesh') this.graph.update(doc);
    else this.graphStale = true;
    if (before && JSON.stringify(before.counts) !== JSON.stringify(doc.counts) &&
        this.route.view === 'tasks') this.refreshTasksSoon();
  }

  onEntry(doc) {
    if (!doc || typeof doc !== 'object') return;
    const view = this.current();
    view?.onEntry?.(doc);
  }

  current() {
    return {tasks: this.tasks, task: this.task, log: this.log, new: this.form}[this.route.view] || null;
  }

  async show() {
    this.route = parseRoute();
    const {view} = this.route;
    for (const section of document.querySelectorAll('main > .view')) {
      section.hidden = section.id !== `view-${view}`;
    }
    for (const a of document.querySelectorAll('#nav a')) {
      a.classList.toggle('active', a.dataset.view === view ||
                         (view === 'task' && a.dataset.view === 'tasks'));
    }
    document.body.dataset.view = view;
    if (view === 'mesh' && this.mesh) {
      this.graph.resize();
      this.graph.update(this.mesh);
      this.graphStale = false;
    }
    await this.current()?.open?.(this.route);
  }

  agentName(peer) {
    const a = (this.mesh?.agents || []).find((x) => x.peer_id === peer);
    return a?.node_id || null;
  }
}

const app = new App();
window.bzzz = app;
app.start();
