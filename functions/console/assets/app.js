// The console's shell: sign-in, sign-out, and hash routing to the screens
// (#/review, #/escrow/12, #/payouts, #/alerts, #/psp, #/audit/escrow/12).

import { session, whenRefused } from './api.js';
import { clear, h } from './dom.js';
import * as review from './screens/review.js';
import * as escrow from './screens/escrow.js';
import * as payouts from './screens/payouts.js';
import * as alerts from './screens/alerts.js';
import * as psp from './screens/psp.js';
import * as audit from './screens/audit.js';

const SCREENS = { review, escrow, payouts, alerts, psp, audit };

const $ = (id) => document.getElementById(id);

function showSignIn(message = '') {
  $('nav').hidden = true;
  $('sign-out').hidden = true;
  $('screen').hidden = true;
  clear($('screen'));
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message;
  $('api-key').focus();
}

// Each render gets a number; a slower earlier one never overwrites a later.
let rendering = 0;

async function route() {
  if (!session.key()) {
    showSignIn();
    return;
  }
  const [name, ...args] = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const screen = SCREENS[name] ? name : 'review';
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  $('sign-out').hidden = false;
  for (const a of $('nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${screen}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const mine = ++rendering;
  const root = h('div', { class: 'screen', 'data-screen': screen });
  $('screen').replaceChildren(root);
  $('screen').hidden = false;
  await SCREENS[screen].show(root, args.filter(Boolean), () => mine === rendering);
  if (mine === rendering) root.querySelector('h1')?.focus();
}

// A refused key is forgotten at once: the person is asked for another.
whenRefused((error) => {
  session.signOut();
  showSignIn(`This key was refused: ${error.message}`);
});

function start() {
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $('api-key');
    const key = input.value.trim();
    input.value = '';
    if (!key) {
      showSignIn('Type a staff API key.');
      return;
    }
    session.signIn(key);
    route();
  });
  $('sign-out').addEventListener('click', () => {
    session.signOut();
    rendering += 1;
    showSignIn('Signed out.');
  });
  window.addEventListener('hashchange', route);
  route();
}

start();
