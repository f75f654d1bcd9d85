// The geowebdns admin console. Plain ES modules, no build step.
import { api, ApiProblem, explain, getToken, setToken, seg } from './api.js';
import { MapView, polygonsOf } from './map.js';

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** Builds an element: h('li', {class: 'x'}, 'text', child, ...). Text is never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

const state = {
  me: null,           // {sub, jti, scopes, exp, isAdmin, own: [ids]}
  current: null,      // {record, endpoints, forbidden}
  editing: null,      // the endpoint being edited (null: a new one)
  harvest: true,      // false once the server showed it has no harvest route
  auditAfter: null,
  createFeature: null,
};

// ---------------------------------------------------------------- status

let statusTimer = 0;
/** Announces a message in the aria-live region. kind: info | ok | error. */
function say(message, kind = 'info') {
  const s = $('#status');
  s.className = `status ${kind}`;
  // Re-set the text so that repeated messages are announced again.
  s.textContent = '';
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { s.textContent = message; }, 30);
}

/** Shows a problem box (role=alert elements) with an optional action button. */
function showProblem(box, message, action) {
  box.replaceChildren(h('p', {}, message));
  if (action) box.append(h('button', { type: 'button', onclick: action.run }, action.label));
  box.hidden = false;
}

function handleAuthLoss(p) {
  if (p instanceof ApiProblem && p.status === 401) {
    signOut(explain(p));
    return true;
  }
  return false;
}

// ---------------------------------------------------------------- sign in

async function signIn(token) {
  $('#token-error').textContent = '';
  $('#token').removeAttribute('aria-invalid');
  setToken(token);
  try {
    const { body } = await api('/admin/v1/whoami');
    const scopes = Array.isArray(body.scopes) ? body.scopes : [];
    state.me = {
      ...body,
      scopes,
      isAdmin: scopes.includes('admin'),
      own: scopes.filter((s) => s.startsWith('jurisdiction:')).map((s) => s.slice('jurisdiction:'.length)),
    };
  } catch (p) {
    setToken(null);
    state.me = null;
    $('#token-error').textContent = p instanceof ApiProblem && p.status === 401
      ? `This token was not accepted: ${p.detail} (${p.code}).`
      : explain(p);
    $('#token').setAttribute('aria-invalid', 'true');
    $('#token').focus();
    return;
  }
  $('#token').value = '';
  showSignedIn();
}

function signOut(message) {
  setToken(null);
  state.me = null;
  state.current = null;
  $('#who').hidden = true;
  $('#nav').hidden = true;
  $$('.view').forEach((v) => { v.hidden = true; });
  $('#signin').hidden = false;
  history.replaceState(null, '', location.pathname + location.search);
  say(message || 'Signed out. The token was removed from this tab.', message ? 'error' : 'info');
  $('#token').focus();
}

function may(id) {
  return !!state.me && (state.me.isAdmin || state.me.own.includes(id));
}

async function showSignedIn() {
  const me = state.me;
  $('#signin').hidden = true;
  $('#who').hidden = false;
  $('#nav').hidden = false;
  $('#who-sub').textContent = me.sub;
  $('#who-scopes').replaceChildren(...me.scopes.map((s) => h('span', { class: 'badge' }, s)));
  $('#who-exp').textContent = me.exp ? `· expires ${new Date(me.exp * 1000).toISOString().replace('.000Z', 'Z')}` : '';
  $$('[data-admin-only]').forEach((e) => {
    e.hidden = !me.isAdmin;
    if ('disabled' in e) e.disabled = !me.isAdmin;
  });
  $('#pick-own').hidden = me.own.length === 0;
  const select = $('#pick-select');
  select.replaceChildren(...me.own.map((id) => h('option', { value: id }, id)));
  showView('manage');
  say(`Signed in as ${me.sub}. ${me.isAdmin ? 'Admin: you may manage every jurisdiction.' : `You may manage ${me.own.length === 1 ? 'one jurisdiction' : `${me.own.length} jurisdictions`}.`}`, 'ok');
  // Names for the picker (public records), best effort.
  me.own.forEach(async (id, i) => {
    try {
      const { body } = await api(`/v1/jurisdictions/${seg(id)}`, { auth: false });
      select.options[i].textContent = `${body.name} (${body.tier}, ${id})`;
    } catch { /* keep the id */ }
  });
  if (!routeFromHash()) {
    if (me.own.length) await openJurisdiction(me.own[0]);
    else showEmptyMap();
  }
}

