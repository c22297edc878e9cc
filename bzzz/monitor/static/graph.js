// The topology graph: agents as nodes, the connections they report (mesh.edges) as edges,
// drawn by the vendored cytoscape.js (static/vendor/). Colour: grey when gone, otherwise
// green when idle, amber when busy, orange when full (running / max); the border shows the log's verification state.

const STYLE = [
  {selector: 'node', style: {
    'label': 'data(label)', 'text-wrap': 'wrap', 'font-size': 11, 'color': '#1f2933',
    'text-valign': 'bottom', 'text-margin-y': 4, 'width': 30, 'height': 30,
    'background-color': '#3fa34d', 'border-width': 2, 'border-color': '#2f6f3a',
  }},
  {selector: 'node[load > 0]', style: {'background-color': '#f0b429'}},
  {selector: 'node[load >= 1]', style: {'background-color': '#e8590c'}},
  {selector: 'node[state = "gone"]', style: {
    'background-color': '#b8bec6', 'border-color': '#8a939c', 'color': '#8a939c',
  }},
  {selector: 'node[log = "syncing"]', style: {'border-color': '#2f6fd6', 'border-width': 3}},
  {selector: 'node[log = "frozen"]', style: {'border-color': '#7b3fc4', 'border-width': 4,
                                             'border-style': 'dashed'}},
  {selector: 'node[log = "failing"]', style: {'border-color': '#d32f2f', 'border-width': 5}},
  {selector: 'node:selected', style: {'overlay-color': '#2f6fd6', 'overlay-opacity': 0.2}},
  {selector: 'edge', style: {'width': 1.5, 'line-color': '#c3c9d1', 'curve-style': 'haystack'}},
  {selector: 'edge[gone = 1]', style: {'line-style': 'dashed', 'opacity': 0.5}},
];

export class MeshGraph {
  constructor(container, {onSelect} = {}) {
    this.container = container;
    this.cy = null;
    this.signature = '';
    if (typeof window.cytoscape !== 'function') {
      container.textContent = 'graph library missing (static/vendor/cytoscape.min.js)';
      return;
    }
    this.cy = window.cytoscape({
      container, style: STYLE, elements: [], wheelSensitivity: 0.3,
      minZoom: 0.2, maxZoom: 3, boxSelectionEnabled: false,
    });
    this.cy.on('tap', 'node', (ev) => onSelect?.(ev.target.id()));
  }

  /** Bring the graph to the mesh document: add, update and remove elements; lay out again
   *  only when the set of agents or connections changed. */
  update(mesh) {
    const cy = this.cy;
    if (!cy) return;
    const agents = Array.isArray(mesh.agents) ? mesh.agents : [];
    const byPeer = new Map();
    for (const a of agents) if (typeof a.peer_id === 'string') byPeer.set(a.peer_id, a);
    const edges = [];
    const seen = new Set();
    for (const e of Array.isArray(mesh.edges) ? mesh.edges : []) {
      if (!Array.isArray(e) || e.length !== 2) continue;
      const [a, b] = [String(e[0]), String(e[1])].sort();
      const id = `e:${a}|${b}`;
      if (a === b || seen.has(id) || !byPeer.has(a) || !byPeer.has(b)) continue;
      seen.add(id);
      edges.push({id, source: a, target: b});
    }
    const signature = [...byPeer.keys()].sort().join(',') + '#' +
      edges.map((e) => e.id).sort().join(',');
    cy.batch(() => {
      for (const node of cy.nodes()) if (!byPeer.has(node.id())) node.remove();
      for (const edge of cy.edges()) if (!seen.has(edge.id())) edge.remove();
      for (const [peer, a] of byPeer) {
        const data = nodeData(peer, a);
        const node = cy.getElementById(peer);
        if (node.nonempty()) node.data(data);
        else cy.add({group: 'nodes', data});
      }
      for (const e of edges) {
        const gone = byPeer.get(e.source).state === 'gone' ||
                     byPeer.get(e.target).state === 'gone' ? 1 : 0;
        const edge = cy.getElementById(e.id);
        if (edge.nonempty()) edge.data('gone', gone);
        else cy.add({group: 'edges', data: {...e, gone}});
      }
    });
    if (signature !== this.signature) {
      this.signature = signature;
      this.layout();
    }
  }

  layout() {
    const n = this.cy.nodes().length;
    const options = n > 80
      ? {name: 'concentric', animate: false, minNodeSpacing: 8}
      : {name: 'cose', animate: false, randomize: false, numIter: 400, nodeRepulsion: 8000,
         idealEdgeLength: 60, padding: 20};
    this.cy.layout(options).run();
    this.cy.fit(undefined, 20);
  }

  resize() {
    if (this.cy) {
      this.cy.resize();
      this.cy.fit(undefined, 20);
    }
  }

  select(peer) {
    if (!this.cy) return;
    this.cy.nodes().unselect();
    if (peer) this.cy.getElementById(peer).select();
  }

  /** What a node looks like now (tests read this). */
  nodeStyle(peer) {
    const node = this.cy?.getElementById(peer);
    if (!node || node.empty()) return null;
    return {background: node.style('background-color'), border: node.style('border-color'),
            state: node.data('state'), log: node.data('log'), load: node.data('load')};
  }
}

function nodeData(peer, a) {
  const running = Number(a.load?.running) || 0;
  const max = Number(a.load?.max) || 0;
  const load = max > 0 ? Math.min(1, running / max) : 0;
  const name = typeof a.node_id === 'string' && a.node_id ? a.node_id : peer.slice(0, 12);
  return {id: peer, label: `${name}\n${running}/${max}`, load,
          state: a.state === 'gone' ? 'gone' : 'up',
          log: typeof a.log?.state === 'string' ? a.log.state : 'syncing'};
}
