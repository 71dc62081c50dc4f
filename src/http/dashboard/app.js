// The hookbus dashboard: a client of the admin API, nothing more.
//
// Everything shown comes from receivers, publishers or users (names, URLs, response bodies,
// payloads), so it is only ever put in the page as text (textContent, text nodes,
// attributes that are not URLs or handlers); nothing here parses HTML. The token lives in
// this tab's sessionStorage and goes only into the Authorization header.
'use strict';

const BASE = location.pathname.replace(/\/dashboard\/?$/, '');
const TOKEN_KEY = 'hookbus.token';
const WORKSPACE_KEY = 'hookbus.workspace';
const REFRESH_MS = 5000;

const $ = (id) => document.getElementById(id);

const state = {
  webhooks: [],
  // Server names by id, when several servers share the database.
  serverNames: new Map(),
  sort: { key: 'attention', descending: true },
  endpoint: null,
  delivery: null,
  rendered: new Map(),
};

// An element with attributes and children (strings become text nodes).
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== undefined && child !== null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const workspace = sessionStorage.getItem(WORKSPACE_KEY);
  let url = `${BASE}/api/v1${path}`;
  if (workspace) url += `${url.includes('?') ? '&' : '?'}workspace_id=${encodeURIComponent(workspace)}`;
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
  });
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = json && json.error ? json.error : { code: `http_${response.status}`, message: text || response.statusText };
    throw new ApiError(response.status, error.code, error.message);
  }
  return json;
}

function showError(error) {
  const box = $('error');
  box.textContent = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error.message || error);
  box.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

// Runs an action; an API error is shown as the API words it.
async function attempt(action) {
  try {
    const result = await action();
    clearError();
    return result;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) signOut();
    showError(error);
    return undefined;
  }
}

// Replaces `container`'s children only when `data` changed, so a refresh does not move the
// keyboard focus or the selection.
function renderIfChanged(key, data, render) {
  const serialized = JSON.stringify(data);
  if (state.rendered.get(key) === serialized) return;
  state.rendered.set(key, serialized);
  render();
}

const time = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
const ms = (value) => (value === null || value === undefined ? '—' : `${Math.round(value)} ms`);
const percent = (value) => (value === null || value === undefined ? '—' : `${(value * 100).toFixed(1)} %`);

// Sign-in --------------------------------------------------------------------------------

function showSignIn() {
  $('sign-in').hidden = false;
  $('endpoints').hidden = true;
  $('endpoint').hidden = true;
  $('delivery').hidden = true;
  $('sign-out').hidden = true;
  $('workspace-picker').hidden = true;
  $('scope').textContent = '';
  $('token').focus();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(WORKSPACE_KEY);
  state.endpoint = null;
  state.delivery = null;
  state.rendered.clear();
  showSignIn();
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.removeItem(WORKSPACE_KEY);
  try {
    await api('GET', '/health');
  } catch (error) {
    sessionStorage.removeItem(TOKEN_KEY);
    showError(error);
    return;
  }
  clearError();
  $('token').value = '';
  await start();
}

// Signed in: the admin token may pick a workspace; a key sees its own only.
async function start() {
  $('sign-in').hidden = true;
  $('endpoints').hidden = false;
  $('sign-out').hidden = false;
  let workspaces = null;
  try {
    workspaces = await api('GET', '/workspaces?limit=500');
  } catch {
    workspaces = null; // A workspace key: the route does not exist for it.
  }
  const picker = $('workspace');
  picker.replaceChildren();
  if (workspaces) {
    const current = sessionStorage.getItem(WORKSPACE_KEY) || '';
    picker.append(el('option', { value: '' }, 'default'));
    for (const workspace of workspaces.data) {
      if (workspace.name === 'default') continue;
      const option = el('option', { value: workspace.id }, workspace.name);
      if (workspace.id === current) option.selected = true;
      picker.append(option);
    }
    $('workspace-picker').hidden = false;
    $('scope').textContent = 'admin';
  } else {
    $('workspace-picker').hidden = true;
    $('scope').textContent = 'workspace key';
  }
  await refresh();
}

