// HemoStat dashboard: one page, four views (overview, timeline, container, analytics), live over
// server-sent events. Every piece of text from the fleet is untrusted (container names, labels, log lines,
// reasons): it reaches the page only as text nodes (textContent), never as HTML.
'use strict';

(() => {
  const KINDS = ['health_alert', 'remediation_needed', 'false_alarm', 'remediation_complete', 'rejected', 'resolved',
    'storm', 'spool_overflow', 'node_lost', 'node_recovered', 'operator_action', 'store_unavailable'];
  const OUTCOMES = ['success', 'failed', 'refused', 'not_applicable'];
  const PERIODS = { '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 24 * 3600e3, '30d': 30 * 24 * 3600e3 };
  const KIND_CLASS = {
    health_alert: 'bad', remediation_needed: 'info', false_alarm: 'warn', remediation_complete: 'ok', rejected: '',
    resolved: 'ok', storm: 'bad', spool_overflow: 'warn', node_lost: 'bad', node_recovered: 'ok', operator_action: 'info',
    store_unavailable: 'bad',
  };
  const MARKER_COLOR = { health_alert: '#b3261e', remediation_needed: '#2457c5', remediation_complete: '#1e7d43', rejected: '#7a8193', false_alarm: '#b36b00' };

  const state = {
    session: null, csrf: 'x-hemostat-csrf', token: 0, timer: null, pending: null, source: null,
    view: null, timeline: null, container: null, nodes: [], overview: null,
  };

  // ---- DOM, always as text -------------------------------------------------------------------------
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    setProps(node, props);
    append(node, children);
    return node;
  }
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
    append(node, children);
    return node;
  }
  function setProps(node, props) {
    for (const [k, v] of Object.entries(props || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') node.className = v;
      else if (k === 'dataset') Object.assign(node.dataset, v);
      else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
      else if (k === 'value') node.value = v;
      else if (k === 'style') node.style.cssText = v;
      else if (k === 'checked' || k === 'disabled' || k === 'hidden' || k === 'selected') node[k] = Boolean(v);
      else node.setAttribute(k, v === true ? '' : String(v));
    }
  }
  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  const $ = (selector, root = document) => root.querySelector(selector);

  // ---- formatting ----------------------------------------------------------------------------------
  const pad = (n) => String(n).padStart(2, '0');
  function fmtTime(ms) {
    if (ms === null || ms === undefined) return '—';
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`;
  }
  function fmtClock(ms) { const d = new Date(ms); return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`; }
  function fmtAgo(ms, now) {
    if (!ms) return '—';
    const s = Math.max(0, Math.round(((now || Date.now()) - ms) / 1000));
    return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
  }
  function fmtSeconds(s) {
    if (s < 90) return `${s} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }
  const fmtPercent = (v) => (v === null || v === undefined ? '—' : `${v.toFixed(1)} %`);
  const fmtRate = (fraction) => (fraction === null || fraction === undefined ? '—' : `${(fraction * 100).toFixed(1)} %`);
  function fmtMillis(ms) {
    if (ms === null || ms === undefined) return '—';
    return `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, '0')} s`;
  }
  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
  }
  const kindLabel = (kind) => kind.replace(/_/g, ' ');
  const pill = (text, cls, props) => h('span', Object.assign({ class: `pill ${cls || ''}` }, props || {}), text);
  const shortId = (id) => (id || '').slice(0, 12);
  function resultOf(ev) {
    if (ev.outcome) return pill(ev.outcome.replace('_', ' '), ev.outcome === 'success' ? 'ok' : ev.outcome === 'failed' ? 'bad' : 'warn');
    if (ev.rejection) return pill(ev.rejection.replace(/_/g, ' '), ev.rejection === 'awaiting_approval' ? 'warn' : '');
    return '';
  }

  // ---- talking to the coordinator ------------------------------------------------------------------
  async function api(path, options) {
    const response = await fetch(path, Object.assign({ credentials: 'same-origin', headers: { Accept: 'application/json' } }, options || {}));
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (response.status === 401 && path !== '/api/login' && state.session && state.session.login_required) {
      showLogin('Your session has ended; log in again.');
      throw new Error('not logged in');
    }
    if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
    return body;
  }
  function post(path, body) {
    return api(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', [state.csrf]: '1' },
      body: JSON.stringify(body || {}),
    });
  }
  let toastTimer = null;
  function toast(message, bad) {
    const box = $('#toast');
    box.textContent = message;
    box.className = bad ? 'bad' : '';
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { box.hidden = true; }, 5000);
  }
  const serverNow = () => (state.session && state.session.now_ms ? state.session.now_ms + (Date.now() - state.sessionAt) : Date.now());
  const isAdmin = () => state.session && state.session.role === 'admin';

  // ---- start, login, header ------------------------------------------------------------------------
  async function start() {
    state.session = await api('/api/session');
    state.sessionAt = Date.now();
    state.csrf = state.session.csrf_header || state.csrf;
    if (!state.session.authenticated) { showLogin(); return; }
    enter();
  }

  function enter() {
    $('#nav').hidden = false;
    const who = clear($('#who'));
    append(who, [`${state.session.name} (${state.session.role})`]);
    if (state.session.login_required) {
      append(who, [' ', h('button', { id: 'logout', on: { click: logout } }, 'Log out')]);
    }
    openStream();
    refreshHeader();
    window.addEventListener('hashchange', route);
    route();
  }

  function showLogin(message) {
    stopView();
    if (state.source) { state.source.close(); state.source = null; setLive(false); }
    $('#nav').hidden = true;
    clear($('#who'));
    clear($('#dry-run'));
    closeDetails();
    const error = h('p', { id: 'login-error', class: 'error' }, message || '');
    const input = h('input', { id: 'login-token', type: 'password', autocomplete: 'current-password', placeholder: 'dashboard token', required: true });
    const form = h('form', { id: 'login-form', on: { submit: async (e) => {
      e.preventDefault();
      error.textContent = '';
      try {
        state.session = await post('/api/login', { token: input.value });
        state.sessionAt = Date.now();
        input.value = '';
        window.removeEventListener('hashchange', route);
        enter();
      } catch (err) { error.textContent = err.message; }
    } } },
    h('label', {}, 'Token', input), h('button', { id: 'login-submit', class: 'primary', type: 'submit' }, 'Log in'), error);
    clear($('#main')).appendChild(h('div', { class: 'login' }, h('h1', {}, 'Log in to HemoStat'),
      h('p', { class: 'muted' }, 'This dashboard needs a token (viewer or admin) configured on the coordinator.'), form));
  }

  async function logout() {
    try { await post('/api/logout'); } catch (_) { /* the session is gone either way */ }
    state.session = await api('/api/session');
    showLogin('Logged out.');
  }

  async function refreshHeader() {
    try {
      const data = await api('/api/overview');
      state.overview = data;
      state.nodes = data.nodes.map((n) => n.name);
      renderDryRun(data.dry_run, data.dry_run_source);
      return data;
    } catch (err) { return null; }
  }

  function renderDryRun(enabled, source) {
    const box = clear($('#dry-run'));
    append(box, [pill(enabled ? `dry-run on (${source})` : 'dry-run off', enabled ? 'warn' : 'ok', {
      id: 'dry-run-state', title: enabled ? 'Decisions are recorded, nothing is done' : 'Decisions are acted on' })]);
    if (isAdmin()) {
      append(box, [' ', h('button', { id: 'dry-run-toggle', on: { click: async () => {
        try {
          const answer = await post('/api/dry-run', { enabled: !enabled });
          toast(`Dry-run is now ${answer.enabled ? 'on' : 'off'}.`);
          await refreshHeader();
        } catch (err) { toast(err.message, true); }
      } } }, enabled ? 'Turn dry-run off' : 'Turn dry-run on')]);
    }
  }

  function setLive(on) {
    const live = $('#live');
    live.textContent = on ? 'live' : 'reconnecting…';
    live.className = `pill ${on ? 'ok' : 'warn'}`;
    live.dataset.state = on ? 'live' : 'down';
  }

  // ---- the live stream -----------------------------------------------------------------------------
  function openStream() {
    if (state.source) state.source.close();
    const since = serverNow() - 5000;
    const source = new EventSource(`/api/stream?since=${since}`);
    source.onopen = () => setLive(true);
    source.onerror = () => setLive(false);
    source.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (_) { return; }
      onLiveEvent(event);
    };
    state.source = source;
  }

  function onLiveEvent(event) {
    if (event.kind === 'operator_action') refreshHeader();
    if (state.view === 'timeline') timelineInsert(event);
    else if (state.view === 'overview') schedule(renderOverviewData, 800);
    else if (state.view === 'analytics') schedule(loadAnalytics, 1500);
    else if (state.view === 'container' && state.container && event.node === state.container.node
      && event.container_name === state.container.name) schedule(loadContainer, 800);
  }

  function schedule(fn, delay) {
    if (state.pending) return;
    state.pending = setTimeout(() => { state.pending = null; fn(); }, delay);
  }

  // ---- routing -------------------------------------------------------------------------------------
  function stopView() {
    clearInterval(state.timer);
    clearTimeout(state.pending);
    state.timer = null;
    state.pending = null;
    state.token += 1;
  }

  function route() {
    stopView();
    const hash = location.hash.replace(/^#\/?/, '') || 'overview';
    const [path, query] = hash.split('?');
    const parts = path.split('/').map(decodeURIComponent);
    const params = new URLSearchParams(query || '');
    const view = parts[0] === 'container' ? 'container' : ['overview', 'timeline', 'analytics'].includes(parts[0]) ? parts[0] : 'overview';
    state.view = view;
    for (const link of document.querySelectorAll('#nav a')) link.classList.toggle('active', link.dataset.view === view);
    closeDetails();
    if (view === 'overview') renderOverview();
    else if (view === 'timeline') renderTimeline(params);
    else if (view === 'analytics') renderAnalytics(params);
    else renderContainer(parts[1] || '', parts[2] || '');
  }

  function failed(main, err) {
    clear(main).appendChild(h('p', { class: 'error' }, `Could not load this page: ${err.message}`));
  }

  // ---- overview ------------------------------------------------------------------------------------
  function renderOverview() {
    const main = clear($('#main'));
    main.appendChild(h('h1', {}, 'Fleet overview'));
    main.appendChild(h('div', { id: 'overview' }, h('p', { class: 'muted' }, 'Loading…')));
    renderOverviewData();
    state.timer = setInterval(renderOverviewData, 5000);
  }

  async function renderOverviewData() {
    const token = state.token;
    let data;
    try { data = await api('/api/overview'); } catch (err) { if (token === state.token) failed($('#overview') || $('#main'), err); return; }
    if (token !== state.token || state.view !== 'overview') return;
    state.overview = data;
    state.nodes = data.nodes.map((n) => n.name);
    renderDryRun(data.dry_run, data.dry_run_source);
    const now = data.now_ms;
    const anomalies = data.anomalies_total;
    const connected = data.nodes.filter((n) => n.connected).length;
    const box = clear($('#overview'));
    box.appendChild(h('div', { class: 'cards', id: 'summary' },
      card('nodes', 'Nodes connected', `${connected} / ${data.nodes.length}`),
      card('containers', 'Containers', data.containers_total),
      card('anomalies', 'Active anomalies', anomalies),
      card('silences', 'Silences', data.silences.length),
      data.approval_required ? card('approvals', 'Awaiting approval', data.pending_approvals.length) : null));

    if (data.approval_required) {
      box.appendChild(h('h2', {}, 'Awaiting approval'));
      box.appendChild(h('div', { class: 'panel' }, data.pending_approvals.length === 0
        ? h('p', { class: 'empty' }, 'No decision waits for an admin.')
        : h('table', { id: 'approvals' }, h('thead', {}, h('tr', {}, ['Decided', 'Node', 'Container', 'Action', 'Reason', ''].map((t) => h('th', {}, t)))),
          h('tbody', {}, data.pending_approvals.map((ev) => h('tr', { dataset: { command: ev.command_id } },
            h('td', {}, fmtTime(ev.time_ms)), h('td', {}, ev.node), h('td', {}, ev.container_name), h('td', {}, ev.action || ''),
            h('td', { class: 'reason', title: ev.reason }, ev.reason),
            h('td', {}, isAdmin() ? h('button', { class: 'primary approve', on: { click: (e) => approve(ev.command_id, e.target) } }, 'Approve') : '')))))));
    }

    box.appendChild(h('h2', {}, 'Nodes'));
    box.appendChild(h('div', { class: 'panel' }, data.nodes.length === 0 ? h('p', { class: 'empty' }, 'No node has connected yet.')
      : h('table', { id: 'nodes' }, h('thead', {}, h('tr', {}, ['Node', 'State', 'Last heartbeat', 'Address', 'Host', 'Version', 'Spool'].map((t) => h('th', {}, t)))),
        h('tbody', {}, data.nodes.map((n) => h('tr', { dataset: { node: n.name } },
          h('td', {}, h('strong', {}, n.name)),
          h('td', { class: 'n-state' }, n.connected ? pill('connected', 'ok') : pill('disconnected', 'bad')),
          h('td', { title: fmtTime(n.last_seen_ms) }, fmtAgo(n.last_seen_ms, now)),
          h('td', { class: 'mono' }, n.address || '—'), h('td', {}, n.hostname), h('td', {}, n.version),
          h('td', { class: 'num' }, `${n.spool_depth}${n.spool_dropped ? ` (${n.spool_dropped} dropped)` : ''}`)))))));

    box.appendChild(h('h2', {}, 'Containers'));
    if (data.containers_total > data.containers.length) {
      box.appendChild(h('p', { class: 'muted', id: 'containers-cut' },
        `Showing ${data.containers.length} of ${data.containers_total}: those with anomalies first, then those not running. ` +
        '`hemostat containers` lists them all.'));
    }
    box.appendChild(h('div', { class: 'panel' }, data.containers.length === 0 ? h('p', { class: 'empty' }, 'No container reported.')
      : h('table', { id: 'containers' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Container'), h('th', {}, 'Node'), h('th', {}, 'State'), h('th', {}, 'Health'),
          h('th', { class: 'num' }, 'CPU'), h('th', { class: 'num' }, 'Memory'), h('th', {}, 'Anomalies'), h('th', {}, 'Policy'))),
        h('tbody', {}, data.containers.map((c) => containerRow(c, now))))));

    box.appendChild(h('h2', {}, 'Silences'));
    box.appendChild(h('div', { class: 'panel' }, data.silences.length === 0 ? h('p', { class: 'empty' }, 'Nothing is silenced.')
      : h('table', { id: 'silences' }, h('thead', {}, h('tr', {}, ['Silenced', 'Reason', 'By', 'Until', ''].map((t) => h('th', {}, t)))),
        h('tbody', {}, data.silences.map((s) => silenceRow(s, renderOverviewData))))));
  }

  function card(key, label, value, hint) {
    return h('div', { class: 'card', dataset: { card: key } }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, String(value)),
      hint ? h('div', { class: 'hint' }, hint) : null);
  }

  function containerRow(c, now) {
    const href = `#/container/${encodeURIComponent(c.node)}/${encodeURIComponent(c.id)}`;
    return h('tr', { dataset: { container: c.name, node: c.node } },
      h('td', { class: 'c-name' }, h('a', { href }, c.name), h('div', { class: 'muted mono' }, c.image)),
      h('td', {}, c.node),
      h('td', { class: 'c-state' }, pill(c.status, c.status === 'running' ? 'ok' : c.status === 'exited' || c.status === 'dead' ? 'bad' : 'warn')),
      h('td', { class: 'c-health' }, c.health === 'none' ? h('span', { class: 'muted' }, '—') : pill(c.health, c.health === 'healthy' ? 'ok' : c.health === 'unhealthy' ? 'bad' : '')),
      h('td', { class: 'num c-cpu' }, h('div', { class: 'metric' }, sparkline(c.cpu_trend, '#2457c5'), h('span', {}, fmtPercent(c.cpu_percent)))),
      h('td', { class: 'num c-memory' }, h('div', { class: 'metric' }, sparkline(c.memory_trend, '#8a3ffc'), h('span', {}, fmtPercent(c.memory_percent))),
        c.memory_used !== null && c.memory_used !== undefined ? h('div', { class: 'muted small' }, fmtBytes(c.memory_used)) : null),
      h('td', { class: 'c-anomalies' }, c.anomalies.length === 0 ? h('span', { class: 'muted' }, 'none')
        : c.anomalies.map((a) => [pill(`${kindLabel(a.kind)} ${a.severity}`, a.severity === 'medium' ? 'warn' : 'bad', { title: `${a.actual} (threshold ${a.threshold})` }), ' '])),
      h('td', { class: 'c-policy' }, policyBadges(c, now)));
  }

  function policyBadges(c, now) {
    const badges = [];
    if (c.silence) badges.push(pill(`silenced until ${fmtClock(c.silence.expires_ms)}Z`, 'warn', { title: c.silence.reason }));
    if (c.budget.quarantined) badges.push(pill(`quarantined (breaker open ${fmtSeconds(c.budget.circuit_retry_s)})`, 'bad'));
    else if (c.budget.circuit === 'half_open') badges.push(pill('breaker half-open', 'warn'));
    if (c.budget.cooldown_remaining_s > 0) badges.push(pill(`cooldown ${fmtSeconds(c.budget.cooldown_remaining_s)}`, 'info'));
    badges.push(h('span', { class: 'muted', title: 'actions in the last hour, of the most allowed' }, `${c.budget.attempts_in_window}/${c.budget.max_attempts} actions this hour`));
    return badges.map((b) => [b, ' ']);
  }

  function silenceRow(s, after) {
    const target = s.container ? `${s.node}/${s.container}` : `${s.node} (whole node)`;
    return h('tr', { dataset: { silence: s.id } },
      h('td', {}, target), h('td', { class: 'silence-reason' }, s.reason), h('td', {}, s.created_by), h('td', {}, fmtTime(s.expires_ms)),
      h('td', {}, isAdmin() ? h('button', { class: 'danger', on: { click: async () => {
        try { await post(`/api/silences/${encodeURIComponent(s.id)}/end`); toast(`Silence of ${target} ended.`); after(); } catch (err) { toast(err.message, true); }
      } } }, 'End') : ''));
  }

  async function approve(id, button) {
    button.disabled = true;
    try {
      const answer = await post(`/api/approvals/${encodeURIComponent(id)}`);
      toast(answer.detail || 'Approved.');
    } catch (err) {
      toast(err.message, true);
    }
    renderOverviewData();
  }

  function sparkline(values, color) {
    const w = 80, hgt = 22;
    const points = (values || []).map((v, i) => [i, v]).filter(([, v]) => v !== null && v !== undefined);
    const box = svg('svg', { class: 'spark', width: w, height: hgt, viewBox: `0 0 ${w} ${hgt}`, 'aria-hidden': 'true' });
    if (points.length < 2) return box;
    const n = values.length - 1 || 1;
    const max = Math.max(1, ...points.map(([, v]) => v));
    const d = points.map(([i, v]) => `${((i / n) * (w - 2) + 1).toFixed(1)},${(hgt - 2 - (v / max) * (hgt - 4)).toFixed(1)}`).join(' ');
    box.appendChild(svg('polyline', { points: d, fill: 'none', stroke: color, 'stroke-width': 1.5 }));
    return box;
  }

  // ---- timeline ------------------------------------------------------------------------------------
  function timelineFilters(params) {
    return {
      type: params.get('type') || '', node: params.get('node') || '', container: params.get('container') || '',
      outcome: params.get('outcome') || '', period: params.get('period') || '24h',
      from: params.get('from') || '', to: params.get('to') || '',
    };
  }

  function renderTimeline(params) {
    const filters = timelineFilters(params);
    state.timeline = { filters, ids: new Set(), count: 0, range: null, selected: null };
    const main = clear($('#main'));
    main.appendChild(h('h1', {}, 'Timeline'));
    const select = (id, label, options, value) => h('label', {}, label, h('select', { id, on: { change: applyFilters } },
      options.map(([v, text]) => h('option', { value: v, selected: v === value }, text))));
    const nodes = Array.from(new Set([...state.nodes, filters.node].filter(Boolean)));
    const custom = filters.period === 'custom';
    main.appendChild(h('form', { class: 'filters', id: 'filters', on: { submit: (e) => { e.preventDefault(); applyFilters(); } } },
      select('f-type', 'Type', [['', 'any type'], ...KINDS.map((k) => [k, kindLabel(k)])], filters.type),
      select('f-node', 'Node', [['', 'any node'], ...nodes.map((n) => [n, n])], filters.node),
      h('label', {}, 'Container', h('input', { id: 'f-container', type: 'search', placeholder: 'name contains…', value: filters.container, on: { change: applyFilters } })),
      select('f-outcome', 'Result', [['', 'any result'], ...OUTCOMES.map((o) => [o, o.replace('_', ' ')])], filters.outcome),
      select('f-period', 'Time range', [['15m', 'last 15 minutes'], ['1h', 'last hour'], ['6h', 'last 6 hours'], ['24h', 'last 24 hours'], ['7d', 'last 7 days'], ['custom', 'custom…']], filters.period),
      h('label', { hidden: !custom }, 'From (UTC)', h('input', { id: 'f-from', type: 'datetime-local', step: 1, value: filters.from, on: { change: applyFilters } })),
      h('label', { hidden: !custom }, 'To (UTC)', h('input', { id: 'f-to', type: 'datetime-local', step: 1, value: filters.to, on: { change: applyFilters } })),
      h('button', { type: 'submit' }, 'Apply')));
    main.appendChild(h('p', { class: 'muted', id: 'event-count' }, 'Loading…'));
    main.appendChild(h('div', { class: 'panel' }, h('table', { id: 'events' },
      h('thead', {}, h('tr', {}, [['Time', 't-time'], ['Type', 't-type'], ['Node', 't-node'], ['Container', 't-container'],
        ['Action', 't-action'], ['Result', 't-result'], ['Detail', 't-reason']].map(([t, c]) => h('th', { class: c }, t)))),
      h('tbody', {}))));
    loadTimeline();
  }

  function applyFilters() {
    const params = new URLSearchParams();
    const put = (key, id) => { const v = $(id).value.trim(); if (v) params.set(key, v); };
    put('type', '#f-type'); put('node', '#f-node'); put('container', '#f-container'); put('outcome', '#f-outcome');
    params.set('period', $('#f-period').value);
    if ($('#f-period').value === 'custom') { put('from', '#f-from'); put('to', '#f-to'); }
    location.hash = `#/timeline?${params.toString()}`;
  }

  function utcInput(value) { return value ? Date.parse(`${value.length === 16 ? `${value}:00` : value}Z`) : NaN; }

  function timelineRange(filters, now) {
    if (filters.period === 'custom') {
      const since = utcInput(filters.from), until = utcInput(filters.to);
      return { since: Number.isFinite(since) ? since : now - PERIODS['24h'], until: Number.isFinite(until) ? until : null };
    }
    return { since: now - (PERIODS[filters.period] || PERIODS['24h']), until: null };
  }

  async function loadTimeline() {
    const token = state.token;
    const t = state.timeline;
    const now = serverNow();
    t.range = timelineRange(t.filters, now);
    const query = new URLSearchParams({ since: String(Math.floor(t.range.since)), limit: '500' });
    if (t.range.until) query.set('until', String(Math.floor(t.range.until)));
    if (t.filters.type) query.set('types', t.filters.type);
    for (const key of ['node', 'container', 'outcome']) if (t.filters[key]) query.set(key, t.filters[key]);
    let data;
    try { data = await api(`/api/events?${query}`); } catch (err) { if (token === state.token) failed($('#main'), err); return; }
    if (token !== state.token) return;
    t.range.since = data.since_ms;
    const body = clear($('#events tbody'));
    for (const ev of data.events) { t.ids.add(ev.id); body.appendChild(eventRow(ev, false)); }
    t.count = data.matched;
    t.shown = data.events.length;
    updateCount(data.truncated);
    if (data.events.length === 0) body.appendChild(h('tr', { class: 'none' }, h('td', { colspan: 7, class: 'empty' }, 'No event matches.')));
  }

  function updateCount(truncated) {
    const t = state.timeline;
    const more = t.count > t.shown ? ` (newest ${t.shown} shown)` : '';
    $('#event-count').textContent = `${t.count} event${t.count === 1 ? '' : 's'}${more}${truncated ? ', more than could be counted' : ''}`;
  }

  function timelineMatches(ev) {
    const f = state.timeline.filters;
    const range = state.timeline.range;
    if (!range || (range.until && ev.time_ms >= range.until)) return false;
    return (!f.type || f.type === ev.kind) && (!f.node || f.node === ev.node)
      && (!f.container || (ev.container_name || '').toLowerCase().includes(f.container.toLowerCase()))
      && (!f.outcome || f.outcome === ev.outcome);
  }

  function timelineInsert(ev) {
    const t = state.timeline;
    if (!t || t.ids.has(ev.id) || !timelineMatches(ev)) return;
    t.ids.add(ev.id);
    const body = $('#events tbody');
    const none = $('tr.none', body);
    if (none) none.remove();
    const row = eventRow(ev, true);
    const after = Array.from(body.children).find((r) => compareIds(r.dataset.id, ev.id) < 0);
    body.insertBefore(row, after || null);
    t.count += 1;
    t.shown += 1;
    updateCount(false);
  }

  function compareIds(a, b) {
    const [am, as] = (a || '0-0').split('-').map(Number);
    const [bm, bs] = (b || '0-0').split('-').map(Number);
    return am - bm || as - bs;
  }

  function eventRow(ev, fresh) {
    const row = h('tr', { class: `clickable${fresh ? ' fresh' : ''}`, dataset: { id: ev.id, kind: ev.kind }, on: { click: () => {
      for (const r of row.parentNode.querySelectorAll('tr.selected')) r.classList.remove('selected');
      row.classList.add('selected');
      openDetails(ev.id);
    } } },
    h('td', { class: 'mono t-time' }, fmtTime(ev.time_ms)),
    h('td', { class: 't-type' }, pill(kindLabel(ev.kind), KIND_CLASS[ev.kind])),
    h('td', { class: 't-node' }, ev.node),
    h('td', { class: 't-container' }, ev.container_name),
    h('td', { class: 't-action' }, ev.action || ''),
    h('td', { class: 't-result' }, resultOf(ev)),
    h('td', { class: 'reason t-reason', title: ev.reason }, ev.reason));
    return row;
  }

  // ---- event details -------------------------------------------------------------------------------
  async function openDetails(id) {
    const drawer = $('#details');
    drawer.hidden = false;
    document.body.classList.add('with-details');
    clear(drawer).appendChild(h('p', { class: 'muted' }, 'Loading…'));
    let data;
    try { data = await api(`/api/events/${encodeURIComponent(id)}`); } catch (err) {
      clear(drawer).appendChild(h('p', { class: 'error' }, err.message));
      return;
    }
    const ev = data.event;
    clear(drawer);
    drawer.dataset.id = ev.id;
    drawer.appendChild(h('button', { class: 'close', id: 'details-close', on: { click: closeDetails } }, 'Close'));
    drawer.appendChild(h('h1', {}, pill(kindLabel(ev.kind), KIND_CLASS[ev.kind]), ' ', ev.container_name || ev.node || 'fleet'));
    const facts = [
      ['Time', fmtTime(ev.time_ms)], ['Event id', ev.id], ['Node', ev.node], ['Container', ev.container_name],
      ['Container id', shortId(ev.container_id)], ['Action', ev.action], ['Arguments', (ev.arguments || []).join(' ')],
      ['Result', ev.outcome ? ev.outcome.replace('_', ' ') : null], ['Rejection', ev.rejection ? ev.rejection.replace(/_/g, ' ') : null],
      ['Confidence', ev.confidence !== undefined && ev.confidence !== null ? ev.confidence.toFixed(2) : null],
      ['Analysis method', ev.analysis_method], ['Decided by', ev.decided_by], ['Command id', ev.command_id],
      ['Exit code', ev.exit_code], ['Observed at', ev.observed_ms ? fmtTime(ev.observed_ms) : null],
      ['Duration', ev.duration_ms !== undefined && ev.duration_ms !== null ? `${ev.duration_ms} ms` : null],
      ['Silenced', ev.silenced ? 'yes' : null],
    ].filter(([, v]) => v !== undefined && v !== null && v !== '');
    drawer.appendChild(h('section', {}, h('dl', { class: 'facts', id: 'details-facts' },
      facts.map(([k, v]) => [h('dt', {}, k), h('dd', { dataset: { field: k.toLowerCase().replace(/ /g, '_') } }, String(v))]))));
    drawer.appendChild(h('section', {}, h('h3', {}, ev.kind === 'remediation_needed' || ev.kind === 'false_alarm' ? 'Decision' : 'Reason'),
      h('pre', { dataset: { field: 'reason' } }, ev.reason)));
    if (ev.anomalies && ev.anomalies.length) {
      drawer.appendChild(h('section', {}, h('h3', {}, 'Anomalies'), h('ul', {}, ev.anomalies.map((a) =>
        h('li', {}, `${kindLabel(a.kind)} (${a.severity}): ${a.actual} against a threshold of ${a.threshold}`)))));
    }
    if (ev.evidence) drawer.appendChild(h('section', { class: 'evidence', dataset: { field: 'evidence' } }, h('h3', {}, 'Evidence'), evidenceView(ev.evidence)));
    if (ev.output) drawer.appendChild(h('section', {}, h('h3', {}, 'Output'), h('pre', { dataset: { field: 'output' } }, ev.output)));
    drawer.appendChild(h('section', {}, h('h3', {}, 'What happened'), trail(data.related, ev.id, 'related')));
    drawer.appendChild(h('section', {}, h('h3', {}, 'Audit trail'), data.audit.length === 0
      ? h('p', { class: 'muted' }, 'No audit record (only decisions, rejections, results and operator actions are audited).')
      : trail(data.audit, null, 'audit')));
  }

  function trail(events, current, id) {
    return h('ul', { class: 'trail', id: `details-${id}` }, events.map((e) => h('li', { dataset: { id: e.id } },
      h('div', {}, h('span', { class: 'mono' }, fmtTime(e.time_ms)), ' ', pill(kindLabel(e.kind), KIND_CLASS[e.kind]), ' ', resultOf(e),
        e.decided_by ? h('span', { class: 'muted' }, ` by ${e.decided_by}`) : null,
        current && e.id !== current ? [' ', h('a', { href: '#', on: { click: (x) => { x.preventDefault(); openDetails(e.id); } } }, 'open')] : null),
      h('div', { class: 'muted' }, e.reason))));
  }

  function evidenceView(text) {
    let doc;
    try { doc = JSON.parse(text); } catch (_) { return h('pre', {}, text); }
    const box = h('div', {});
    const lines = (title, list) => (list && list.length ? [h('h3', {}, title), h('pre', { class: `evidence-${title.toLowerCase().replace(/ /g, '-')}` }, list.join('\n'))] : null);
    const { log_tail: logTail, health_outputs: healthOutputs, ...rest } = doc;
    box.appendChild(valueView(rest));
    append(box, [lines('Log tail', logTail), lines('Health check output', healthOutputs)]);
    return box;
  }

  function valueView(value) {
    if (value === null || value === undefined) return document.createTextNode('—');
    if (Array.isArray(value)) {
      if (value.every((v) => typeof v !== 'object' || v === null)) return document.createTextNode(value.join(', ') || '—');
      return h('ol', {}, value.map((v) => h('li', {}, valueView(v))));
    }
    if (typeof value === 'object') {
      return h('dl', { class: 'facts' }, Object.entries(value).map(([k, v]) => [h('dt', {}, k.replace(/_/g, ' ')), h('dd', {}, valueView(v))]));
    }
    return document.createTextNode(typeof value === 'number' && !Number.isInteger(value) ? value.toFixed(2) : String(value));
  }

  // ---- container page ------------------------------------------------------------------------------
  function renderContainer(node, id) {
    state.container = { node, id, name: null };
    const main = clear($('#main'));
    main.appendChild(h('p', {}, h('a', { href: '#/overview' }, '← Overview')));
    main.appendChild(h('div', { id: 'container-head' }, h('p', { class: 'muted' }, 'Loading…')));
    main.appendChild(h('div', { id: 'container-admin' }));
    main.appendChild(h('h2', {}, 'Metrics'));
    main.appendChild(h('div', { class: 'charts', id: 'charts' }));
    main.appendChild(h('h2', {}, 'Events'));
    main.appendChild(h('div', { class: 'panel' }, h('table', { id: 'container-events' },
      h('thead', {}, h('tr', {}, ['Time', 'Type', 'Action', 'Result', 'Detail'].map((t) => h('th', {}, t)))), h('tbody', {}))));
    loadContainer();
    state.timer = setInterval(loadContainer, 5000);
  }

  async function loadContainer() {
    const token = state.token;
    const c = state.container;
    let data;
    try { data = await api(`/api/containers/${encodeURIComponent(c.node)}/${encodeURIComponent(c.id)}`); } catch (err) {
      if (token === state.token) failed($('#container-head'), err);
      return;
    }
    if (token !== state.token) return;
    const info = data.container;
    const firstLoad = c.name === null;
    c.name = info.name;
    const head = clear($('#container-head'));
    head.appendChild(h('h1', { id: 'container-name' }, info.name, ' ',
      pill(info.status, info.status === 'running' ? 'ok' : 'bad'), ' ',
      info.health !== 'none' ? pill(info.health, info.health === 'healthy' ? 'ok' : info.health === 'unhealthy' ? 'bad' : '') : null));
    const budget = info.budget;
    head.appendChild(h('div', { class: 'row' },
      h('div', { class: 'card grow' }, h('h3', {}, 'Container'), h('dl', { class: 'facts' },
        h('dt', {}, 'Node'), h('dd', {}, info.node), h('dt', {}, 'Id'), h('dd', { class: 'mono' }, shortId(info.id)),
        h('dt', {}, 'Image'), h('dd', {}, info.image), h('dt', {}, 'Restart policy'), h('dd', {}, info.restart_policy || 'no'),
        h('dt', {}, 'Started'), h('dd', {}, fmtTime(info.started_at_ms)), h('dt', {}, 'Last exit code'), h('dd', {}, String(info.exit_code)),
        h('dt', {}, 'CPU'), h('dd', {}, fmtPercent(info.cpu_percent)),
        h('dt', {}, 'Memory'), h('dd', {}, `${fmtPercent(info.memory_percent)} (${fmtBytes(info.memory_used)} of ${fmtBytes(info.memory_limit)})`),
        h('dt', {}, 'Anomalies'), h('dd', {}, info.anomalies.length ? info.anomalies.map((a) => `${kindLabel(a.kind)} (${a.severity})`).join(', ') : 'none'))),
      h('div', { class: 'card grow' }, h('h3', {}, 'Policy'), h('dl', { class: 'facts', id: 'budget' },
        h('dt', {}, 'Budget key'), h('dd', { class: 'mono' }, budget.key),
        h('dt', {}, 'Cooldown'), h('dd', {}, budget.cooldown_remaining_s > 0 ? `${fmtSeconds(budget.cooldown_remaining_s)} left` : 'none'),
        h('dt', {}, 'Actions in the last hour'), h('dd', {}, `${budget.attempts_in_window} of ${budget.max_attempts}`),
        h('dt', {}, 'Circuit breaker'), h('dd', {}, budget.circuit.replace('_', '-') + (budget.circuit_retry_s ? ` (${fmtSeconds(budget.circuit_retry_s)})` : '')),
        h('dt', {}, 'Failed verifications in a row'), h('dd', {}, String(budget.consecutive_failures)),
        h('dt', {}, 'Last action'), h('dd', {}, fmtTime(budget.last_action_ms)),
        h('dt', {}, 'Silence'), h('dd', { id: 'silence-state' }, info.silence ? `until ${fmtTime(info.silence.expires_ms)} by ${info.silence.created_by}: ${info.silence.reason}` : 'none'))),
      h('div', { class: 'card grow' }, h('h3', {}, 'Labels'), Object.keys(info.labels).length === 0 ? h('p', { class: 'muted' }, 'none')
        : h('table', { class: 'labels', id: 'labels' }, h('tbody', {}, Object.entries(info.labels).map(([k, v]) => h('tr', {}, h('td', {}, k), h('td', {}, v))))))));
    if (firstLoad || ($('#container-admin').dataset.silenced === 'yes') !== Boolean(info.silence)) renderContainerAdmin(info);
    renderCharts(data);
    const body = clear($('#container-events tbody'));
    if (data.events.length === 0) body.appendChild(h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'No event in this window.')));
    for (const ev of data.events) {
      body.appendChild(h('tr', { class: 'clickable', dataset: { id: ev.id }, on: { click: () => openDetails(ev.id) } },
        h('td', { class: 'mono' }, fmtTime(ev.time_ms)), h('td', {}, pill(kindLabel(ev.kind), KIND_CLASS[ev.kind])),
        h('td', {}, ev.action || ''), h('td', {}, resultOf(ev)), h('td', { class: 'reason', title: ev.reason }, ev.reason)));
    }
  }

  function renderContainerAdmin(info) {
    const box = clear($('#container-admin'));
    box.dataset.silenced = info.silence ? 'yes' : 'no';
    if (!isAdmin()) return;
    if (info.silence) {
      box.appendChild(h('p', {}, h('button', { id: 'silence-end', class: 'danger', on: { click: async () => {
        try { await post(`/api/silences/${encodeURIComponent(info.silence.id)}/end`); toast('Silence ended.'); loadContainer(); } catch (err) { toast(err.message, true); }
      } } }, 'End the silence')));
      return;
    }
    const duration = h('select', { id: 'silence-duration' }, [['900', '15 minutes'], ['3600', '1 hour'], ['14400', '4 hours'], ['86400', '1 day']]
      .map(([v, t]) => h('option', { value: v, selected: v === '3600' }, t)));
    const reason = h('input', { id: 'silence-reason', type: 'text', maxlength: 500, size: 40, placeholder: 'why (recorded in the log)', required: true });
    box.appendChild(h('h2', {}, 'Silence'));
    box.appendChild(h('form', { class: 'form', id: 'silence-form', on: { submit: async (e) => {
      e.preventDefault();
      try {
        await post('/api/silences', { node: info.node, container: info.name, duration_seconds: Number(duration.value), reason: reason.value });
        toast(`${info.name} is silenced.`);
        loadContainer();
      } catch (err) { toast(err.message, true); }
    } } }, h('label', {}, 'For', duration), h('label', {}, 'Reason', reason), h('button', { id: 'silence-submit', class: 'primary', type: 'submit' }, 'Silence this container')));
  }

  function renderCharts(data) {
    const box = clear($('#charts'));
    const points = data.series;
    const tMax = Math.max(data.now_ms, ...points.map((p) => p.t_ms));
    const tMin = points.length ? Math.min(points[0].t_ms, tMax - 60e3) : tMax - 3600e3;
    const markers = data.events.filter((e) => MARKER_COLOR[e.kind] && e.time_ms >= tMin && e.time_ms <= tMax)
      .map((e) => ({ t: e.time_ms, color: MARKER_COLOR[e.kind], label: `${fmtTime(e.time_ms)} ${kindLabel(e.kind)}${e.outcome ? `: ${e.outcome}` : ''} — ${e.reason}` }));
    const pick = (key) => points.map((p) => [p.t_ms, p[key]]);
    const charts = [
      ['CPU', '%', [['CPU %', '#2457c5', pick('cpu_percent')]], (v, max) => `${v.toFixed(max < 4 ? 1 : 0)} %`],
      ['Memory', '%', [['memory %', '#8a3ffc', pick('memory_percent')]], (v, max) => `${v.toFixed(max < 4 ? 1 : 0)} %`],
      ['Network', 'B/s', [['received', '#1e7d43', pick('net_rx_per_s')], ['sent', '#b36b00', pick('net_tx_per_s')]], (v) => `${fmtBytes(v)}/s`],
      ['Block I/O', 'B/s', [['read', '#2457c5', pick('block_read_per_s')], ['written', '#b3261e', pick('block_write_per_s')]], (v) => `${fmtBytes(v)}/s`],
    ];
    for (const [title, unit, series, fmt] of charts) {
      box.appendChild(h('div', { class: 'chart', dataset: { chart: title.toLowerCase().replace(/[^a-z]/g, '') } }, h('h3', {}, title),
        points.length === 0 ? h('p', { class: 'muted' }, 'No samples yet.') : lineChart(series, tMin, tMax, markers, fmt, unit === '%'),
        h('div', { class: 'legend' }, series.map(([name, color]) => h('span', {}, h('span', { class: 'swatch', style: `background:${color}` }), name)),
          markers.length ? h('span', {}, `${markers.length} event${markers.length === 1 ? '' : 's'} marked`) : null)));
    }
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const step = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * step) return m * step;
    return 10 * step;
  }

  function lineChart(series, tMin, tMax, markers, fmt, percent) {
    const minTop = percent ? 1 : 1024;
    const W = 640, H = 190, L = 64, R = 12, T = 10, B = 24;
    const values = series.flatMap(([, , pts]) => pts.map(([, v]) => v)).filter((v) => v !== null && v !== undefined);
    const top = Math.max(minTop, ...values);
    const yMax = percent && top <= 100 ? Math.min(100, niceMax(top * 1.1)) : niceMax(top * 1.1);
    const x = (t) => L + ((t - tMin) / Math.max(1, tMax - tMin)) * (W - L - R);
    const y = (v) => T + (1 - v / yMax) * (H - T - B);
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
    for (let i = 0; i <= 4; i += 1) {
      const v = (yMax * i) / 4;
      chart.appendChild(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'gridline' }));
      chart.appendChild(svg('text', { x: L - 6, y: y(v) + 3, 'text-anchor': 'end', class: 'axis' }, fmt(v, yMax)));
    }
    for (let i = 0; i <= 4; i += 1) {
      const t = tMin + ((tMax - tMin) * i) / 4;
      chart.appendChild(svg('text', { x: x(t), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'axis' }, fmtClock(t)));
    }
    for (const marker of markers) {
      const g = svg('g', { class: 'marker' });
      g.appendChild(svg('line', { x1: x(marker.t), x2: x(marker.t), y1: T, y2: H - B, stroke: marker.color, 'stroke-width': 1.5, 'stroke-dasharray': '4 3' }));
      g.appendChild(svg('path', { d: `M${x(marker.t) - 5},${T} h10 l-5,7 z`, fill: marker.color }));
      g.appendChild(svg('title', {}, marker.label));
      chart.appendChild(g);
    }
    for (const [name, color, pts] of series) {
      let d = '';
      let open = false;
      for (const [t, v] of pts) {
        if (v === null || v === undefined) { open = false; continue; }
        d += `${open ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
        open = true;
      }
      if (d) chart.appendChild(svg('path', { d, fill: 'none', stroke: color, 'stroke-width': 1.8, 'stroke-linejoin': 'round' }, svg('title', {}, name)));
    }
    return chart;
  }

  // ---- analytics -----------------------------------------------------------------------------------
  function renderAnalytics(params) {
    const period = PERIODS[params.get('period')] ? params.get('period') : '24h';
    state.analytics = { period };
    const main = clear($('#main'));
    main.appendChild(h('h1', {}, 'Analytics'));
    main.appendChild(h('div', { class: 'filters' }, h('label', {}, 'Period', h('select', { id: 'a-period', on: { change: (e) => { location.hash = `#/analytics?period=${e.target.value}`; } } },
      [['1h', 'last hour'], ['24h', 'last 24 hours'], ['7d', 'last 7 days'], ['30d', 'last 30 days']].map(([v, t]) => h('option', { value: v, selected: v === period }, t))))));
    main.appendChild(h('div', { id: 'analytics' }, h('p', { class: 'muted' }, 'Loading…')));
    loadAnalytics();
  }

  async function loadAnalytics() {
    const token = state.token;
    const span = PERIODS[state.analytics.period];
    let data;
    try {
      const session = await api('/api/session');
      data = await api(`/api/analytics?since=${session.now_ms - span}&until=${session.now_ms}`);
    } catch (err) { if (token === state.token) failed($('#analytics'), err); return; }
    if (token !== state.token) return;
    const box = clear($('#analytics'));
    box.appendChild(h('p', { class: 'muted', id: 'analytics-period' }, `From ${fmtTime(data.period.since_ms)} to ${fmtTime(data.period.until_ms)}, counted from the event log.`));
    box.appendChild(h('div', { class: 'cards', id: 'analytics-cards' },
      metricCard('remediations', 'Remediations', String(data.remediations),
        `${data.successes} succeeded, ${data.failures} failed, ${data.refused} refused, ${data.not_applicable} not applicable`),
      metricCard('success_rate', 'Success rate', fmtRate(data.success_rate), 'verified successes among remediations'),
      metricCard('false_alarm_rate', 'False alarm rate', fmtRate(data.false_alarm_rate), `${data.false_alarms} false alarms among ${data.decisions} decisions`),
      metricCard('mttr', 'Detection to recovery', fmtMillis(data.mean_time_to_recovery_ms),
        `mean over ${data.recoveries_measured} verified recover${data.recoveries_measured === 1 ? 'y' : 'ies'}`)));
    box.appendChild(h('h2', {}, 'Most-remediated containers'));
    const top = data.most_remediated;
    box.appendChild(h('div', { class: 'row' },
      h('div', { class: 'panel grow' }, top.length === 0 ? h('p', { class: 'empty' }, 'No remediation in this period.')
        : h('table', { id: 'most-remediated' }, h('thead', {}, h('tr', {}, h('th', {}, 'Container'), h('th', {}, 'Node'), h('th', { class: 'num' }, 'Remediations'), h('th', { class: 'num' }, 'Succeeded'))),
          h('tbody', {}, top.map((c) => h('tr', { dataset: { container: c.container } }, h('td', {}, c.container), h('td', {}, c.node),
            h('td', { class: 'num' }, String(c.remediations)), h('td', { class: 'num' }, String(c.successes))))))),
      top.length ? h('div', { class: 'chart grow' }, barChart(top)) : null));
  }

  function metricCard(key, label, value, hint) {
    return h('div', { class: 'card', dataset: { metric: key } }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value), h('div', { class: 'hint' }, hint));
  }

  function barChart(top) {
    const rowH = 24, W = 520, L = 170, H = top.length * rowH + 8;
    const max = Math.max(...top.map((c) => c.remediations), 1);
    const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'bars', role: 'img' });
    top.forEach((c, i) => {
      const y = 4 + i * rowH;
      const name = c.container.length > 24 ? `${c.container.slice(0, 23)}…` : c.container;
      chart.appendChild(svg('text', { x: L - 8, y: y + 15, 'text-anchor': 'end' }, name));
      const w = ((W - L - 40) * c.remediations) / max;
      chart.appendChild(svg('rect', { x: L, y: y + 3, width: Math.max(1, w), height: rowH - 8, fill: '#c7d5f5', rx: 3 }));
      chart.appendChild(svg('rect', { x: L, y: y + 3, width: Math.max(0, ((W - L - 40) * c.successes) / max), height: rowH - 8, fill: '#2457c5', rx: 3 }));
      chart.appendChild(svg('text', { x: L + w + 6, y: y + 15 }, String(c.remediations)));
    });
    return chart;
  }

  function closeDetails() {
    $('#details').hidden = true;
    document.body.classList.remove('with-details');
    for (const r of document.querySelectorAll('tr.selected')) r.classList.remove('selected');
  }
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDetails(); });
  start().catch((err) => failed($('#main'), err));
})();
