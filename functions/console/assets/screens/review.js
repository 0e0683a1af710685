// Review queue: the proofs the server sent to a person (PENDING), the one
// waiting longest first, each with its photo, the EXIF evidence the server
// read, the milestone's geofence and amounts, and Approve / Reject.

import { get, post, seg } from '../api.js';
import { button, facts, h, link, notice, paged, say } from '../dom.js';
import { degrees, metres, money, span, when } from '../format.js';
import { geofence } from '../geofence.js';

const REASONS = {
  GPS_MISSING: 'The milestone has a geofence but the photo carries no position.',
  UNTRUSTED_SOURCE: 'The app says the photo did not come from its camera.',
  MANUAL_REVIEW: 'Not a photo milestone: a person must look at the file.',
  UNVERIFIED_UPLOAD: 'Sent by an old client: the server could not read the file itself.',
};

// The API's limit for a decision note.
const NOTE_MAX = 2000;

export async function show(root) {
  root.append(
    h('h1', { tabindex: -1 }, 'Review queue'),
    h('p', { class: 'hint' }, 'Proofs the server could not approve alone, the one waiting longest first.'),
  );
  const escrows = new Map();
  const escrowOf = (id) => {
    if (!escrows.has(id)) escrows.set(id, get(`/escrows/${seg(id)}`));
    return escrows.get(id);
  };
  const list = h('ol', { class: 'cards' });
  const { controls, first } = paged(
    list,
    (cursor) => get('/proofs', { status: 'PENDING', limit: 10, cursor }),
    (proof) => card(proof, escrowOf),
    { empty: 'No proof is waiting for review.' },
  );
  root.append(list, controls);
  await first;
}

function card(proof, escrowOf) {
  const heading = `proof-${proof.id}`;
  const terms = h('div', { class: 'terms' }, h('p', { class: 'hint' }, 'Reading the escrow…'));
  escrowOf(proof.escrow_id).then(
    (escrow) => terms.replaceChildren(...termsOf(escrow, proof)),
    (error) => say(terms.appendChild(notice()), error.message, 'error'),
  );
  return h('li', { class: 'card', 'aria-labelledby': heading, 'data-proof': proof.id },
    h('h2', { id: heading },
      `Proof ${proof.id} · escrow `, link(`#/escrow/${proof.escrow_id}`, `#${proof.escrow_id}`),
      ` · milestone ${proof.milestone_idx}`),
    h('div', { class: 'proof' },
      file(proof),
      h('div', { class: 'evidence' },
        h('p', { class: 'reason' }, h('strong', {}, proof.review_reason ?? 'Review'), ': ',
          REASONS[proof.review_reason] ?? ''),
        h('h3', {}, 'What the server read'),
        evidence(proof),
        h('h3', {}, 'What the milestone asks'),
        terms)),
    decision(proof));
}

function file(proof) {
  if (!proof.download_url) return h('p', { class: 'photo missing' }, 'No file to show.');
  const label = `proof ${proof.id} (escrow ${proof.escrow_id}, milestone ${proof.milestone_idx})`;
  if (!String(proof.content_type).startsWith('image/')) {
    return h('p', { class: 'photo' }, h('a', { href: proof.download_url }, `Open the file of ${label}`));
  }
  return h('img', { class: 'photo', src: proof.download_url, alt: `Photo of ${label}` });
}

function evidence(proof) {
  const e = proof.evidence;
  const source = proof.metadata?.source;
  if (!e) {
    return facts([
      ['EXIF evidence', 'none read by the server'],
      source != null && ['Source (client says)', String(source)],
      ['Sent', when(proof.created_at)],
    ]);
  }
  const position = e.gps_lat != null ? `${degrees(e.gps_lat)}, ${degrees(e.gps_lng)}` : 'none in the file';
  return facts([
    ['Taken at', when(e.taken_at)],
    ['Age', `${span(e.taken_at, proof.created_at)} when sent; ${span(e.taken_at, new Date())} now`],
    ['Position', position],
    ['Distance to the centre', metres(e.distance_m)],
    source != null && ['Source (client says)', String(source)],
    ['Sent', when(proof.created_at)],
  ]);
}

function termsOf(escrow, proof) {
  const milestone = escrow.milestones?.find((m) => m.idx === proof.milestone_idx);
  return [
    facts([
      ['Milestone', milestone ? `${milestone.idx}. ${milestone.label} (${milestone.proof_type})` : '—'],
      ['Milestone amount', money(milestone?.amount, escrow.currency)],
      ['Escrow total', money(escrow.amount_total, escrow.currency)],
      ['Escrow available', money(escrow.amount_available, escrow.currency)],
      ['Geofence', milestone?.geofence
        ? `${degrees(milestone.geofence.lat)}, ${degrees(milestone.geofence.lng)} · radius ${metres(milestone.geofence.radius_m)}`
        : 'none'],
    ]),
    geofence(milestone?.geofence ?? null, proof.evidence),
  ];
}

function decision(proof) {
  const noteId = `note-${proof.id}`;
  const note = h('textarea', { id: noteId, name: 'note', rows: 2, maxlength: NOTE_MAX });
  const status = notice();
  const form = h('form', { class: 'decision', 'aria-label': `Decision on proof ${proof.id}` },
    h('label', { for: noteId }, 'Note (kept with the decision; required to reject)'),
    note,
    h('div', { class: 'actions' },
      button('Approve', () => decide('approved')),
      button('Reject', () => decide('rejected'), { class: 'danger' })),
    status);
  form.addEventListener('submit', (event) => event.preventDefault());

  async function decide(choice) {
    const text = note.value.trim();
    if (choice === 'rejected' && !text) {
      say(status, 'Say why in the note before rejecting: the provider reads it.', 'error');
      note.focus();
      return;
    }
    say(status, choice === 'approved' ? 'Approving…' : 'Rejecting…');
    try {
      const answer = await post(`/proofs/${seg(proof.id)}/decision`, text ? { decision: choice, note: text } : { decision: choice });
      const noted = answer.decision_note ? ` Note: ${answer.decision_note}` : '';
      say(status, `Proof ${answer.id} is now ${answer.status}.${noted}`, 'ok');
      status.dataset.status = answer.status;
      note.disabled = true;
      for (const b of form.querySelectorAll('button')) {
        b.dataset.done = '1';
        b.disabled = true;
      }
    } catch (error) {
      say(status, error.message, 'error');
    }
  }
  return form;
}