// ---------------------------------------------------------------- views

function showView(name) {
  if (name !== 'manage' && !(state.me && state.me.isAdmin)) name = 'manage';
  $$('.view').forEach((v) => { v.hidden = v.id !== `view-${name}`; });
  $$('#nav button').forEach((b) => {
    if (b.dataset.view === name) b.setAttribute('aria-current', 'page'); else b.removeAttribute('aria-current');
  });
  if (name === 'manage') { mainMap.render(); }
  if (name === 'create') { createMap.render(); }
  if (name === 'audit' && !$('#audit-table tbody').children.length) loadAudit(null);
}

// ---------------------------------------------------------------- map

const tileUrl = document.body.dataset.tileUrl || null;
let mainMap, createMap;

function showEmptyMap() {
  mainMap.setLayers([]);
  mainMap.fit([0, 0.25, 1, 0.75]);
  $('#map-empty').hidden = false;
  say('Search for a jurisdiction to draw it, or click the map to see who serves a point.');
}

/** A simplification tolerance (metres) fit for drawing a jurisdiction of this area. */
function simplifyFor(record) {
  const side = Math.sqrt(Math.max(record.area_km2 || 1, 0.01)) * 1000;
  return Math.max(0, Math.round(side / 400));
}

async function boundary(record) {
  const { body } = await api(`/v1/jurisdictions/${seg(record.id)}/boundary?simplify=${simplifyFor(record)}`, { auth: false });
  return body;
}

/** The record and its parents: [self, parent, grandparent, ...]. */
async function chainOf(record) {
  const chain = [record];
  let parent = record.parent;
  while (parent && chain.length < 8) {
    try {
      const { body } = await api(`/v1/jurisdictions/${seg(parent)}`, { auth: false });
      chain.push(body);
      parent = body.parent;
    } catch { break; }
  }
  return chain;
}

async function drawJurisdiction(record) {
  const chain = await chainOf(record);
  const features = await Promise.all(chain.map((r) => boundary(r).catch(() => null)));
  const layers = [];
  for (let i = chain.length - 1; i >= 0; i--) {
    if (!features[i]) continue;
    layers.push({
      geojson: features[i],
      className: i === 0 ? 'focus' : 'parent',
      focus: i === 0,
      title: `${chain[i].name} (${chain[i].tier})`,
    });
  }
  mainMap.setLayers(layers);
  mainMap.fit();
  $('#map-empty').hidden = layers.length > 0;
  return chain;
}

// ---------------------------------------------------------------- jurisdiction panel

// Which openJurisdiction call is the latest: an answer that arrives after
// another jurisdiction was opened must not draw over it.
let opening = 0;

async function openJurisdiction(id) {
  const mine = ++opening;
  const panel = $('#jurisdiction-panel');
  panel.hidden = false;
  $('#endpoint-editor').hidden = true;
  $('#jp-title').textContent = id;
  $('#jp-meta').textContent = 'Loading…';
  $('#jp-error').hidden = true;
  $('#jp-body').hidden = true;
  history.replaceState(null, '', `#jurisdiction=${encodeURIComponent(id)}`);
  const select = $('#pick-select');
  if ([...select.options].some((o) => o.value === id)) select.value = id;
  let record;
  try {
    ({ body: record } = await api(`/v1/jurisdictions/${seg(id)}`, { auth: false }));
  } catch (p) {
    if (mine !== opening) return;
    $('#jp-meta').textContent = '';
    showProblem($('#jp-error'), explain(p));
    say(explain(p), 'error');
    return;
  }
  if (mine !== opening) return;
  state.current = { record, endpoints: [], forbidden: false };
  $('#jp-title').textContent = record.name;
  const chainText = h('span');
  $('#jp-meta').replaceChildren(`${record.tier} · ${record.id}`, record.parent ? ` · in ${record.parent}` : '', chainText);
  drawJurisdiction(record).then((chain) => {
    if (chain.length > 1) chainText.textContent = ` (${chain.slice(1).map((r) => r.name).join(' › ')})`;
  }).catch((p) => say(`The boundary could not be drawn: ${explain(p)}`, 'error'));
  await loadEndpoints();
}

