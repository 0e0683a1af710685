// The API, same origin, with the staff key as a bearer header. The key lives
// in sessionStorage only (this tab, until sign-out or the tab closes); it is
// never put in a URL, never logged, never shown.

const KEY_SLOT = 'kobatela.console.key';

export const session = {
  key: () => sessionStorage.getItem(KEY_SLOT),
  signIn: (key) => sessionStorage.setItem(KEY_SLOT, key),
  signOut: () => sessionStorage.removeItem(KEY_SLOT),
};

// An answer that is not 2xx: the API's own code and message.
export class ApiError extends Error {
  constructor(status, code, message, requestId = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

// Called once per refused key (401), so the page can ask for another.
let onRefused = () => {};
export function whenRefused(callback) {
  onRefused = callback;
}

export async function call(method, path, body) {
  const key = session.key();
  if (!key) throw new ApiError(401, 'UNAUTHORIZED', 'Sign in first.');
  const headers = { Authorization: `Bearer ${key}`, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'NETWORK', 'The API did not answer: check the connection and retry.');
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      json?.error?.code ?? '',
      messageOf(json?.error, response.status),
      response.headers.get('x-request-id'),
    );
    if (response.status === 401) onRefused(error);
    throw error;
  }
  return json;
}

// The API's message, and the fields a 422 names ("escrow_id: is required").
function messageOf(error, status) {
  const message = error?.message ?? `The API answered ${status}.`;
  const fields = Object.entries(error?.details?.fields ?? {});
  if (!fields.length) return message;
  return `${message} ${fields.map(([name, problem]) => `${name}: ${problem}`).join('; ')}`;
}

// `query` values that are empty are left out.
export function get(path, query = {}) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(name, String(value));
  }
  const search = params.toString();
  return call('GET', search ? `${path}?${search}` : path);
}

export function post(path, body) {
  return call('POST', path, body);
}

// A path segment from something a person typed.
export const seg = (value) => encodeURIComponent(String(value).trim());
