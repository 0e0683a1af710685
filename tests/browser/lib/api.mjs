// The API as the tests reach it (seeding and checking state), with a key
// that never reaches a message: errors name the route and the answer only.

import { randomUUID } from 'node:crypto';

export const BASE = required('KOBATELA_BASE_URL');

export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the browser tests with make browser`);
  return value;
}

export class Api {
  constructor(key) {
    this.key = key;
  }

  static admin() {
    return new Api(required('KOBATELA_ADMIN_KEY'));
  }

  async call(method, path, body, headers = {}) {
    const init = {
      method,
      headers: { Authorization: `Bearer ${this.key}`, ...headers },
    };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(`${BASE}${path}`, init);
    const text = await response.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    return { status: response.status, body: json, text };
  }

  // The answer's body if its status is `status`, else an error saying what came.
  async expect(status, method, path, body, headers) {
    const answer = await this.call(method, path, body, headers);
    if (answer.status !== status) {
      throw new Error(`${method} ${path}: expected ${status}, got ${answer.status} ${answer.text}`);
    }
    return answer.body;
  }

  get(path) {
    return this.expect(200, 'GET', path);
  }

  // A money-moving POST: its own Idempotency-Key.
  pay(path, body, status = 200) {
    return this.expect(status, 'POST', path, body, { 'Idempotency-Key': randomUUID() });
  }
}

// Polls `check` (an async function answering a value or undefined) until it
// answers, at most `seconds`: the state is awaited, never slept for.
export async function until(what, check, seconds = 20) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  for (;;) {
    last = await check();
    if (last !== undefined && last !== null && last !== false) return last;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${seconds} s`);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}