// Endpoints ------------------------------------------------------------------------------

// How much an endpoint needs a look: failing ones sort first.
function attention(webhook) {
  if (!webhook.enabled && webhook.disabled_reason && webhook.disabled_reason !== 'manual') return 4;
  if (webhook.enabled && webhook.circuit === 'open') return 3;
  if (webhook.enabled && webhook.circuit !== 'closed') return 2;
  if (webhook.consecutive_failures > 0 || (webhook.success_rate_5m !== null && webhook.success_rate_5m < 1)) return 1;
  return 0;
}

const COLUMNS = [
  { key: 'name', label: 'Name', value: (w) => w.name.toLowerCase() },
  { key: 'url', label: 'URL', value: (w) => w.url },
  { key: 'enabled', label: 'Enabled', value: (w) => (w.enabled ? 1 : 0) },
  { key: 'circuit', label: 'Circuit', value: (w) => w.circuit },
  { key: 'success', label: 'Success (5 min)', value: (w) => w.success_rate_5m ?? 2 },
  { key: 'p50', label: 'p50', value: (w) => w.latency_ms?.p50 ?? -1 },
  { key: 'p99', label: 'p99', value: (w) => w.latency_ms?.p99 ?? -1 },
  { key: 'queue', label: 'Queue', value: (w) => w.queue_depth ?? 0 },
  { key: 'in_flight', label: 'In flight', value: (w) => w.in_flight ?? 0 },
  { key: 'last_error', label: 'Last error', value: (w) => w.last_error ?? '' },
  { key: 'owner', label: 'Owner', value: (w) => ownerName(w) },
  { key: 'attention', label: 'Attention', value: attention, hidden: true },
];

// The server that owns `webhook`, by name (`none` between owners).
const ownerName = (webhook) => (webhook.owner ? state.serverNames.get(webhook.owner) ?? webhook.owner : 'none');

function sortedWebhooks() {
  const column = COLUMNS.find((c) => c.key === state.sort.key);
  const direction = state.sort.descending ? -1 : 1;
  return [...state.webhooks].sort((a, b) => {
    const [x, y] = [column.value(a), column.value(b)];
    if (x < y) return -direction;
    if (x > y) return direction;
    return a.name.localeCompare(b.name);
  });
}

function renderColumns() {
  const row = $('endpoint-columns');
  row.replaceChildren();
  const clustered = state.webhooks.some((w) => 'owner' in w);
  for (const column of COLUMNS) {
    if (column.hidden || (column.key === 'owner' && !clustered)) continue;
    const sorted = state.sort.key === column.key;
    const button = el('button', { type: 'button', 'data-sort': column.key }, column.label, sorted ? (state.sort.descending ? ' ▼' : ' ▲') : '');
    button.addEventListener('click', () => {
      state.sort = { key: column.key, descending: sorted ? !state.sort.descending : false };
      state.rendered.delete('endpoints');
      renderEndpoints();
    });
    row.append(el('th', { 'aria-sort': sorted ? (state.sort.descending ? 'descending' : 'ascending') : 'none' }, button));
  }
}

function circuitBadge(webhook) {
  const kind = webhook.circuit === 'closed' ? 'good' : webhook.circuit === 'open' ? 'bad' : 'warn';
  return el('span', { class: `badge ${kind}` }, webhook.circuit);
}

