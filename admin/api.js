// The HTTP client of the console: same-origin fetches, the bearer token from
// sessionStorage, and RFC 9457 problems turned into ApiProblem errors.

const TOKEN_KEY = 'geowebdns.token';

/** The token of this tab, or null. Kept in sessionStorage only. */
export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY); } catch { return null; }
}

/** Stores (or with null, forgets) the token of this tab. */
export function setToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled: the token lives in memory for this page only */ }
  memoryToken = token || null;
}
let memoryToken = null;

/** An error answer of the API (or of the network), with the problem's fields. */
export class ApiProblem extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || null;
    this.field = problem.field || null;
    this.title = problem.title || null;
    this.detail = problem.detail || null;
  }
}

/** Encodes one path segment (ids contain `:` and spaces). */
export const seg = (s) => encodeURIComponent(s);

/**
 * Calls the API. `opts`: method, body (JSON-encoded unless a string), ifMatch (a version),
 * auth (default true). Answers {status, etag, body}; throws ApiProblem on any non-2xx.
 */
export async function api(path, opts = {}) {
  const headers = { accept: 'application/json, application/geo+json' };
  const token = getToken() || memoryToken;
  if (opts.auth !== false && token) headers.authorization = `Bearer ${token}`;
  let body;
  if (opts.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  }
  if (opts.ifMatch !== undefined && opts.ifMatch !== null) headers['if-match'] = `"${opts.ifMatch}"`;
  let res;
  try {
    res = await fetch(path, { method: opts.method || 'GET', headers, body, credentials: 'omit', cache: 'no-store' });
  } catch (e) {
    throw new ApiProblem(0, { title: 'Network error', detail: `The server could not be reached (${e.message}).`, code: 'network' });
  }
  const text = await res.text();
  let json = null;
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  if (!res.ok) {
    throw new ApiProblem(res.status, json && typeof json === 'object' ? json : { title: res.statusText, detail: text.slice(0, 300) });
  }
  const etag = res.headers.get('etag');
  return { status: res.status, etag, body: json };
}

/** A sentence for a problem, in words a non-developer can act on. */
export function explain(p, what = 'this') {
  if (!(p instanceof ApiProblem)) return String(p && p.message ? p.message : p);
  switch (p.status) {
    case 0: return p.detail;
    case 401: return `Your token was not accepted (${p.code || 'unauthorized'}: ${p.detail}). Sign in again with a valid token.`;
    case 403: return `Your token may not do that: ${p.detail}. Ask whoever runs this instance for a token with that scope.`;
    case 404: return `Not found: ${p.detail}.`;
    case 409: return `Conflict: ${p.detail}.`;
    case 412: return `Someone changed ${what} since you opened it; reload to see their change, then make yours again.`;
    case 413: return `Too large: ${p.detail}.`;
    case 503: return `The service is unavailable right now: ${p.detail}. Try again shortly.`;
    default: return p.detail || p.title || `HTTP ${p.status}`;
  }
}
