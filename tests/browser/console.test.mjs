// The support console in a real browser against a running kobatela-local
// (with its payout dispatcher and PSP sandbox): what a support agent does,
// asserted on the page AND on the API's state afterwards. Run by
// local/browser.sh (make browser), which starts and stops the stack.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Api, required, until } from './lib/api.mjs';
import { launch, scenario, screen, shot, signIn, usabilityProblems } from './lib/browser.mjs';
import { fundedEscrow, NEAR, paymentIn, photoProof, refusedTransfer, SITE, user, userKey } from './lib/seed.mjs';

const ADMIN_KEY = required('KOBATELA_ADMIN_KEY');
const admin = Api.admin();
const FENCE = { lat: SITE.lat, lng: SITE.lng, radius_m: 100 };

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

// `body(page)` on a page signed in with the admin key, on the review queue.
function asStaff(body) {
  return scenario(browser, { secrets: [ADMIN_KEY] }, async (page) => {
    await signIn(page, ADMIN_KEY);
    await page.getByRole('heading', { level: 1, name: 'Review queue' }).waitFor();
    await body(page);
  });
}

// The card of `proofId` in the review queue, reading further pages if needed.
async function reviewCard(page, proofId) {
  const card = page.locator(`li[data-proof="${proofId}"]`);
  await until(`proof ${proofId} in the review queue`, async () => {
    if (await card.count()) return true;
    const more = page.getByRole('button', { name: 'More' });
    if (await more.isVisible()) await more.click();
    return false;
  }, 15);
  return card;
}

async function auditActions(entity, id) {
  return (await admin.get(`/audit/${entity}/${id}?limit=100`)).items.map((e) => e.action);
}

test('a wrong key is refused with the API\'s message and is not kept', async () => {
  const wrong = `kob_wrong_${randomUUID().replaceAll('-', '')}`;
  await scenario(browser, { secrets: [wrong] }, async (page) => {
    await signIn(page, wrong);
    const error = page.locator('#sign-in-error');
    await error.filter({ hasText: 'This key was refused' }).waitFor();
    const api = await new Api(wrong).call('GET', '/proofs?status=PENDING');
    assert.equal(api.status, 401);
    assert.equal(await error.textContent(), `This key was refused: ${api.body.error.message}`);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is forgotten');
    assert.equal(await page.getByLabel('Staff API key').inputValue(), '');
    assert.equal(await page.locator('#nav').isVisible(), false);
    await shot(page, 'sign-in-refused');
  });
});