function renderEndpoints() {
  renderIfChanged('endpoints', [state.webhooks, state.sort, [...state.serverNames]], () => {
    renderColumns();
    const clustered = state.webhooks.some((w) => 'owner' in w);
    const rows = $('endpoint-rows');
    rows.replaceChildren();
    for (const webhook of sortedWebhooks()) {
      const open = el('button', { type: 'button', class: 'link', 'data-webhook': webhook.id }, webhook.name);
      open.addEventListener('click', () => openEndpoint(webhook.id));
      const enabled = webhook.enabled ? 'yes' : `no (${webhook.disabled_reason ?? 'manual'})`;
      const cells = [
        el('td', {}, open),
        el('td', {}, el('code', {}, webhook.url)),
        el('td', {}, enabled),
        el('td', {}, circuitBadge(webhook)),
        el('td', {}, percent(webhook.success_rate_5m)),
        el('td', {}, ms(webhook.latency_ms?.p50)),
        el('td', {}, ms(webhook.latency_ms?.p99)),
        el('td', {}, webhook.queue_depth ?? '—'),
        el('td', {}, webhook.in_flight ?? 0),
        el('td', {}, webhook.last_error ?? ''),
      ];
      if (clustered) cells.push(el('td', {}, ownerName(webhook)));
      rows.append(el('tr', { class: attention(webhook) > 0 ? 'failing' : undefined, 'data-webhook': webhook.id }, ...cells));
    }
    $('no-endpoints').hidden = state.webhooks.length > 0;
  });
}

async function refresh() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return;
  const health = await attempt(() => api('GET', '/health'));
  if (!health) return;
  state.webhooks = health.webhooks;
  state.serverNames = new Map((health.servers || []).map((s) => [s.id, s.name]));
  const totals = health.totals;
  $('totals').textContent = totals
    ? `${totals.events} events · ${totals.pending} pending · ${totals.succeeded} succeeded · ${totals.failed} failed · status ${health.status}`
    : `status ${health.status}`;
  $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  // Several servers on one database: the live ones, for the admin token.
  const servers = health.servers || [];
  $('servers').hidden = servers.length === 0;
  $('servers').textContent = `Servers: ${servers.map((s) => `${s.name} (${s.webhooks} webhooks)`).join(', ')}`;
  renderEndpoints();
  if (state.endpoint) await refreshEndpoint();
  if (state.delivery) await refreshDelivery();
}

// One endpoint ---------------------------------------------------------------------------

async function openEndpoint(id) {
  state.endpoint = id;
  state.delivery = null;
  for (const key of [...state.rendered.keys()]) if (key !== 'endpoints') state.rendered.delete(key);
  $('delivery').hidden = true;
  $('endpoint').hidden = false;
  $('status-filter').value = '';
  await refreshEndpoint();
  $('endpoint-name').scrollIntoView({ block: 'start' });
  $('send-test').focus();
}

function closeEndpoint() {
  const id = state.endpoint;
  state.endpoint = null;
  state.delivery = null;
  $('endpoint').hidden = true;
  $('delivery').hidden = true;
  document.querySelector(`button[data-webhook="${CSS.escape(id || '')}"]`)?.focus();
}

async function refreshEndpoint() {
  const id = state.endpoint;
  const status = $('status-filter').value;
  const query = status ? `?status=${encodeURIComponent(status)}&limit=50` : '?limit=50';
  const loaded = await attempt(() =>
    Promise.all([
      api('GET', `/webhooks/${id}`),
      api('GET', `/webhooks/${id}/activity?minutes=60`),
      api('GET', `/webhooks/${id}/deliveries${query}`),
    ]),
  );
  if (!loaded || state.endpoint !== id) return;
  const [webhook, activity, deliveries] = loaded;
  const live = state.webhooks.find((w) => w.id === id) || {};
  renderIfChanged('endpoint', [webhook, live], () => renderEndpoint(webhook, live));
  renderIfChanged('activity', activity, () => renderCharts(activity.minutes));
  renderIfChanged('deliveries', deliveries, () => renderDeliveries(deliveries.data));
}

