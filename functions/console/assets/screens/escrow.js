// Escrow: one escrow by id, its balances (funded = available + paid +
// refunded, from the API's strings), milestones, timeline and payments.

import { get, seg } from '../api.js';
import { button, facts, h, link, notice, paged, row, say, table } from '../dom.js';
import { actor, data, metres, money, sumHolds, when } from '../format.js';

export async function show(root, [id]) {
  root.append(h('h1', { tabindex: -1 }, id ? `Escrow ${id}` : 'Escrow'));
  root.append(idForm(id));
  if (!id) return;
  const status = notice();
  root.append(status);
  let escrow;
  try {
    escrow = await get(`/escrows/${seg(id)}`);
  } catch (error) {
    say(status, error.message, 'error');
    return;
  }
  const refresh = button('Refresh', () => window.dispatchEvent(new HashChangeEvent('hashchange')));
  root.append(
    h('p', { class: 'actions' }, refresh, link(`#/audit/escrow/${escrow.id}`, 'Audit trail of this escrow')),
    summary(escrow),
    milestones(escrow),
  );
  const timeline = section('Timeline', h('ol', { class: 'timeline' }), (cursor) =>
    get(`/escrows/${seg(id)}/events`, { cursor }), event, 'No event yet.');
  const body = h('tbody');
  const payments = section('Payments', paymentTable(body), (cursor) =>
    get('/payments', { escrow_id: escrow.id, cursor }), (p) => payment(p), 'No payment yet.', body);
  root.append(timeline.node, payments.node);
  await Promise.all([timeline.first, payments.first]);
}

function idForm(id) {
  const input = h('input', {
    id: 'escrow-id', name: 'escrow-id', inputmode: 'numeric', pattern: '[0-9]+',
    required: true, value: id ?? '', autocomplete: 'off',
  });
  const form = h('form', { class: 'inline' },
    h('label', { for: 'escrow-id' }, 'Escrow id'), input, h('button', { type: 'submit' }, 'Open'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/escrow/${encodeURIComponent(input.value.trim())}`;
  });
  return form;
}

function summary(e) {
  const c = e.currency;
  const holds = sumHolds(e.amount_funded, [e.amount_available, e.amount_paid, e.amount_refunded]);
  return h('section', { 'aria-labelledby': 'balances' },
    h('h2', { id: 'balances' }, 'Status and balances'),
    facts([
      ['Status', h('span', { class: 'status', 'data-status': e.status }, e.status)],
      ['Client / provider', `user ${e.client_id} / user ${e.provider_id}`],
      ['Total', money(e.amount_total, c)],
      ['Deadline', when(e.deadline_at)],
    ]),
    h('p', { class: holds ? 'equation' : 'equation broken', 'data-holds': String(holds) },
      `Funded ${money(e.amount_funded, c)} = available ${e.amount_available} + paid ${e.amount_paid} + refunded ${e.amount_refunded}`,
      holds ? ' ✓' : ' ✗ (does not add up: report it)'));
}

function milestones(e) {
  const rows = (e.milestones ?? []).map((m) => row(
    String(m.idx), m.label, money(m.amount, e.currency), m.proof_type,
    m.geofence ? `radius ${metres(m.geofence.radius_m)}` : '—',
    h('span', { class: 'status', 'data-status': m.status }, m.status)));
  return h('section', {},
    table('Milestones', ['#', 'Label', 'Amount', 'Proof', 'Geofence', 'Status'], rows));
}

// A titled list that follows next_cursor; `into` is where items go (the
// list itself, or a table's body).
function section(title, list, load, render, empty, into = list) {
  const id = `section-${title.toLowerCase()}`;
  const { controls, first } = paged(into, load, render, { empty });
  return { node: h('section', { 'aria-labelledby': id }, h('h2', { id }, title), list, controls), first };
}

function event(e) {
  return h('li', {}, h('span', { class: 'kind' }, e.kind), ' ', h('time', { datetime: e.at }, when(e.at)),
    ` · ${actor(e.actor)}`, e.data && Object.keys(e.data).length && h('span', { class: 'data' }, ` · ${data(e.data)}`));
}

function paymentTable(body) {
  return h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', { class: 'visually-hidden' }, 'Payments of this escrow'),
      h('thead', {}, h('tr', {}, ['Id', 'Kind', 'Amount', 'Status', 'Attempts', 'PSP reference', 'Updated']
        .map((t) => h('th', { scope: 'col' }, t)))),
      body));
}

function payment(p) {
  const tr = row(String(p.id), p.kind, money(p.amount, p.currency),
    h('span', { class: 'status', 'data-status': p.status }, p.status),
    String(p.attempts), h('code', {}, p.psp_ref ?? '—'), when(p.updated_at));
  tr.dataset.payment = p.id;
  return tr;
}
