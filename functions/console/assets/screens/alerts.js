// Alerts: the unacknowledged ones first (each with Acknowledge), then the
// acknowledged ones with who and when.

import { get, post, seg } from '../api.js';
import { button, h, link, notice, paged, say } from '../dom.js';
import { data, when } from '../format.js';

export async function show(root) {
  root.append(h('h1', { tabindex: -1 }, 'Alerts'));
  const open = h('ul', { class: 'cards' });
  const done = h('ul', { class: 'cards' });
  const read = paged(done, (cursor) => get('/alerts', { acknowledged: 'true', cursor }),
    (a) => alert(a), { empty: 'None acknowledged yet.' });
  const moved = (item) => {
    done.prepend(item);
    read.added();
  };
  const unread = paged(open, (cursor) => get('/alerts', { acknowledged: 'false', cursor }),
    (a) => alert(a, moved), { empty: 'No alert waits for anyone.' });
  root.append(
    h('section', { 'aria-labelledby': 'open-alerts' },
      h('h2', { id: 'open-alerts' }, 'To acknowledge'), open, unread.controls),
    h('section', { 'aria-labelledby': 'done-alerts' },
      h('h2', { id: 'done-alerts' }, 'Acknowledged'), done, read.controls));
  await Promise.all([unread.first, read.first]);
}

// What the payload points at, as links where the console has a screen.
function about(payload) {
  const parts = [];
  if (payload?.escrow_id != null) parts.push(link(`#/escrow/${payload.escrow_id}`, `escrow #${payload.escrow_id}`), ' ');
  return parts;
}

function acknowledged(a) {
  return `Acknowledged ${when(a.acknowledged_at)} by ${a.acknowledged_by ?? '—'}.`;
}

// One alert; `moved` puts it among the acknowledged once it is.
function alert(a, moved) {
  const heading = `alert-${a.id}`;
  const message = notice();
  const item = h('li', { class: 'card', 'aria-labelledby': heading, 'data-alert': a.id },
    h('h3', { id: heading }, `${a.type} · alert ${a.id}`),
    h('p', {}, a.message),
    h('p', { class: 'hint' }, when(a.created_at), ' · ', ...about(a.payload), data(a.payload)),
    message);
  if (a.acknowledged_at) {
    item.append(h('p', { class: 'ack' }, acknowledged(a)));
    return item;
  }
  item.append(button(`Acknowledge alert ${a.id}`, async (self) => {
    try {
      const answer = await post(`/alerts/${seg(a.id)}/ack`);
      self.dataset.done = '1';
      self.remove();
      say(message, acknowledged(answer), 'ok');
      moved(item);
    } catch (error) {
      say(message, error.message, 'error');
    }
  }));
  return item;
}