async function loadEndpoints() {
  const cur = state.current;
  if (!cur) return;
  try {
    const { body } = await api(`/admin/v1/jurisdictions/${seg(cur.record.id)}/endpoints`);
    if (state.current !== cur) return; // another jurisdiction was opened meanwhile
    cur.endpoints = Array.isArray(body.items) ? body.items : [];
    $('#jp-error').hidden = true;
    $('#jp-body').hidden = false;
    renderEndpoints();
  } catch (p) {
    if (handleAuthLoss(p)) return;
    if (state.current !== cur) return;
    cur.forbidden = p instanceof ApiProblem && p.status === 403;
    $('#jp-body').hidden = true;
    const msg = cur.forbidden
      ? `You cannot manage ${cur.record.name} (${cur.record.id}) with this token. ${explain(p)}`
      : explain(p);
    showProblem($('#jp-error'), msg);
    say(msg, 'error');
  }
}

function when(t) {
  return t ? t.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : 'never';
}

/** Health facts of an endpoint; fields a server does not send yet are left out. */
function health(ep) {
  const status = ep.status || 'unknown';
  const facts = [h('span', { class: `health ${status}` }, status)];
  const add = (label, v) => { if (v !== undefined && v !== null && v !== '') facts.push(h('span', { class: 'fact' }, `${label} ${v}`)); };
  add('HTTP', ep.http_status);
  if (ep.latency_ms !== undefined && ep.latency_ms !== null) add('latency', `${ep.latency_ms} ms`);
  if (ep.consecutive_failures) add('failures in a row:', ep.consecutive_failures);
  add('checked', ep.last_checked ? when(ep.last_checked) : (ep.last_checked === null ? 'never' : undefined));
  if (ep.last_ok) add('last up', when(ep.last_ok));
  const out = h('div', { class: 'health-line' }, 'Health: ', facts);
  if (ep.last_error) out.append(h('p', { class: 'last-error' }, `Last error: ${ep.last_error}`));
  return out;
}

function servicesList(services) {
  if (!services || !services.length) return h('p', { class: 'muted' }, 'No services listed.');
  return h('ul', { class: 'services' }, services.map((s) => h('li', {},
    h('code', {}, s.service_code), ' ', s.service_name,
    s.group ? h('span', { class: 'muted' }, ` · ${s.group}`) : null,
    s.source ? h('span', { class: `badge source-${s.source}` }, s.source) : null)));
}

function renderEndpoints() {
  const list = $('#endpoint-list');
  const eps = state.current.endpoints;
  if (!eps.length) {
    list.replaceChildren(h('li', { class: 'muted' }, 'No Open311 endpoint is registered yet.'));
    return;
  }
  list.replaceChildren(...eps.map((ep) => {
    const card = h('li', { class: 'card', 'data-endpoint': ep.id },
      h('h4', {}, h('span', { class: 'url' }, ep.url), ' ', h('span', { class: `badge type-${ep.type}` }, ep.type)),
      h('p', { class: 'muted' }, `${ep.id} · version ${ep.version} · updated ${when(ep.last_updated || ep.updated_at)}`),
      health(ep),
      h('details', {}, h('summary', {}, `Services (${(ep.services || []).length})`), servicesList(ep.services)));
    const actions = h('div', { class: 'row actions' },
      h('button', { type: 'button', onclick: () => openEditor(ep) }, 'Edit', h('span', { class: 'visually-hidden' }, ` ${ep.url}`)),
      h('button', { type: 'button', class: 'harvest', disabled: !state.harvest, onclick: (e) => harvestNow(ep, e.currentTarget) },
        'Harvest now', h('span', { class: 'visually-hidden' }, ` ${ep.url}`)),
      h('button', { type: 'button', class: 'danger', onclick: () => confirmDelete(ep, actions) }, 'Delete', h('span', { class: 'visually-hidden' }, ` ${ep.url}`)));
    card.append(actions);
    return card;
  }));
}

function confirmDelete(ep, actions) {
  const original = [...actions.childNodes];
  const cancel = () => { actions.replaceChildren(...original); original[2].focus(); };
  const yes = h('button', { type: 'button', class: 'danger', onclick: () => deleteEndpoint(ep) }, `Yes, delete ${ep.url}`);
  actions.replaceChildren(h('span', {}, 'Delete this endpoint and its services?'), yes, h('button', { type: 'button', onclick: cancel }, 'Keep it'));
  yes.focus();
}