function renderEndpoint(webhook, live) {
  state.webhook = webhook;
  $('endpoint-name').textContent = webhook.name;
  const badge = $('endpoint-state');
  badge.textContent = webhook.enabled ? live.circuit ?? 'enabled' : `disabled (${webhook.disabled_reason ?? 'manual'})`;
  badge.className = `badge ${!webhook.enabled || live.circuit === 'open' ? 'bad' : live.circuit === 'closed' ? 'good' : 'warn'}`;
  $('endpoint-url').textContent = webhook.url;
  $('toggle-enabled').textContent = webhook.enabled ? 'Disable' : 'Enable';
  const facts = [
    ['Id', webhook.id],
    ['Events', webhook.events.join(', ')],
    ['Success (5 min)', percent(live.success_rate_5m)],
    ['Latency p50 / p99', `${ms(live.latency_ms?.p50)} / ${ms(live.latency_ms?.p99)}`],
    ['Queue / in flight', `${live.queue_depth ?? '—'} / ${live.in_flight ?? 0}`],
    ['Consecutive failures', live.consecutive_failures ?? 0],
    ['Last success', time(live.last_success_at)],
    ['Last failure', time(live.last_failure_at)],
    ['Last error', live.last_error ?? '—'],
    ['Retries, timeout', `${webhook.max_retries}, ${webhook.timeout_ms} ms`],
  ];
  if ('owner' in live) facts.push(['Owner', ownerName(live)]);
  $('endpoint-facts').replaceChildren(...facts.flatMap(([name, value]) => [el('dt', {}, name), el('dd', {}, value)]));
}

function renderDeliveries(deliveries) {
  const rows = $('delivery-rows');
  rows.replaceChildren();
  for (const delivery of deliveries) {
    const open = el('button', { type: 'button', class: 'link', 'data-delivery': delivery.id }, time(delivery.created_at));
    open.addEventListener('click', () => openDelivery(delivery.id));
    rows.append(
      el(
        'tr',
        { 'data-delivery': delivery.id, 'data-status': delivery.status },
        el('td', {}, open),
        el('td', {}, delivery.event),
        el('td', {}, el('span', { class: `badge ${statusKind(delivery.status)}` }, delivery.status)),
        el('td', {}, delivery.attempt_count),
        el('td', {}, delivery.status_code ?? '—'),
        el('td', {}, delivery.error_message ?? delivery.failure_reason ?? ''),
      ),
    );
  }
  $('no-deliveries').hidden = deliveries.length > 0;
}

const statusKind = (status) => ({ succeeded: 'good', failed: 'bad', pending: 'warn' })[status] || '';

// Charts ---------------------------------------------------------------------------------

const CHART = { width: 1200, height: 170, left: 44, bottom: 18, top: 8 };

function chartFrame(chart, max, minutes) {
  const { width, height, left, bottom, top } = CHART;
  chart.setAttribute('viewBox', `0 0 ${width} ${height}`);
  chart.replaceChildren(
    svg('line', { class: 'grid', x1: left, x2: width, y1: top, y2: top }),
    svg('line', { class: 'grid', x1: left, x2: width, y1: height - bottom, y2: height - bottom }),
    svg('text', { class: 'axis', x: 2, y: top + 8 }, max),
    svg('text', { class: 'axis', x: 2, y: height - bottom }, '0'),
  );
  if (minutes.length) {
    const label = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    chart.append(svg('text', { class: 'axis', x: left, y: height - 4 }, label(minutes[0].minute)));
    const last = svg('text', { class: 'axis', x: width - 2, y: height - 4, 'text-anchor': 'end' }, label(minutes[minutes.length - 1].minute));
    chart.append(last);
  }
}

function renderCharts(minutes) {
  const { width, height, left, bottom, top } = CHART;
  const plot = height - bottom - top;
  const slot = (width - left) / Math.max(minutes.length, 1);

  const outcomes = $('outcome-chart');
  const most = Math.max(1, ...minutes.map((m) => m.succeeded + m.failed + m.pending + m.cancelled));
  chartFrame(outcomes, String(most), minutes);
  minutes.forEach((minute, i) => {
    let y = height - bottom;
    for (const kind of ['succeeded', 'failed', 'pending']) {
      const h = (minute[kind] / most) * plot;
      if (h <= 0) continue;
      y -= h;
      const bar = svg('rect', { class: kind, x: left + i * slot + 1, y, width: Math.max(slot - 2, 1), height: h });
      bar.append(svg('title', {}, `${new Date(minute.minute).toLocaleTimeString()}: ${minute[kind]} ${kind}`));
      outcomes.append(bar);
    }
  });

  const latency = $('latency-chart');
  const slowest = Math.max(1, ...minutes.map((m) => m.p99_ms ?? 0));
  chartFrame(latency, `${slowest} ms`, minutes);
  for (const kind of ['p50', 'p99']) {
    // One polyline per run of minutes with attempts.
    let points = [];
    const flush = () => {
      if (points.length) latency.append(svg('polyline', { class: kind, points: points.join(' ') }));
      points = [];
    };
    minutes.forEach((minute, i) => {
      const value = minute[`${kind}_ms`];
      if (value === null || value === undefined) return flush();
      const [x, y] = [left + (i + 0.5) * slot, height - bottom - (value / slowest) * plot];
      points.push(`${x},${y}`);
      const dot = svg('circle', { class: `${kind} dot`, cx: x, cy: y, r: 2 });
      dot.append(svg('title', {}, `${new Date(minute.minute).toLocaleTimeString()}: ${kind} ${value} ms`));
      latency.append(dot);
    });
    flush();
  }
}

