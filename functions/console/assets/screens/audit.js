// Audit trail: every audited action on one entity, oldest first.

import { get, seg } from '../api.js';
import { h, paged, row } from '../dom.js';
import { actor, data, when } from '../format.js';

const ENTITIES = ['escrow', 'proof', 'payment', 'alert', 'user', 'apikey', 'mandate', 'purchase', 'transaction'];

export async function show(root, [entity, id]) {
  const kind = ENTITIES.includes(entity) ? entity : 'escrow';
  const select = h('select', { id: 'audit-entity', name: 'entity' },
    ENTITIES.map((e) => h('option', { value: e, selected: e === kind }, e)));
  const input = h('input', {
    id: 'audit-id', name: 'id', inputmode: 'numeric', pattern: '[0-9]+', required: true,
    value: id ?? '', autocomplete: 'off',
  });
  const form = h('form', { class: 'inline' },
    h('label', { for: 'audit-entity' }, 'Entity'), select,
    h('label', { for: 'audit-id' }, 'Id'), input,
    h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/audit/${select.value}/${encodeURIComponent(input.value.trim())}`;
  });
  root.append(h('h1', { tabindex: -1 }, id ? `Audit trail of ${kind} ${id}` : 'Audit trail'), form);
  if (!id) return;
  const body = h('tbody');
  const { controls, first } = paged(body, (cursor) => get(`/audit/${seg(kind)}/${seg(id)}`, { cursor }),
    (entry) => {
      const tr = row(when(entry.at), actor(entry.actor), h('span', { class: 'action' }, entry.action), data(entry.data));
      tr.dataset.action = entry.action;
      return tr;
    }, { empty: 'No audited action on this entity.' });
  root.append(h('div', { class: 'table-wrap' },
    h('table', {},
      h('caption', {}, `What happened to ${kind} ${id}, oldest first`),
      h('thead', {}, h('tr', {}, ['At', 'Actor', 'Action', 'Data'].map((t) => h('th', { scope: 'col' }, t)))),
      body)), controls);
  await first;
}