async function deleteEndpoint(ep) {
  try {
    await api(`/admin/v1/endpoints/${seg(ep.id)}`, { method: 'DELETE', ifMatch: ep.version });
    say(`Deleted endpoint ${ep.url}.`, 'ok');
  } catch (p) {
    if (handleAuthLoss(p)) return;
    say(explain(p, 'this endpoint'), 'error');
  }
  await loadEndpoints();
}

async function harvestNow(ep, button) {
  button.disabled = true;
  say(`Harvesting ${ep.url}…`);
  try {
    // The answer is {report, endpoint}: what the harvest did, and the endpoint as it is now.
    const { body } = await api(`/admin/v1/endpoints/${seg(ep.id)}/harvest`, { method: 'POST' });
    const report = (body && body.report) || {};
    const saved = (body && body.endpoint) || {};
    const harvested = Array.isArray(saved.services) ? saved.services.filter((s) => s.source === 'harvested').length : 0;
    if (report.outcome === 'failed') {
      say(`The harvest of ${ep.url} failed: ${report.error || 'unknown error'}. Its health now says ${saved.status || 'down'}.`, 'error');
    } else if (report.outcome === 'not_modified') {
      say(`Harvested ${ep.url}: unchanged since the last harvest (status ${saved.status || 'up'}, ${harvested} harvested services).`, 'ok');
    } else {
      say(`Harvested ${ep.url}: status ${saved.status || 'unknown'}, ${report.services_found ?? 0} services found, ${harvested} kept as harvested.`, 'ok');
    }
    button.disabled = false;
    await loadEndpoints();
  } catch (p) {
    if (handleAuthLoss(p)) return;
    const missingRoute = p instanceof ApiProblem && (p.status === 405 || (p.status === 404 && /no such route/i.test(p.detail || '')));
    if (missingRoute) {
      state.harvest = false;
      $$('button.harvest').forEach((b) => { b.disabled = true; b.title = 'Not offered by this server'; });
      say('This server does not offer harvesting yet (it needs a newer geowebdns). Nothing was changed.', 'error');
    } else {
      button.disabled = false;
      say(`The harvest failed: ${explain(p, 'this endpoint')}`, 'error');
    }
  }
}

// ---------------------------------------------------------------- endpoint editor

const EP_FIELDS = ['url', 'type', 'specification', 'formats', 'open311_jurisdiction_id', 'discovery_url', 'docs_url', 'key_service', 'terms_url', 'contact', 'changeset'];
const OPTIONAL = ['open311_jurisdiction_id', 'discovery_url', 'docs_url', 'key_service', 'terms_url', 'contact', 'changeset'];
let serviceSeq = 0;

function addServiceRow(s = {}) {
  const li = $('#service-row').content.firstElementChild.cloneNode(true);
  const n = ++serviceSeq;
  for (const input of $$('[data-field]', li)) {
    const f = input.dataset.field;
    input.id = `svc-${n}-${f}`;
    const err = $(`[data-error="${f}"]`, li);
    if (err) { err.id = `svc-${n}-${f}-error`; input.setAttribute('aria-describedby', err.id); }
    $(`label[data-for="${f}"]`, li).setAttribute('for', input.id);
    if (f === 'metadata') input.checked = !!s.metadata;
    else if (f === 'keywords') input.value = Array.isArray(s.keywords) ? s.keywords.join(', ') : (s.keywords || '');
    else if (f === 'type') input.value = s.type || 'realtime';
    else input.value = s[f] || '';
  }
  if (s.source) { const b = $('.svc-source', li); b.hidden = false; b.textContent = s.source; }
  $('.remove-service', li).addEventListener('click', () => {
    const next = li.nextElementSibling || li.previousElementSibling;
    li.remove();
    numberServiceRows();
    (next ? $('input', next) : $('#add-service')).focus();
  });
  $('#service-rows').append(li);
  numberServiceRows();
  return li;
}

function numberServiceRows() {
  $$('#service-rows > li').forEach((li, i) => { $('.svc-n', li).textContent = String(i + 1); });
}

function clearErrors(root) {
  $$('.field-error', root).forEach((e) => { e.textContent = ''; });
  $$('[aria-invalid]', root).forEach((e) => e.removeAttribute('aria-invalid'));
}