// One delivery ---------------------------------------------------------------------------

async function openDelivery(id) {
  state.delivery = id;
  state.rendered.delete('delivery');
  $('delivery').hidden = false;
  await refreshDelivery();
  $('delivery').scrollIntoView({ block: 'start' });
  $('redeliver').focus();
}

function closeDelivery() {
  const id = state.delivery;
  state.delivery = null;
  $('delivery').hidden = true;
  document.querySelector(`button[data-delivery="${CSS.escape(id || '')}"]`)?.focus();
}

async function refreshDelivery() {
  const id = state.delivery;
  const delivery = await attempt(() => api('GET', `/deliveries/${id}`));
  if (!delivery || state.delivery !== id) return;
  renderIfChanged('delivery', delivery, () => renderDelivery(delivery));
}

function renderDelivery(delivery) {
  $('delivery-id').textContent = delivery.id;
  const badge = $('delivery-status');
  badge.textContent = delivery.status;
  badge.className = `badge ${statusKind(delivery.status)}`;
  const facts = [
    ['Event', `${delivery.event} (${delivery.event_id})`],
    ['Created', time(delivery.created_at)],
    ['Completed', time(delivery.completed_at)],
    ['Next attempt', time(delivery.next_attempt_at)],
    ['Failure reason', delivery.failure_reason ?? '—'],
  ];
  $('delivery-facts').replaceChildren(...facts.flatMap(([name, value]) => [el('dt', {}, name), el('dd', {}, value)]));
  $('attempt-rows').replaceChildren(
    ...delivery.attempts.map((a) =>
      el(
        'tr',
        {},
        el('td', {}, a.attempt),
        el('td', {}, time(a.started_at)),
        el('td', {}, a.status_code ?? '—'),
        el('td', {}, ms(a.duration_ms)),
        el('td', {}, a.error_message ?? ''),
        el('td', {}, el('pre', { class: 'response-body' }, a.response_body ?? '')),
      ),
    ),
  );
  // Exactly the bytes sent (and signed), not reformatted.
  $('payload').textContent = delivery.payload;
}

// Actions --------------------------------------------------------------------------------

// Asks before an action that cannot be undone; resolves to whether the person agreed.
function confirmAction(text) {
  const dialog = $('confirm');
  $('confirm-text').textContent = text;
  return new Promise((resolve) => {
    const done = (answer) => {
      $('confirm-ok').removeEventListener('click', ok);
      $('confirm-cancel').removeEventListener('click', cancel);
      dialog.removeEventListener('cancel', cancel);
      dialog.close();
      resolve(answer);
    };
    const ok = () => done(true);
    const cancel = () => done(false);
    $('confirm-ok').addEventListener('click', ok);
    $('confirm-cancel').addEventListener('click', cancel);
    dialog.addEventListener('cancel', cancel);
    dialog.showModal();
    $('confirm-cancel').focus();
  });
}

function say(text) {
  $('action-result').textContent = text;
}

