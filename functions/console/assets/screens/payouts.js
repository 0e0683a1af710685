// Failed payouts: payments in ERROR (the PSP refused or failed them; their
// amount is back in the escrow), newest first, each with Retry
// (POST /payments/execute/{id}: the amount leaves again, a new attempt).

import { get, post, seg } from '../api.js';
import { button, h, link, notice, paged, say } from '../dom.js';
import { money, when } from '../format.js';

export async function show(root) {
  root.append(
    h('h1', { tabindex: -1 }, 'Failed payouts'),
    h('p', { class: 'hint' }, 'Payments the PSP refused or failed, newest first. Retry sends the amount again as a new attempt.'),
  );
  const body = h('tbody');
  const { controls, first } = paged(
    body,
    (cursor) => get('/payments', { status: 'ERROR', limit: 20, cursor }),
    failed,
    { empty: 'No failed payment.' },
  );
  root.append(h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', {}, 'Payments in ERROR'),
      h('thead', {}, h('tr', {}, ['Id', 'Escrow', 'Kind', 'Amount', 'Attempts', 'Updated', 'Status', 'Action']
        .map((t) => h('th', { scope: 'col' }, t)))),
      body)), controls);
  await first;
}

function failed(p) {
  const status = h('span', { class: 'status', 'data-status': p.status }, p.status);
  const attempts = h('span', {}, String(p.attempts));
  const message = notice();
  const retry = button(`Retry payment ${p.id}`, async (self) => {
    say(message, 'Sending again…');
    try {
      const answer = await post(`/payments/execute/${seg(p.id)}`);
      status.textContent = answer.status;
      status.dataset.status = answer.status;
      attempts.textContent = String(answer.attempts);
      say(message, `Payment ${answer.id} is now ${answer.status} (attempt ${answer.attempts}).`, 'ok');
      self.dataset.done = '1';
    } catch (error) {
      say(message, error.message, 'error');
    }
  });
  const tr = h('tr', { 'data-payment': p.id },
    h('td', {}, String(p.id)),
    h('td', {}, link(`#/escrow/${p.escrow_id}`, `#${p.escrow_id}`)),
    h('td', {}, p.kind),
    h('td', {}, money(p.amount, p.currency)),
    h('td', {}, attempts),
    h('td', {}, when(p.updated_at)),
    h('td', {}, status),
    h('td', {}, retry, message));
  return tr;
}