test('a proof sent to review is found, its photo loads, it is approved, and the escrow is RELEASED with its payout', async () => {
  const { escrow } = await fundedEscrow(admin, [{ label: 'Roof on', amount: '250.00', geofence: FENCE }]);
  // 95 minutes old (still under the 120-minute limit), 40 m from the site,
  // from the gallery rather than the camera: the server sends it to review.
  const proof = await photoProof(admin, escrow.id, { at: NEAR, minutesOld: 95, source: 'gallery' });
  assert.equal(proof.status, 'PENDING');
  assert.equal(proof.review_reason, 'UNTRUSTED_SOURCE');

  await asStaff(async (page) => {
    const card = await reviewCard(page, proof.id);
    const photo = card.getByRole('img', { name: `Photo of proof ${proof.id} (escrow ${escrow.id}, milestone 1)` });
    await photo.waitFor();
    const width = await page.waitForFunction((img) => img.complete && img.naturalWidth, await photo.elementHandle());
    assert.equal(await width.jsonValue(), 160, 'the photo really loaded');
    const text = await card.textContent();
    for (const shown of ['UNTRUSTED_SOURCE', '1 h 35 min when sent', 'gallery', '250.00 USD',
      `${Math.round(proof.evidence.distance_m)} m`, 'radius 100 m']) {
      assert.ok(text.includes(shown), `the card shows ${shown}: ${text}`);
    }
    const fence = card.getByRole('img', { name: /^Geofence of radius 100 m; the photo was taken \d+ m from its centre, inside it\.$/ });
    await fence.waitFor();
    assert.equal(await card.locator('svg circle.photo.inside').count(), 1);
    assert.deepEqual(await usabilityProblems(page), []);
    await shot(page, 'review-queue');
    await page.setViewportSize({ width: 360, height: 800 });
    assert.deepEqual(await usabilityProblems(page), [], 'readable at 360 px');
    await shot(page, 'review-queue-360px');
    await page.setViewportSize({ width: 1280, height: 900 });

    const note = 'Checked by hand: the roof is on, the site matches.';
    await card.getByLabel(/^Note/).fill(note);
    await card.getByRole('button', { name: 'Approve' }).click();
    await card.getByText(`Proof ${proof.id} is now APPROVED. Note: ${note}`).waitFor();
    const decided = await admin.get(`/proofs/${proof.id}`);
    assert.equal(decided.status, 'APPROVED');
    assert.equal(decided.decision_note, note);

    // The payout leaves through the dispatcher and the PSP sandbox settles it.
    const payout = await paymentIn(admin, escrow.id, 'SETTLED');
    await screen(page, `#/escrow/${escrow.id}`, `Escrow ${escrow.id}`);
    const row = page.locator(`tr[data-payment="${payout.id}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), /PAYOUT250\.00 USDSETTLED1/);
    assert.equal(await page.locator('.status[data-status="RELEASED"]').count(), 1);
    assert.equal(await page.locator('.equation').getAttribute('data-holds'), 'true');
    assert.equal(await page.locator('.equation').textContent(),
      'Funded 250.00 USD = available 0.00 + paid 250.00 + refunded 0.00 ✓');
    const released = await admin.get(`/escrows/${escrow.id}`);
    assert.equal(released.status, 'RELEASED');
    assert.equal(released.milestones[0].status, 'PAID');
    await page.locator('ol.timeline li').first().waitFor();
    await shot(page, 'escrow');

    // The audit trails list what happened, as the API has them.
    await screen(page, `#/audit/escrow/${escrow.id}`, `Audit trail of escrow ${escrow.id}`);
    await page.locator('tr[data-action]').first().waitFor();
    const shown = await page.locator('tr[data-action]').evaluateAll((rows) => rows.map((r) => r.dataset.action));
    const actions = await auditActions('escrow', escrow.id);
    assert.deepEqual(shown, actions);
    for (const action of ['ESCROW_CREATED', 'ESCROW_DEPOSITED']) assert.ok(actions.includes(action), action);
    await shot(page, 'audit-trail');
    await screen(page, `#/audit/proof/${proof.id}`, `Audit trail of proof ${proof.id}`);
    await page.locator('tr[data-action="APPROVE_PROOF"]').waitFor();
    assert.deepEqual(await auditActions('proof', proof.id), ['SUBMIT_PROOF', 'APPROVE_PROOF']);
  });
});

test('a proof without a position is rejected with a note', async () => {
  const { escrow } = await fundedEscrow(admin, [{ label: 'Foundations', amount: '120.00', geofence: FENCE }]);
  const proof = await photoProof(admin, escrow.id, { minutesOld: 10 });
  assert.equal(proof.review_reason, 'GPS_MISSING');

  await asStaff(async (page) => {
    const card = await reviewCard(page, proof.id);
    await card.getByRole('img', { name: 'Geofence of radius 100 m; the photo carries no position.' }).waitFor();
    // Without a note, nothing is sent: the provider must learn why.
    await card.getByRole('button', { name: 'Reject' }).click();
    await card.getByRole('alert').filter({ hasText: 'Say why in the note before rejecting' }).waitFor();
    assert.equal((await admin.get(`/proofs/${proof.id}`)).status, 'PENDING');

    const note = 'No location in the photo: retake it on site with location on.';
    await card.getByLabel(/^Note/).fill(note);
    await card.getByRole('button', { name: 'Reject' }).click();
    await card.getByText(`Proof ${proof.id} is now REJECTED. Note: ${note}`).waitFor();
    const rejected = await admin.get(`/proofs/${proof.id}`);
    assert.equal(rejected.status, 'REJECTED');
    assert.equal(rejected.decision_note, note);
    const after = await admin.get(`/escrows/${escrow.id}`);
    assert.equal(after.milestones[0].status, 'WAITING', 'the provider may send a new proof');
    assert.equal(after.amount_available, '120.00');
  });
});

test('a failed payout is retried from the console and settles', async () => {
  // .41: the sandbox fails a payment's first attempt and settles its retry.
  const { escrow } = await fundedEscrow(admin, [{ label: 'All', amount: '12.41', proof_type: 'DELIVERY' }]);
  await admin.expect(200, 'POST', `/escrows/${escrow.id}/client-approve`, {});
  const failed = await paymentIn(admin, escrow.id, 'ERROR');
  assert.equal(failed.attempts, 1);

  await asStaff(async (page) => {
    await screen(page, '#/payouts', 'Failed payouts');
    const row = page.locator(`tr[data-payment="${failed.id}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), /12\.41 USD/);
    assert.equal(await row.locator('.status').textContent(), 'ERROR');
    assert.deepEqual(await usabilityProblems(page), []);
    await shot(page, 'failed-payouts');

    await row.getByRole('button', { name: `Retry payment ${failed.id}` }).click();
    await row.getByText(`Payment ${failed.id} is now PENDING (attempt 2).`).waitFor();
    assert.equal(await row.getByRole('button', { name: `Retry payment ${failed.id}` }).isDisabled(), true);
    const settled = await paymentIn(admin, escrow.id, 'SETTLED');
    assert.equal(settled.id, failed.id);
    assert.equal(settled.attempts, 2);
    assert.equal((await admin.get(`/escrows/${escrow.id}`)).amount_paid, '12.41');
  });
});

test('an alert is acknowledged with the keyboard and its trail says who', async () => {
  const alert = await refusedTransfer(admin);
  await asStaff(async (page) => {
    await screen(page, '#/alerts', 'Alerts');
    const open = page.locator('section[aria-labelledby="open-alerts"]');
    const item = open.locator(`li[data-alert="${alert.id}"]`);
    await item.waitFor();
    assert.match(await item.textContent(), /UNAUTHORIZED_TRANSFER_ATTEMPT/);

    await item.getByRole('button', { name: `Acknowledge alert ${alert.id}` }).focus();
    await page.keyboard.press('Enter');
    const done = page.locator(`section[aria-labelledby="done-alerts"] li[data-alert="${alert.id}"]`);
    await done.getByText(/^Acknowledged \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC by apikey:\d+\.$/).waitFor();
    assert.equal(await open.locator(`li[data-alert="${alert.id}"]`).count(), 0);
    assert.equal(await page.getByText('None acknowledged yet.').isVisible(), false);
    await shot(page, 'alerts');

    const acked = (await admin.get('/alerts?acknowledged=true&limit=100')).items.find((a) => a.id === alert.id);
    assert.ok(acked?.acknowledged_at, 'the API has it acknowledged');
    assert.match(acked.acknowledged_by, /^apikey:\d+$/);
    assert.ok(await done.textContent().then((t) => t.includes(acked.acknowledged_by)));
    assert.deepEqual(await auditActions('alert', alert.id), ['ALERT_ACKNOWLEDGED']);
  });
});

test('a PSP event that contradicts a settled payment is listed in CONFLICT', async () => {
  const { escrow } = await fundedEscrow(admin, [{ label: 'All', amount: '20.00', proof_type: 'DELIVERY' }]);
  await admin.expect(200, 'POST', `/escrows/${escrow.id}/client-approve`, {});
  const settled = await paymentIn(admin, escrow.id, 'SETTLED');
  const eventId = `evt_console_${randomUUID().slice(0, 8)}`;
  execFileSync(required('KOBATELA_LOCAL_BIN'),
    ['psp-event', '--ref', settled.psp_ref, '--type', 'payment.failed', '--id', eventId],
    { stdio: 'ignore' });
  await until(`event ${eventId} in CONFLICT`, async () =>
    (await admin.call('GET', `/psp/events/${eventId}`)).body?.status === 'CONFLICT');

  await asStaff(async (page) => {
    await screen(page, '#/psp', 'PSP events');
    const row = page.locator(`tr[data-event="${eventId}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), new RegExp(`payment\\.failed${settled.psp_ref}CONFLICT`));
    assert.ok((await row.textContent()).endsWith(String(settled.id)));
    assert.deepEqual(await usabilityProblems(page), []);
    await shot(page, 'psp-events');
  });
});

test('a user key is shown the API\'s 403 on the staff screens, and Sign out forgets it', async () => {
  const client = await user(admin, 'console-user');
  const key = await userKey(admin, client.id);
  const forbidden = await new Api(key).call('GET', '/alerts?acknowledged=false');
  assert.equal(forbidden.status, 403);
  const message = forbidden.body.error.message;

  await scenario(browser, { secrets: [key] }, async (page) => {
    await signIn(page, key);
    await page.getByRole('heading', { level: 1, name: 'Review queue' }).waitFor();
    for (const [hash, heading, path] of [
      ['#/alerts', 'Alerts', '/alerts?acknowledged=true'],
      ['#/psp', 'PSP events', '/psp/events?status=CONFLICT'],
      ['#/audit/escrow/1', 'Audit trail of escrow 1', '/audit/escrow/1'],
      ['#/payouts', 'Failed payouts', null],
    ]) {
      await screen(page, hash, heading);
      if (path) {
        assert.equal((await new Api(key).call('GET', path)).status, 403, path);
        await page.getByRole('alert').filter({ hasText: message }).first().waitFor();
      } else {
        // A user may list payments of its own escrows only: the API names the filter.
        await page.getByRole('alert').filter({ hasText: 'escrow_id' }).waitFor();
      }
      if (hash === '#/alerts') await shot(page, 'user-key-forbidden');
    }
    assert.equal(await page.locator('#nav').isVisible(), true, 'the key itself is valid');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByText('Signed out.').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'Sign out forgets the key');
    assert.equal(await page.locator('#screen').isVisible(), false);
  });
});