function openEditor(ep) {
  state.editing = ep || null;
  const form = $('#endpoint-form');
  form.reset();
  clearErrors(form);
  $('#ee-problem').hidden = true;
  form.hidden = false;
  $('#ee-title').textContent = ep ? `Edit endpoint ${ep.url}` : `Register an endpoint for ${state.current.record.name}`;
  $('#ep-save').textContent = ep ? 'Save changes' : 'Register endpoint';
  const v = ep || { type: 'production', specification: 'http://wiki.open311.org/GeoReport_v2', formats: ['application/json', 'text/xml'] };
  for (const f of EP_FIELDS) {
    const input = $(`#ep-${f}`);
    input.value = f === 'formats' ? (v.formats || []).join(', ') : (v[f] ?? '');
  }
  $('#service-rows').replaceChildren();
  (v.services || []).forEach((s) => addServiceRow(s));
  $('#endpoint-editor').hidden = false;
  $('#endpoint-editor').scrollIntoView({ block: 'start' });
  $('#ep-url').focus();
}

function closeEditor() {
  $('#endpoint-editor').hidden = true;
  state.editing = null;
  $('#new-endpoint').focus();
}

function collectEndpoint(isPatch) {
  const body = {};
  for (const f of EP_FIELDS) {
    const raw = $(`#ep-${f}`).value.trim();
    if (f === 'formats') body.formats = raw ? raw.split(',').map((s) => s.trim()).filter(Boolean) : [];
    else if (OPTIONAL.includes(f)) { if (raw) body[f] = raw; else if (isPatch) body[f] = null; }
    else body[f] = raw;
  }
  body.services = $$('#service-rows > li').map((li) => {
    const s = {};
    for (const input of $$('[data-field]', li)) {
      const f = input.dataset.field;
      if (f === 'metadata') s.metadata = input.checked;
      else if (input.value.trim() !== '' || f === 'service_code' || f === 'service_name') s[f] = input.value.trim();
    }
    return s;
  });
  return body;
}

/** Puts an API problem next to the input its `field` names; answers whether it found one. */
function showFieldError(field, message) {
  if (!field) return false;
  let m = /^services\[(\d+)\]\.?(\w+)?/.exec(field);
  if (m) {
    const li = $$('#service-rows > li')[Number(m[1])];
    const input = li && m[2] ? $(`[data-field="${m[2]}"]`, li) : null;
    if (input) return markField(input, message);
    return markError($('#ep-services-error'), li ? $('input', li) : $('#add-service'), message);
  }
  if (field === 'services') return markError($('#ep-services-error'), $('#add-service'), message);
  m = /^formats(\[\d+\])?$/.exec(field);
  if (m) return markField($('#ep-formats'), message);
  const input = $(`#ep-${CSS.escape(field)}`);
  return input ? markField(input, message) : false;
}

function markField(input, message) {
  const err = document.getElementById(`${input.id}-error`);
  return markError(err, input, message);
}

function markError(err, input, message) {
  if (err) err.textContent = message;
  if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
  return !!err;
}

async function saveEndpoint(ev) {
  ev.preventDefault();
  const form = $('#endpoint-form');
  clearErrors(form);
  $('#ee-problem').hidden = true;
  const ep = state.editing;
  const body = collectEndpoint(!!ep);
  const button = $('#ep-save');
  button.disabled = true;
  try {
    const res = ep
      ? await api(`/admin/v1/endpoints/${seg(ep.id)}`, { method: 'PATCH', body, ifMatch: ep.version })
      : await api(`/admin/v1/jurisdictions/${seg(state.current.record.id)}/endpoints`, { method: 'POST', body });
    say(ep ? `Saved ${res.body.url} (version ${res.body.version}).` : `Registered ${res.body.url} for ${state.current.record.name}. Click the map inside it to see it served.`, 'ok');
    $('#endpoint-editor').hidden = true;
    state.editing = null;
    await loadEndpoints();
    const card = $(`[data-endpoint="${CSS.escape(res.body.id)}"] button`);
    if (card) card.focus();
  } catch (p) {
    if (handleAuthLoss(p)) return;
    if (p instanceof ApiProblem && p.status === 412) {
      const msg = explain(p, 'this endpoint');
      showProblem($('#ee-problem'), `Someone changed this endpoint since you opened it; reload to see their change. Your edits in this form are not saved.`, {
        label: 'Reload the endpoint', run: () => reloadEditing(ep.id),
      });
      say(msg, 'error');
      $('#ee-problem button').focus();
    } else if (p instanceof ApiProblem && p.status === 400 && showFieldError(p.field, p.detail)) {
      say(`Not saved: ${p.detail}`, 'error');
    } else {
      showProblem($('#ee-problem'), explain(p, 'this endpoint'));
      say(`Not saved: ${explain(p, 'this endpoint')}`, 'error');
    }
  } finally {
    button.disabled = false;
  }
}

