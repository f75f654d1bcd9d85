#!/usr/bin/env node
// Browser tests of the admin console: the real geowebdns binary on a free port
// with a fresh SQLite database and the bundled data, tokens issued with the
// CLI, and the system Chromium driven by playwright-core.
//
//   node tests/console/run.mjs --bin target/debug/geowebdns [--screenshots DIR]
//
// `cargo test` runs this through tests/console.rs. Screenshots go to a
// temporary folder unless --screenshots names one; to refresh the committed
// ones: node tests/console/run.mjs --bin ... --screenshots admin/screenshots
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

function arg(name) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

function fatal(msg) {
  console.error(`console browser tests: ${msg}`);
  process.exit(2);
}

const bin = arg('--bin') || process.env.GEOWEBDNS_BIN;
if (!bin) fatal('pass the geowebdns binary with --bin PATH (or GEOWEBDNS_BIN)');

let chromiumPath = process.env.CHROMIUM_PATH;
if (!chromiumPath) {
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      chromiumPath = execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
      if (chromiumPath) break;
    } catch { /* try the next name */ }
  }
}
if (!chromiumPath) fatal('no chromium on PATH: install the Debian packages chromium and chromium-driver (or set CHROMIUM_PATH)');

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  fatal(`playwright-core is not installed (${e.message}): run (cd tests/console && npm ci)`);
}

const work = mkdtempSync(join(tmpdir(), 'gwd-console-'));
const shots = resolve(arg('--screenshots') || join(work, 'screenshots'));
mkdirSync(shots, { recursive: true });
const env = {
  ...process.env,
  GEOWEBDNS_DATABASE_URL: `sqlite://${join(work, 'console.db')}`,
  GEOWEBDNS_KEY_DIR: join(work, 'keys'),
  GEOWEBDNS_LOG: 'info',
  // No test reaches the internet: the bundled endpoints are real servers, so the harvester stays off.
  GEOWEBDNS_HARVEST_INTERVAL: '0',
};
delete env.GEOWEBDNS_CONSOLE_TILE_URL;

// ------------------------------------------------------------------ server

function startServer() {
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error('the server did not report its address within 300 s')), 300_000);
    const lines = createInterface({ input: child.stderr });
    const log = [];
    lines.on('line', (raw) => {
      const line = raw.replace(/\x1b\[[0-9;]*m/g, '');
      if (log.length < 200) log.push(line);
      const m = /address=(\S+)/.exec(line);
      if (m) { clearTimeout(timer); ok({ child, base: `http://${m[1]}` }); }
    });
    child.on('exit', (code) => { clearTimeout(timer); fail(new Error(`the server exited (${code}):\n${log.join('\n')}`)); });
  });
}

function issue(scope, sub) {
  return execFileSync(bin, ['token', 'issue', '--scope', scope, '--sub', sub, '--ttl', '1h'], { env, encoding: 'utf8' }).trim();
}

// ------------------------------------------------------------------ harness

const results = [];
let browser, server;
const pageErrors = [];

async function scenario(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok - ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`not ok - ${name}\n  ${String(e && e.stack ? e.stack : e).split('\n').join('\n  ')}`);
  }
}

function assert(cond, msg) { if (!cond) throw new Error(`assertion failed: ${msg}`); }

