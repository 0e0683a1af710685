// Debian's chromium driven by playwright-core (no browser download), one
// browser for the suite and a fresh context (fresh sessionStorage) per test.
// Every page is watched: a script error, a CSP violation, or the key in a
// URL or a console message fails the test that made it.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { BASE } from './api.mjs';

const CHROMIUM = process.env.KOBATELA_CHROMIUM ?? '/usr/bin/chromium';
// Without the background-networking flags the closed network refuses
// Chromium's own connections (many at a time) and slows every start.
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const SHOTS = process.env.KOBATELA_SCREENSHOTS ?? join(process.cwd(), 'screenshots');
export const CONSOLE = `${BASE}/console`;

// How long a screen may take to show what it is waited for.
export const WAIT_MS = 15000;

export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

// A page in a fresh context, with the watch described above. `secrets` are
// the keys this test types.
export async function open(browser, { width = 1280, height = 900, secrets = [] } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  const problems = [];
  const urls = [];
  page.on('pageerror', (error) => problems.push(`script error: ${error.message}`));
  page.on('console', (message) => {
    const text = message.text();
    if (/Content.Security.Policy/i.test(text)) problems.push(`CSP: ${text}`);
    if (secrets.some((s) => text.includes(s))) problems.push('a console message holds the key');
  });
  page.on('request', (request) => urls.push(request.url()));
  page.problems = () => {
    const leaked = urls.filter((u) => secrets.some((s) => u.includes(s)));
    return leaked.length ? [...problems, `the key is in ${leaked.length} request URL(s)`] : problems;
  };
  return page;
}

// Runs `body(page)` on a fresh page, then fails on what the watch saw; a
// failing body's error also says what the watch saw (a CSP block explains
// an image that never loads). The context is closed either way.
export async function scenario(browser, options, body) {
  const page = await open(browser, options);
  try {
    await body(page);
  } catch (error) {
    const seen = page.problems();
    if (seen.length) error.message += `\nthe page also saw:\n${seen.join('\n')}`;
    throw error;
  } finally {
    await page.context().close();
  }
  const seen = page.problems();
  if (seen.length) throw new Error(seen.join('\n'));
}

export async function signIn(page, key) {
  await page.goto(CONSOLE);
  await page.getByLabel('Staff API key').fill(key);
  // The keyboard path: Enter submits the form.
  await page.getByLabel('Staff API key').press('Enter');
}

// Goes to a screen by its hash and waits for its heading.
export async function screen(page, hash, heading) {
  await page.evaluate((h) => {
    window.location.hash = h;
  }, hash);
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

// Controls without a name, images without alt text, a page wider than the
// window: what keeps the console from being usable by keyboard, screen
// reader or phone.
export async function usabilityProblems(page) {
  return page.evaluate(() => {
    const problems = [];
    for (const control of document.querySelectorAll('input, select, textarea')) {
      if (control.type === 'hidden' || control.closest('[hidden]')) continue;
      if (!control.labels?.length && !control.getAttribute('aria-label')) problems.push(`unlabelled ${control.id || control.name}`);
    }
    for (const button of document.querySelectorAll('button')) {
      if (!button.closest('[hidden]') && !button.hidden && !button.textContent.trim()) problems.push('a button without text');
    }
    for (const image of document.querySelectorAll('img')) {
      if (!image.alt) problems.push(`an image without alt: ${image.src.slice(0, 40)}`);
    }
    if (document.documentElement.scrollWidth > window.innerWidth) {
      problems.push(`the page is ${document.documentElement.scrollWidth}px wide in a ${window.innerWidth}px window`);
    }
    return problems;
  });
}