async function reloadEditing(id) {
  try {
    const { body } = await api(`/admin/v1/endpoints/${seg(id)}`);
    openEditor(body);
    say(`Reloaded: this is version ${body.version}. Make your change again and save.`);
    await loadEndpoints();
  } catch (p) {
    if (handleAuthLoss(p)) return;
    showProblem($('#ee-problem'), explain(p, 'this endpoint'));
  }
}

/** Opens an endpoint by id (deep link `#endpoint=ID`). */
async function editEndpointById(id) {
  try {
    const { body } = await api(`/admin/v1/endpoints/${seg(id)}`);
    if (!state.current || state.current.record.id !== body.jurisdiction_id) await openJurisdiction(body.jurisdiction_id);
    openEditor(body);
  } catch (p) {
    if (handleAuthLoss(p)) return;
    const msg = p instanceof ApiProblem && p.status === 403
      ? `You cannot edit endpoint ${id} with this token. ${explain(p)}`
      : explain(p);
    $('#endpoint-editor').hidden = false;
    $('#endpoint-form').hidden = true;
    $('#ee-title').textContent = `Endpoint ${id}`;
    showProblem($('#ee-problem'), msg);
    say(msg, 'error');
  }
}

// ---------------------------------------------------------------- resolve

async function resolveAt(lon, lat) {
  mainMap.setMarker(lon, lat);
  const panel = $('#resolve-panel');
  panel.hidden = false;
  const where = `${lat.toFixed(5)}, ${lon.toFixed(5)}`;
  $('#rp-where').textContent = `Asking /v1/resolve about ${where}…`;
  try {
    const { body } = await api(`/v1/resolve?lat=${lat.toFixed(6)}&lon=${lon.toFixed(6)}`, { auth: false });
    const js = body.jurisdictions || [];
    $('#rp-where').textContent = `${where}: ${js.length ? `${js.length} jurisdictions, broadest first` : 'no jurisdiction serves this point'} (index version ${body.index_version}).`;
    $('#rp-list').replaceChildren(...js.map((j) => h('li', { class: 'tier', 'data-jurisdiction': j.id },
      h('h3', {}, j.name, ' ', h('span', { class: 'badge' }, j.tier)),
      h('p', { class: 'muted' }, j.id),
      may(j.id) && (!state.current || state.current.record.id !== j.id)
        ? h('button', { type: 'button', onclick: () => openJurisdiction(j.id) }, `Manage ${j.name}`) : null,
      j.endpoints && j.endpoints.length
        ? h('ul', { class: 'endpoints' }, j.endpoints.map((ep) => h('li', { 'data-endpoint': ep.id },
          h('span', { class: 'url' }, ep.url), ' ', h('span', { class: `badge type-${ep.type}` }, ep.type), ' ',
          h('span', { class: `health ${ep.status || 'unknown'}` }, ep.status || 'unknown'),
          servicesList(ep.services))))
        : h('p', { class: 'muted' }, 'No Open311 endpoint.'))));
    say(`${js.length} jurisdictions serve ${where}.`);
  } catch (p) {
    $('#rp-where').textContent = explain(p);
    $('#rp-list').replaceChildren();
    say(explain(p), 'error');
  }
}

function gotoSubmit(ev) {
  ev.preventDefault();
  const lat = Number($('#goto-lat').value.trim().replace(',', '.'));
  const lon = Number($('#goto-lon').value.trim().replace(',', '.'));
  clearErrors($('#goto-form'));
  if (!$('#goto-lat').value.trim() || !Number.isFinite(lat) || lat < -90 || lat > 90) {
    return markError($('#goto-error'), $('#goto-lat'), 'Latitude must be a number between -90 and 90.');
  }
  if (!$('#goto-lon').value.trim() || !Number.isFinite(lon) || lon < -180 || lon > 180) {
    return markError($('#goto-error'), $('#goto-lon'), 'Longitude must be a number between -180 and 180.');
  }
  mainMap.centerOn(lon, lat);
  resolveAt(lon, lat);
  return true;
}

// ---------------------------------------------------------------- admin search

