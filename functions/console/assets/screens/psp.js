// PSP events: webhook events by status, CONFLICT first (a PSP event that
// contradicted a payment's final state: someone must look at the PSP).

import { get } from '../api.js';
import { h, paged, row } from '../dom.js';
import { when } from '../format.js';

const STATUSES = ['CONFLICT', 'IGNORED', 'QUEUED', 'APPLIED'];

export async function show(root, [wanted]) {
  const status = STATUSES.includes(wanted) ? wanted : 'CONFLICT';
  const select = h('select', { id: 'psp-status', name: 'status' },
    STATUSES.map((s) => h('option', { value: s, selected: s === status }, s)));
  const form = h('form', { class: 'inline' },
    h('label', { for: 'psp-status' }, 'Status'), select, h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/psp/${select.value}`;
  });
  const body = h('tbody');
  const { controls, first } = paged(body, (cursor) => get('/psp/events', { status, cursor }), (e) => {
    const tr = row(h('code', {}, e.event_id), e.type, h('code', {}, e.psp_ref ?? '—'),
      h('span', { class: 'status', 'data-status': e.status }, e.status),
      when(e.received_at), when(e.processed_at), e.payment_id == null ? '—' : String(e.payment_id));
    tr.dataset.event = e.event_id;
    return tr;
  }, { empty: `No PSP event in ${status}.` });
  root.append(h('h1', { tabindex: -1 }, 'PSP events'), form,
    h('div', { class: 'table-wrap' },
      h('table', {},
        h('caption', {}, `Webhook events in ${status}, newest first`),
        h('thead', {}, h('tr', {}, ['Event', 'Type', 'PSP reference', 'Status', 'Received', 'Processed', 'Payment']
          .map((t) => h('th', { scope: 'col' }, t)))),
        body)), controls);
  await first;
}
