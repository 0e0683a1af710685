// Fixtures made over HTTP with the admin key, as a client would: users,
// funded escrows, photo proofs (the JPEG from `kobatela-local photo`,
// uploaded to the presigned URL), keys, alerts.

import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { required, until } from './api.mjs';

const run = randomUUID().slice(0, 8);
let made = 0;
const unique = (name) => `${name}-${run}-${++made}`;

// The site of the geofenced milestones (Dakar) and a point 40 m east of it.
export const SITE = { lat: 14.6928, lng: -17.4467 };
export const NEAR = { lat: 14.6928, lng: -17.44633 };

export async function user(api, name) {
  const username = unique(name);
  return api.expect(201, 'POST', '/users', { username, email: `${username}@example.test` });
}

// A FUNDED escrow of `milestones` ({label, amount, proof_type?, geofence?}).
export async function fundedEscrow(api, milestones) {
  const client = await user(api, 'client');
  const provider = await user(api, 'provider');
  const total = sum(milestones.map((m) => m.amount));
  const deadline = new Date(Date.now() + 30 * 86400 * 1000).toISOString();
  const escrow = await api.expect(201, 'POST', '/escrows', {
    client_id: client.id,
    provider_id: provider.id,
    amount_total: total,
    currency: 'USD',
    deadline_at: deadline,
    milestones: milestones.map((m) => ({ proof_type: 'PHOTO', ...m })),
  });
  const funded = await api.pay(`/escrows/${escrow.id}/deposit`, { amount: total });
  if (funded.status !== 'FUNDED') throw new Error(`escrow ${escrow.id} is ${funded.status}`);
  return { escrow: funded, client, provider };
}

// Exact sum of "12.34"-style amounts, in cents.
function sum(amounts) {
  const cents = amounts.reduce((total, a) => {
    const [whole, part] = a.split('.');
    return total + BigInt(whole) * 100n + BigInt(part);
  }, 0n);
  return `${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`;
}

// A JPEG with EXIF made by kobatela-local itself.
function photo({ lat, lng, takenAt }) {
  const dir = mkdtempSync(join(tmpdir(), 'kob-photo-'));
  const out = join(dir, 'photo.jpg');
  const args = ['photo', '--taken-at', takenAt.toISOString(), '--out', out];
  if (lat !== undefined) args.push('--lat', String(lat), '--lng', String(lng));
  execFileSync(required('KOBATELA_LOCAL_BIN'), args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const bytes = readFileSync(out);
  rmSync(dir, { recursive: true, force: true });
  return bytes;
}

// A proof of milestone `idx` as the provider's app sends it: presigned
// upload, PUT, then POST /proofs. Answers the stored proof.
export async function photoProof(api, escrowId, { idx = 1, at, minutesOld = 0, source } = {}) {
  const takenAt = new Date(Date.now() - minutesOld * 60 * 1000);
  const bytes = photo({ ...(at ?? {}), takenAt });
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const upload = await api.expect(201, 'POST', '/proofs/uploads', {
    escrow_id: escrowId,
    milestone_idx: idx,
    content_type: 'image/jpeg',
    content_length: bytes.length,
    sha256,
  });
  const put = await fetch(upload.url, { method: 'PUT', headers: upload.headers, body: bytes });
  if (!put.ok) throw new Error(`PUT of the photo: ${put.status} ${await put.text()}`);
  return api.expect(201, 'POST', '/proofs', {
    escrow_id: escrowId,
    milestone_idx: idx,
    type: 'PHOTO',
    upload_id: upload.upload_id,
    ...(source ? { metadata: { source } } : {}),
  });
}

export async function userKey(api, userId) {
  const made = await api.expect(201, 'POST', '/apikeys', { name: unique('console-user'), scope: 'user', user_id: userId });
  return made.key;
}

// A transfer nobody allowed: refused (403) and one alert raised.
export async function refusedTransfer(api) {
  const sender = await user(api, 'sender');
  const receiver = await user(api, 'receiver');
  await api.pay('/transactions', { sender_id: sender.id, receiver_id: receiver.id, amount: '75.00' }, 403);
  const alerts = await api.get('/alerts?type=UNAUTHORIZED_TRANSFER_ATTEMPT&acknowledged=false&limit=100');
  const alert = alerts.items.find((a) => String(a.payload?.sender_id) === String(sender.id));
  if (!alert) throw new Error(`no alert for the refused transfer of user ${sender.id}`);
  return alert;
}

// The escrow's only payment, once it is in `status`.
export function paymentIn(api, escrowId, status, seconds = 20) {
  return until(`a payment of escrow ${escrowId} in ${status}`, async () => {
    const page = await api.get(`/payments?escrow_id=${escrowId}`);
    return page.items.find((p) => p.status === status);
  }, seconds);
}