async function search(ev) {
  ev.preventDefault();
  const q = $('#search-q').value.trim();
  const out = $('#search-results');
  if (!q) { out.replaceChildren(); return; }
  try {
    const { body } = await api(`/v1/jurisdictions?q=${encodeURIComponent(q)}&limit=25`, { auth: false });
    const items = body.items || [];
    out.replaceChildren(...items.map((j) => h('li', {},
      h('button', { type: 'button', class: 'link', onclick: () => openJurisdiction(j.id) }, j.name),
      h('span', { class: 'muted' }, ` ${j.tier} · ${j.id}${j.parent ? ` · in ${j.parent}` : ''}`))));
    if (!items.length) out.replaceChildren(h('li', { class: 'muted' }, 'No jurisdiction matches.'));
    say(`${body.total} jurisdictions match “${q}”${body.total > items.length ? `; showing ${items.length}` : ''}.`);
  } catch (p) {
    say(explain(p), 'error');
  }
}

// ---------------------------------------------------------------- new jurisdiction

const JURISDICTION_PROPS = ['id', 'name', 'tier', 'parent', 'ocd_id', 'external_ids', 'source', 'license'];

async function readFeatureFile() {
  const input = $('#cj-file');
  clearErrors($('#create-form'));
  $('#cj-problem').hidden = true;
  state.createFeature = null;
  $('#cj-save').disabled = true;
  const file = input.files && input.files[0];
  if (!file) return;
  let feature;
  try {
    feature = JSON.parse(await file.text());
  } catch (e) {
    markField(input, `This file is not JSON: ${e.message}`);
    return;
  }
  if (feature && feature.type === 'FeatureCollection' && Array.isArray(feature.features) && feature.features.length === 1) {
    feature = feature.features[0];
  }
  if (!feature || feature.type !== 'Feature') {
    markField(input, 'The file must hold one GeoJSON Feature (or a FeatureCollection with exactly one).');
    return;
  }
  if (!polygonsOf(feature).length) {
    markField(input, 'The Feature has no Polygon or MultiPolygon geometry to draw.');
    return;
  }
  const props = feature.properties || {};
  for (const f of ['id', 'name', 'parent']) $(`#cj-${f}`).value = props[f] ?? '';
  if (props.tier) $('#cj-tier').value = props.tier;
  state.createFeature = feature;
  $('#cj-save').disabled = false;
  const dropped = Object.keys(props).filter((k) => !JURISDICTION_PROPS.includes(k));
  const layers = [{ geojson: feature, className: 'focus preview', focus: true, title: 'Uploaded boundary' }];
  createMap.setLayers(layers);
  createMap.fit();
  say(`Loaded ${file.name}: check the outline on the map, then save.${dropped.length ? ` Properties not used: ${dropped.join(', ')}.` : ''}`);
  // Context: the smallest jurisdictions around the new boundary's centre.
  try {
    const box = createMap.layersBox();
    const [lon, lat] = createMap.screenToLonLat(...createMap.worldToScreen((box[0] + box[2]) / 2, (box[1] + box[3]) / 2));
    const { body } = await api(`/v1/resolve?lat=${lat.toFixed(6)}&lon=${lon.toFixed(6)}`, { auth: false });
    const around = (body.jurisdictions || []).slice(-2);
    const fs = await Promise.all(around.map((r) => boundary(r).catch(() => null)));
    if (state.createFeature !== feature) return;
    createMap.setLayers([...around.map((r, i) => fs[i] && { geojson: fs[i], className: 'parent', title: `${r.name} (${r.tier})` }).filter(Boolean), ...layers]);
  } catch { /* the preview stands without context */ }
}

async function saveJurisdiction(ev) {
  ev.preventDefault();
  const form = $('#create-form');
  clearErrors(form);
  $('#cj-problem').hidden = true;
  const f = state.createFeature;
  if (!f) { markField($('#cj-file'), 'Choose a GeoJSON Feature file first.'); return; }
  const props = {};
  for (const k of JURISDICTION_PROPS) if (f.properties && f.properties[k] !== undefined && f.properties[k] !== null) props[k] = f.properties[k];
  props.id = $('#cj-id').value.trim();
  props.name = $('#cj-name').value.trim();
  props.tier = $('#cj-tier').value;
  const parent = $('#cj-parent').value.trim();
  if (parent) props.parent = parent; else delete props.parent;
  try {
    const { body } = await api('/admin/v1/jurisdictions', { method: 'POST', body: { type: 'Feature', properties: props, geometry: f.geometry } });
    say(`Created ${body.name} (${body.id}), inside ${body.parent || 'no other jurisdiction'}.`, 'ok');
    form.reset();
    state.createFeature = null;
    $('#cj-save').disabled = true;
    showView('manage');
    await openJurisdiction(body.id);
  } catch (p) {
    if (handleAuthLoss(p)) return;
    const field = (p.field || '').replace(/^properties\./, '');
    const input = field === 'geometry' || field === 'type' ? $('#cj-file') : (field ? $(`#cj-${CSS.escape(field)}`) : null);
    if (p instanceof ApiProblem && p.status === 400 && input) markField(input, p.detail);
    else showProblem($('#cj-problem'), explain(p));
    say(`Not saved: ${explain(p)}`, 'error');
  }
}