async function sendTest() {
  const result = await attempt(() => api('POST', `/webhooks/${state.endpoint}/test`, {}));
  if (!result) return;
  const outcome = result.succeeded ? 'succeeded' : `failed (${result.error_message ?? result.status_code})`;
  say(`Test delivery ${result.delivery_id} ${outcome} in ${result.duration_ms} ms.`);
  await refresh();
}

async function toggleEnabled() {
  const webhook = state.webhook;
  const enable = !webhook.enabled;
  if (!enable && !(await confirmAction(`Disable ${webhook.name}? Its pending deliveries fail and nothing more is sent until it is enabled again.`))) return;
  const updated = await attempt(() => api('PATCH', `/webhooks/${webhook.id}`, { enabled: enable }));
  if (!updated) return;
  say(enable ? 'Enabled; the circuit is closed.' : 'Disabled.');
  await refresh();
}

async function rotateSecret() {
  const webhook = state.webhook;
  if (!(await confirmAction(`Rotate the signing secret of ${webhook.name}? The current secret keeps signing beside the new one for 24 hours.`))) return;
  const rotated = await attempt(() => api('POST', `/webhooks/${webhook.id}/secret/rotate`, {}));
  if (!rotated) return;
  say(`New secret: ${rotated.secret} — the previous one is valid until ${time(rotated.previous_valid_until)}.`);
}

// Replays in the background and follows the progress until the replay ends.
async function replay(event) {
  event.preventDefault();
  const since = new Date($('replay-since').value);
  if (Number.isNaN(since.getTime())) return showError(new Error('Pick the time to replay from.'));
  const body = { since: since.toISOString(), status: 'failed', background: true };
  let progress = await attempt(() => api('POST', `/webhooks/${state.endpoint}/replay`, body));
  const button = $('replay').querySelector('button');
  button.disabled = true;
  try {
    while (progress) {
      say(`Replay ${progress.state}: ${progress.requeued} of ${progress.total} failed deliveries since ${since.toLocaleString()} queued again.`);
      if (progress.state !== 'running') break;
      await new Promise((resolve) => setTimeout(resolve, 500));
      const id = progress.id;
      progress = await attempt(() => api('GET', `/replays/${id}`));
    }
  } finally {
    button.disabled = false;
  }
  await refresh();
}

async function redeliver() {
  const delivery = await attempt(() => api('POST', `/deliveries/${state.delivery}/redeliver`));
  if (!delivery) return;
  say(`Delivery ${delivery.id} is queued again.`);
  await refresh();
}

// Wiring ---------------------------------------------------------------------------------

function wire() {
  $('sign-in').addEventListener('submit', (event) => {
    event.preventDefault();
    signIn($('token').value.trim());
  });
  $('sign-out').addEventListener('click', signOut);
  $('workspace').addEventListener('change', () => {
    const workspace = $('workspace').value;
    if (workspace) sessionStorage.setItem(WORKSPACE_KEY, workspace);
    else sessionStorage.removeItem(WORKSPACE_KEY);
    state.endpoint = null;
    state.delivery = null;
    state.rendered.clear();
    $('endpoint').hidden = true;
    $('delivery').hidden = true;
    refresh();
  });
  $('close-endpoint').addEventListener('click', closeEndpoint);
  $('close-delivery').addEventListener('click', closeDelivery);
  $('send-test').addEventListener('click', sendTest);
  $('toggle-enabled').addEventListener('click', toggleEnabled);
  $('rotate-secret').addEventListener('click', rotateSecret);
  $('replay').addEventListener('submit', replay);
  $('redeliver').addEventListener('click', redeliver);
  $('status-filter').addEventListener('change', () => {
    state.rendered.delete('deliveries');
    refreshEndpoint();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || $('confirm').open) return;
    if (state.delivery) closeDelivery();
    else if (state.endpoint) closeEndpoint();
  });
  const since = new Date(Date.now() - 3600 * 1000);
  since.setMinutes(since.getMinutes() - since.getTimezoneOffset());
  $('replay-since').value = since.toISOString().slice(0, 16);
  setInterval(() => {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
}

wire();
if (sessionStorage.getItem(TOKEN_KEY)) start();
else showSignIn();
