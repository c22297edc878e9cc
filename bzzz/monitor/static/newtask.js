// The "new task" form: POST /api/v1/tasks with the monitor's token. The operator pastes the
// token once; it is kept in this browser's localStorage and sent only in the Authorization
// header, never in a URL.

import {api} from './api.js';
import {h, fill, extLink} from './dom.js';

const KEY = 'bzzz.monitor.token';

function stored() {
  try {
    return localStorage.getItem(KEY) || '';
  } catch (_) {
    return '';
  }
}

function store(token) {
  try {
    if (token) localStorage.setItem(KEY, token);
    else localStorage.removeItem(KEY);
  } catch (_) { /* storage disabled: the token is asked for each time */ }
}

export class NewTaskForm {
  constructor(app) {
    this.app = app;
    this.form = document.getElementById('new-task');
    this.result = document.getElementById('new-result');
    this.saved = document.getElementById('token-saved');
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.submit();
    });
    document.getElementById('token-forget').addEventListener('click', () => {
      store('');
      this.showSaved();
    });
    this.showSaved();
  }

  showSaved() {
    this.saved.hidden = !stored();
  }

  async submit() {
    const f = this.form.elements;
    const pasted = f.token.value.trim();
    const token = pasted || stored();
    if (!token) {
      this.say('error', 'Paste the monitor token first.');
      return;
    }
    const body = {
      repo: f.repo.value.trim(), title: f.title.value.trim(),
      instructions: f.instructions.value, priority: f.priority.value,
      needs: f.needs.value.split(',').map((s) => s.trim()).filter(Boolean),
    };
    if (!/^[^/\s]+\/[^/\s]+$/.test(body.repo)) {
      this.say('error', 'Repository: expected owner/name.');
      return;
    }
    if (!body.title) {
      this.say('error', 'Title: required.');
      return;
    }
    if (pasted) {
      store(pasted);
      f.token.value = '';
      this.showSaved();
    }
    const button = this.form.querySelector('button[type=submit]');
    button.disabled = true;
    this.say('pending', 'Filing…');
    try {
      const doc = await api.createTask(body, token);
      fill(this.result, 'Filed ', extLink(doc.url, `${body.repo}#${doc.issue}`), '.');
      this.result.dataset.kind = 'ok';
      f.title.value = '';
      f.instructions.value = '';
    } catch (err) {
      if (err.status === 401) {
        store('');
        this.showSaved();
        this.say('error', `The monitor refused the token (${err.message}). Paste it again.`);
      } else {
        this.say('error', `Not filed: ${err.message}`);
      }
    } finally {
      button.disabled = false;
    }
  }

  say(kind, text) {
    fill(this.result, h('span', {class: kind}, text));
    this.result.dataset.kind = kind;
  }

  open() {
    this.showSaved();
  }
}