// ---------------------------------------------------------------- audit

async function loadAudit(after) {
  const params = new URLSearchParams({ limit: $('#audit-limit').value });
  const j = $('#audit-j').value.trim();
  if (j) params.set('jurisdiction', j);
  const since = $('#audit-since').value;
  if (since) params.set('since', new Date(Date.now() - Number(since) * 1000).toISOString());
  if (after !== null && after !== undefined) params.set('after', after);
  clearErrors($('#view-audit'));
  try {
    const { body } = await api(`/admin/v1/audit?${params}`);
    const items = body.items || [];
    $('#audit-table tbody').replaceChildren(...items.map((e) => h('tr', {},
      h('td', {}, e.id), h('td', {}, when(e.at)), h('td', {}, e.actor_sub), h('td', {}, e.action),
      h('td', {}, `${e.entity} ${e.entity_id}`), h('td', {}, e.jurisdiction_id || ''))));
    if (!items.length) $('#audit-table tbody').replaceChildren(h('tr', {}, h('td', { colspan: 6 }, 'No entries.')));
    state.auditAfter = body.next ?? null;
    $('#audit-next').disabled = state.auditAfter === null;
    say(`Audit log: ${items.length} entries${after ? ` after #${after}` : ''}.`);
  } catch (p) {
    if (handleAuthLoss(p)) return;
    $('#audit-table tbody').replaceChildren();
    markError($('#audit-error'), p.field === 'jurisdiction' ? $('#audit-j') : null, explain(p));
  }
}

// ---------------------------------------------------------------- routing and wiring

/** Opens what the URL fragment names; answers whether it named something. */
function routeFromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (!state.me) return false;
  if (params.get('jurisdiction')) { showView('manage'); openJurisdiction(params.get('jurisdiction')); return true; }
  if (params.get('endpoint')) { showView('manage'); editEndpointById(params.get('endpoint')); return true; }
  return false;
}

function init() {
  mainMap = new MapView($('#map'), { tileUrl, onPick: (lon, lat) => resolveAt(lon, lat) });
  createMap = new MapView($('#create-map'), { tileUrl });
  $('#zoom-in').addEventListener('click', () => mainMap.zoomBy(2));
  $('#zoom-out').addEventListener('click', () => mainMap.zoomBy(0.5));
  $('#zoom-fit').addEventListener('click', () => mainMap.fit());
  $('#signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('#token').value.trim().replace(/^Bearer\s+/i, '');
    if (!t) { markError($('#token-error'), $('#token'), 'Paste a token first.'); return; }
    signIn(t);
  });
  $('#sign-out').addEventListener('click', () => signOut());
  $$('#nav button').forEach((b) => b.addEventListener('click', () => showView(b.dataset.view)));
  $('#pick-select').addEventListener('change', (e) => openJurisdiction(e.target.value));
  $('#pick-form').addEventListener('submit', search);
  $('#goto-form').addEventListener('submit', gotoSubmit);
  $('#new-endpoint').addEventListener('click', () => openEditor(null));
  $('#add-service').addEventListener('click', () => { const li = addServiceRow({}); $('input', li).focus(); });
  $('#endpoint-form').addEventListener('submit', saveEndpoint);
  $('#ep-cancel').addEventListener('click', closeEditor);
  $('#cj-file').addEventListener('change', readFeatureFile);
  $('#create-form').addEventListener('submit', saveJurisdiction);
  $('#audit-form').addEventListener('submit', (e) => { e.preventDefault(); loadAudit(null); });
  $('#audit-first').addEventListener('click', () => loadAudit(null));
  $('#audit-next').addEventListener('click', () => loadAudit(state.auditAfter));
  window.addEventListener('hashchange', routeFromHash);
  const token = getToken();
  if (token) signIn(token); else $('#token').focus();
}

init();