/** Waits until the locator's text matches `re`. */
async function waitText(locator, re, timeout = 15_000) {
  const end = Date.now() + timeout;
  let last = '';
  while (Date.now() < end) {
    last = (await locator.count()) ? (await locator.first().textContent()) || '' : '';
    if (re.test(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${re} in ${locator}; last text: ${JSON.stringify(last.slice(0, 400))}`);
}

async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // Error statuses the tests provoke (400, 403, 404, 412) are logged as failed loads: expected.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(`console: ${m.text()}`);
  });
  return page;
}

async function signIn(page, token) {
  await page.goto(`${server.base}/admin/`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#who').waitFor({ state: 'visible' });
}

const shot = (page, name, fullPage = false) => page.screenshot({ path: join(shots, `${name}.png`), fullPage });

async function api(path, token, opts = {}) {
  const res = await fetch(`${server.base}${path}`, {
    method: opts.method || 'GET',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(opts.headers || {}) },
    body: opts.body ? JSON.stringify(opts.body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, etag: res.headers.get('etag'), body: text ? JSON.parse(text) : null };
}

// ------------------------------------------------------------------ scenarios

const BLOOMINGTON = 'us-place:1805860';
const MONROE = 'us-county:18105';
// A documentation address (TEST-NET-1): "Harvest now" is refused before any connection, and no name is looked up.
const NEW_URL = 'http://192.0.2.10/open311/v2/';

try {
  server = await startServer();
  console.log(`# server at ${server.base}; screenshots in ${shots}`);
  const adminToken = issue('admin', 'console-admin');
  const cityToken = issue(`jurisdiction:${BLOOMINGTON}`, 'bloomington-it');
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });

  // A Monroe County endpoint, for the forbidden-edit scenario.
  const monroeEp = await api(`/admin/v1/jurisdictions/${MONROE}/endpoints`, adminToken, {
    method: 'POST', body: { url: 'https://county.example.org/open311/v2/', type: 'test' },
  });
  assert(monroeEp.status === 201, `setup: county endpoint created (${monroeEp.status})`);

  const city = await newPage();

  await scenario('the console is served with its security headers and a sign-in form', async () => {
    const res = await city.goto(`${server.base}/admin`);
    assert(res.status() === 200 && res.url().endsWith('/admin/'), `redirected to /admin/ (${res.url()})`);
    const h = res.headers();
    assert(/^default-src 'self'; script-src 'self';/.test(h['content-security-policy'] || ''), `CSP: ${h['content-security-policy']}`);
    assert(h['x-content-type-options'] === 'nosniff', 'nosniff');
    assert(h['x-frame-options'] === 'DENY', 'X-Frame-Options');
    assert(h['referrer-policy'] === 'no-referrer', 'Referrer-Policy');
    await city.getByLabel('Token').waitFor();
    await shot(city, 'sign-in');
  });

  await scenario('a bad token is refused next to the token input', async () => {
    await city.getByLabel('Token').fill('not-a-token');
    await city.getByRole('button', { name: 'Sign in' }).click();
    await waitText(city.locator('#token-error'), /not accepted/);
    assert(await city.evaluate(() => sessionStorage.getItem('geowebdns.token')) === null, 'refused token not kept');
  });

  await scenario('a jurisdiction token signs in and sees only its jurisdiction', async () => {
    await signIn(city, cityToken);
    await waitText(city.locator('#who-sub'), /bloomington-it/);
    await waitText(city.locator('#who-scopes'), new RegExp(`jurisdiction:${BLOOMINGTON}`));
    await waitText(city.locator('#jp-title'), /^Bloomington$/);
    assert(await city.locator('#search-q').isHidden(), 'no admin search for a jurisdiction token');
    assert(await city.getByRole('button', { name: 'Audit log' }).isHidden(), 'no audit log for a jurisdiction token');
    assert(await city.getByRole('button', { name: 'New jurisdiction' }).isHidden(), 'no jurisdiction creation');
    const options = await city.locator('#pick-select option').allTextContents();
    assert(options.length === 1 && /Bloomington/.test(options[0]), `one jurisdiction offered: ${options}`);
    await city.locator('#map path.area.focus').waitFor();
    assert(await city.locator('#map path.area.parent').count() >= 2, 'parent chain drawn around it');
    const stored = await city.evaluate(() => ({ s: sessionStorage.getItem('geowebdns.token'), l: localStorage.length, c: document.cookie }));
    assert(stored.s && stored.l === 0 && stored.c === '', 'token in sessionStorage only');
    assert(!city.url().includes(cityToken.slice(0, 20)), 'token not in the URL');
    await shot(city, 'jurisdiction-map');
  });

  await scenario('an invalid URL is shown next to the URL input', async () => {
    await city.getByRole('button', { name: 'Register an endpoint' }).click();
    await city.getByLabel('API base URL').fill('not a url');
    await city.getByRole('button', { name: 'Register endpoint' }).click();
    const text = await waitText(city.locator('#ep-url-error'), /url/i);
    assert(/absolute http\(s\) URL/.test(text), `API message shown: ${text}`);
    assert(await city.getByLabel('API base URL').getAttribute('aria-invalid') === 'true', 'URL input marked invalid');
    await shot(city, 'validation-error');
    // A service error lands next to that service's input.
    await city.getByLabel('API base URL').fill(NEW_URL);
    await city.getByRole('button', { name: 'Add a service' }).click();
    await city.locator('#service-rows li').first().getByLabel('Name').fill('Pothole');
    await city.getByRole('button', { name: 'Register endpoint' }).click();
    await waitText(city.locator('#service-rows li').first().locator('[data-error="service_code"]'), /service_code/);
    assert(await city.locator('#ep-url-error').isHidden(), 'the fixed URL error is cleared');
  });

  await scenario('a jurisdiction registers an endpoint with a service', async () => {
    await city.locator('#service-rows li').first().getByLabel('Code').fill('POTHOLE');
    await city.locator('#service-rows li').first().getByLabel('Group').fill('Streets');
    await city.locator('#ep-type').selectOption('test');
    await city.getByRole('button', { name: 'Register endpoint' }).click();
    await waitText(city.locator('#status'), /Registered/);
    await waitText(city.locator('#endpoint-list'), new RegExp(NEW_URL.replace(/[.]/g, '\\.')));
    assert(await city.locator('#endpoint-editor').isHidden(), 'editor closed');
  });

  await scenario('clicking the map in the jurisdiction lists the new endpoint in the resolve panel', async () => {
    await city.getByLabel('Latitude').fill('39.1653');
    await city.getByLabel('Longitude').fill('-86.5264');
    await city.getByRole('button', { name: 'Show', exact: true }).click();
    await waitText(city.locator('#rp-list'), /Bloomington/);
    await city.evaluate(() => { document.querySelector('#rp-list').replaceChildren(); document.querySelector('#rp-where').textContent = ''; });
    await city.locator('#map').click(); // the centre: the point shown above
    const where = await waitText(city.locator('#rp-where'), /jurisdictions/);
    assert(/39\.16\d*, -86\.52/.test(where), `resolved where clicked: ${where}`);
    const tiers = await city.locator('#rp-list > li h3').allTextContents();
    assert(tiers.length === 4 && /United States/.test(tiers[0]) && /Bloomington/.test(tiers[3]), `every tier listed: ${tiers}`);
    const place = city.locator(`#rp-list > li[data-jurisdiction="${BLOOMINGTON}"]`);
    await waitText(place, /192\.0\.2\.10/);
    await waitText(place, /POTHOLE/);
    assert(await city.locator(`#rp-list > li[data-jurisdiction="${MONROE}"] button`).count() === 0, 'no Manage button for the county');
    await shot(city, 'resolve', true);
  });

  await scenario('the map pans and zooms with the keyboard and buttons', async () => {
    const readout = city.locator('#map .map-readout');
    const before = await readout.textContent();
    await city.locator('#map').focus();
    await city.keyboard.press('+');
    await city.keyboard.press('ArrowRight');
    await waitText(readout, new RegExp(`^(?!${before.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$)`));
    const zoomed = await readout.textContent();
    await city.getByRole('button', { name: 'Zoom out' }).click();
    await waitText(readout, new RegExp(`^(?!${zoomed.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$)`));
  });

  await scenario('Harvest now runs the real harvester and reports its refusal of a non-public address', async () => {
    const card = city.locator('#endpoint-list li.card', { hasText: '192.0.2.10' });
    await card.getByRole('button', { name: /Harvest now/ }).click();
    // A documentation address: the harvester refuses it before connecting, and says so.
    await waitText(city.locator('#status'), /harvest of http:\/\/192\.0\.2\.10\/open311\/v2\/ failed: blocked non-public address/);
  });

  await scenario('endpoint health and harvested services show when the server sends them', async () => {
    // Fields of the harvester: simulated here by rewriting the API's answers in the browser.
    const glob = '**/admin/v1/jurisdictions/*/endpoints';
    await city.route(glob, async (route) => {
      const res = await route.fetch();
      const json = await res.json();
      for (const ep of json.items || []) {
        if (!ep.url.includes('192.0.2.10')) continue;
        Object.assign(ep, { status: 'down', http_status: 503, latency_ms: 812, consecutive_failures: 3,
          last_error: 'HTTP 503 Service Unavailable from services.xml', last_checked: '2026-01-31T12:00:00Z', last_ok: '2026-01-30T12:00:00Z' });
        ep.services = (ep.services || []).map((svc) => ({ ...svc, source: 'harvested' }));
      }
      await route.fulfill({ response: res, json });
    });
    await city.locator('#pick-select').dispatchEvent('change');
    const card = city.locator('#endpoint-list li.card', { hasText: '192.0.2.10' });
    // The real harvest of the previous scenario already marked it down: wait for the rewritten answer.
    await waitText(card, /latency 812 ms/);
    const text = await card.textContent();
    for (const want of ['HTTP 503', 'latency 812 ms', 'failures in a row: 3', 'Last error: HTTP 503 Service Unavailable', 'last up 2026-01-30 12:00:00 UTC']) {
      assert(text.includes(want), `shows ${want}: ${text}`);
    }
    await card.locator('summary').click();
    await waitText(card.locator('.services'), /harvested/);
    await shot(city, 'health');
    await city.unroute(glob);
    await city.locator('#pick-select').dispatchEvent('change');
    await waitText(city.locator('#endpoint-list li.card', { hasText: '192.0.2.10' }), /UNKNOWN|UP|DOWN/i);
  });

  await scenario('a jurisdiction token cannot edit another jurisdiction', async () => {
    // The UI offers no way: no Manage button for the county (checked above), and
    // opening it by link is refused by the API with a 403 that the page explains.
    await city.goto(`${server.base}/admin/#jurisdiction=${encodeURIComponent(MONROE)}`);
    const msg = await waitText(city.locator('#jp-error'), /cannot manage/);
    assert(msg.includes(`jurisdiction:${MONROE}`), `names the missing scope: ${msg}`);
    assert(await city.getByRole('button', { name: 'Register an endpoint' }).isHidden(), 'no register button');
    await shot(city, 'forbidden');
    await city.goto(`${server.base}/admin/#endpoint=${encodeURIComponent(monroeEp.body.id)}`);
    const edit = await waitText(city.locator('#ee-problem'), /cannot edit endpoint/);
    assert(/may not do that/.test(edit), `explains the 403: ${edit}`);
    assert(await city.locator('#endpoint-form').isHidden(), 'no form offered');
    // A forced write with the page's own token is refused as well.
    const status = await city.evaluate(async (id) => {
      const r = await fetch(`/admin/v1/endpoints/${encodeURIComponent(id)}`, {
        method: 'PATCH', headers: { authorization: `Bearer ${sessionStorage.getItem('geowebdns.token')}`, 'content-type': 'application/json' },
        body: JSON.stringify({ url: 'https://evil.example.org/' }),
      });
      return r.status;
    }, monroeEp.body.id);
    assert(status === 403, `forced PATCH answered ${status}`);
  });

  await scenario('an If-Match conflict is explained in words', async () => {
    await city.goto(`${server.base}/admin/#jurisdiction=${encodeURIComponent(BLOOMINGTON)}`);
    const card = city.locator('#endpoint-list li.card', { hasText: '192.0.2.10' });
    await card.getByRole('button', { name: /^Edit/ }).click();
    const id = await card.getAttribute('data-endpoint');
    const changed = await api(`/admin/v1/endpoints/${encodeURIComponent(id)}`, adminToken, { method: 'PATCH', body: { contact: 'someone else' } });
    assert(changed.status === 200, `concurrent change (${changed.status})`);
    await city.getByLabel('Contact').fill('me');
    await city.getByRole('button', { name: 'Save changes' }).click();
    await waitText(city.locator('#ee-problem'), /Someone changed this endpoint since you opened it; reload to see their change/);
    await city.getByRole('button', { name: 'Reload the endpoint' }).click();
    await city.waitForFunction(() => document.querySelector('#ep-contact').value === 'someone else');
    await city.getByLabel('Contact').fill('me');
    await city.getByRole('button', { name: 'Save changes' }).click();
    await waitText(city.locator('#status'), /Saved .*version \d+/);
    const saved = await api(`/admin/v1/endpoints/${encodeURIComponent(id)}`, adminToken);
    assert(saved.body.contact === 'me', `the second save landed: ${saved.body.contact}`);
  });

  await scenario('the console reads well at phone width', async () => {
    const phone = await newPage({ width: 375, height: 812 });
    await signIn(phone, cityToken);
    await waitText(phone.locator('#jp-title'), /Bloomington/);
    await phone.locator('#map path.area.focus').waitFor();
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth);
    assert(overflow <= 375, `no horizontal scrolling (${overflow}px wide)`);
    await shot(phone, 'phone', true);
    await phone.context().close();
  });

  const admin = await newPage();
  await scenario('an admin searches, previews an uploaded boundary and creates a jurisdiction', async () => {
    await signIn(admin, adminToken);
    await waitText(admin.locator('#who-scopes'), /admin/);
    await admin.getByLabel('Search jurisdictions (name or id)').fill('Monroe');
    await admin.getByRole('button', { name: 'Search' }).click();
    await admin.locator('#search-results button', { hasText: 'Monroe' }).first().waitFor();
    await shot(admin, 'admin-search');
    await admin.getByRole('button', { name: 'New jurisdiction' }).click();
    const d = 0.004;
    const feature = {
      type: 'Feature',
      properties: { id: 'district:console-test', name: 'Console Test District', tier: 'special_district', note: 'dropped' },
      geometry: { type: 'Polygon', coordinates: [[[-86.53 - d, 39.165 - d], [-86.53 + d, 39.165 - d], [-86.53 + d, 39.165 + d], [-86.53 - d, 39.165 + d], [-86.53 - d, 39.165 - d]]] },
    };
    const file = join(work, 'district.geojson');
    writeFileSync(file, JSON.stringify(feature));
    await admin.getByLabel('GeoJSON Feature file').setInputFiles(file);
    await admin.locator('#create-map path.area.preview').waitFor();
    await waitText(admin.locator('#status'), /Properties not used: note/);
    assert(await admin.locator('#cj-name').inputValue() === 'Console Test District', 'name prefilled');
    await admin.locator('#create-map path.area.parent').first().waitFor();
    await shot(admin, 'new-jurisdiction');
    await admin.locator('#cj-id').fill('bad/id');
    await admin.getByRole('button', { name: 'Save jurisdiction' }).click();
    await waitText(admin.locator('#cj-id-error'), /id/);
    await admin.locator('#cj-id').fill('district:console-test');
    await admin.getByRole('button', { name: 'Save jurisdiction' }).click();
    await waitText(admin.locator('#status'), /Created Console Test District/);
    await waitText(admin.locator('#jp-title'), /Console Test District/);
  });

  await scenario('an admin reads the audit log, page by page', async () => {
    await admin.getByRole('button', { name: 'Audit log' }).click();
    await admin.getByLabel('Per page').selectOption('20');
    await admin.getByRole('button', { name: 'Show', exact: true }).click();
    const body = admin.locator('#audit-table tbody');
    await waitText(body, /import/); // oldest first: the bundled import of this fresh database
    const firstPage = await body.textContent();
    await admin.getByRole('button', { name: 'Next page' }).click();
    await waitText(admin.locator('#status'), /after #20/);
    assert(firstPage !== await body.textContent(), 'the next page differs');
    await admin.getByLabel('Jurisdiction id (optional)').fill(BLOOMINGTON);
    await admin.getByRole('button', { name: 'Show', exact: true }).click();
    await waitText(body, /endpoint\.create/);
    await waitText(body, /bloomington-it/);
    await shot(admin, 'audit');
  });

  await scenario('no script error and no CSP violation on any page', async () => {
    assert(pageErrors.length === 0, pageErrors.join('\n'));
  });
} catch (e) {
  results.push({ name: 'setup', ok: false });
  console.log(`not ok - setup\n  ${e && e.stack ? e.stack : e}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) server.child.kill();
  if (!arg('--keep')) rmSync(join(work, 'console.db'), { force: true });
}

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
